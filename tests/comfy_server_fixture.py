"""pytest plugin: one real ComfyUI server per test session (see devtools/comfy_server.py).

Test modules load it with `pytest_plugins = ["comfy_server_fixture"]`; kept apart from the helpers so
that test modules can import the helpers without pytest re-importing a plugin module.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from devtools.comfy_server import ARTIFACTS, ComfyServer, start_server


@pytest.fixture(scope="session")
def comfy_server() -> Iterator[ComfyServer]:
    base = ARTIFACTS / f"comfy-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    server = start_server(base)
    try:
        yield server
    finally:
        server.stop()
        print(f"\nComfyUI log kept at {server.log_path}", file=sys.stderr)
