"""pytest plugin: collect the repository root as a plain directory, not as a Python package.

The root is a ComfyUI pack whose __init__.py imports ComfyUI's comfy_api; pytest (>= 8) would import
it as a package before any test runs. The pack itself is tested by loading it inside ComfyUI
(devtools/comfy_harness.py). For the same reason there is no tests/__init__.py; pyproject.toml's
pytest `pythonpath` makes the repository root (geodesic_core, digits, devtools) and tests/ importable.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path, parent):
    if path == ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
