"""Fixtures shared by the test modules: one real ComfyUI server per session, and one torch thread."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from devtools.comfy_server import ComfyServer


@pytest.fixture(scope="session")
def comfy_server() -> Iterator[ComfyServer]:
    """A real ComfyUI server with this pack in custom_nodes (devtools/comfy_server.py), started once."""
    from devtools.comfy_server import ARTIFACTS, start_server  # only the sessions that start a server pay for it

    base = ARTIFACTS / f"comfy-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    server = start_server(base)
    try:
        yield server
    finally:
        server.stop()
        print(f"\nComfyUI log kept at {server.log_path}", file=sys.stderr)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module's tests (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    # Small batches gain nothing from threads, and on the busy 2-core CI machine two threads per process
    # made the small embedded models' tests 3-5x slower; restored afterwards for the rest of the session.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
