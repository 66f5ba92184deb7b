"""Shared pytest set-up: the repository root is importable (geodesic_core, digits, benchmarks).

No tests/__init__.py on purpose: the repository root is a ComfyUI pack with its own __init__.py,
and pytest would otherwise import the whole pack as a package.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
