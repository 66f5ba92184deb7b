"""One torch thread for the tests of the small embedded models (import the fixture into a test module)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Small batches gain nothing from threads, and on the busy 2-core CI machine two threads per process
    # made these tests 3-5x slower; restored afterwards for the rest of the session.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
