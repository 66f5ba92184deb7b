"""Output folders that appear whole or not at all: written in a staging folder beside their final place, then
renamed into it in one step (the demo's --out folder, the batch tool's items/<key>)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def publish_folder(staging: Path, out: Path, *, replace: bool) -> bool:
    """Rename the finished ``staging`` folder (on ``out``'s file system) to ``out``; returns whether it is now there.

    Where ``out`` exists: with ``replace`` the earlier folder is moved aside and removed only after the new one
    is in place; without, the existing folder stands (another writer finished first) and ``staging`` is
    removed."""
    previous = None
    if replace and out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(previous / out.name)
    try:
        staging.rename(out)
    except OSError:
        if replace or not out.exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return False
    if previous is not None:
        shutil.rmtree(previous)
    return True
