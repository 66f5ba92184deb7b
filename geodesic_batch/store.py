"""Outputs that are never lost and never made twice.

Layout of an output folder::

    results.parquet            one row per item of the last run (written to a temporary name, then renamed)
    items/<key>/               one finished item: its pictures and row.json; appears only when complete
    items/.<key>.partial-*/    an item being written (removed when a run starts and ends)
    .lock                      held while a job writes here

``<key>`` is derived from the model's identity, the input files' content hashes and the settings
(settings.content_key), so a rerun reuses exactly the items whose output still applies.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from geodesic_pipeline.outputs import publish_folder

ITEMS = "items"
ROW_FILE = "row.json"
RESULTS = "results.parquet"
PARTIAL = ".partial-"

SETTINGS_COLUMNS = [
    ("alpha", pa.float64()), ("noise_level", pa.float64()), ("sigma", pa.float64()), ("frames", pa.int64()),
    ("clip_frames", pa.int64()), ("solver", pa.string()), ("tolerance", pa.float64()), ("max_evals", pa.int64()),
    ("sphere", pa.bool_()), ("invert_steps", pa.int64()), ("decode_steps", pa.int64()), ("seed", pa.int64()),
    ("prompt", pa.string()),
]
COMMON_COLUMNS = [
    ("item_id", pa.string()), ("key", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("reused", pa.bool_()), ("inputs", pa.list_(pa.string())), ("input_sha256", pa.list_(pa.string())),
    ("model", pa.string()), ("notices", pa.list_(pa.string())),
]
SOLVER_COLUMNS = [
    ("solver_score_evals", pa.int64()), ("solver_iterations", pa.int64()), ("solver_residual", pa.float64()),
    ("converged", pa.bool_()),
]
RUN_COLUMNS = [
    ("model_calls", pa.int64()), ("model_images", pa.int64()), ("wall_seconds", pa.float64()),
    ("output_dir", pa.string()), ("worker", pa.string()),
]
PATH_COLUMNS = [column for name in ("linear", "slerp", "geodesic") for column in (
    (f"{name}_log_density", pa.list_(pa.float64())), (f"{name}_length", pa.float64()),
    (f"{name}_efficiency", pa.float64()))]
CLIP_COLUMNS = [
    ("clip_frames_total", pa.int64()), ("frame_indices", pa.list_(pa.int64())), ("log_density", pa.list_(pa.float64())),
    ("cumulative_length", pa.list_(pa.float64())), ("length", pa.float64()), ("euclidean_length", pa.float64()),
    ("geodesic_length", pa.float64()), ("efficiency", pa.float64()),
]
SCHEMAS = {
    "interpolate": pa.schema(COMMON_COLUMNS + [("loop", pa.bool_())] + SETTINGS_COLUMNS + PATH_COLUMNS
                             + SOLVER_COLUMNS + RUN_COLUMNS),
    "analyze": pa.schema(COMMON_COLUMNS + SETTINGS_COLUMNS + CLIP_COLUMNS + SOLVER_COLUMNS + RUN_COLUMNS),
}


class BusyError(RuntimeError):
    """Another job holds the output folder."""


@contextmanager
def locked(out: Path):
    """Exclusive use of ``out`` for one job (released by the kernel if the job is killed)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BusyError(f"--out: another job is writing to {out}; wait for it or choose another folder") from error
        yield


def remove_partials(out: Path) -> int:
    """Delete what killed runs left half-written (only ever called while holding the lock)."""
    items = out / ITEMS
    stale = [p for p in items.iterdir() if p.name.startswith(".") and PARTIAL in p.name] if items.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    for path in out.glob(f".{RESULTS}{PARTIAL}*"):
        path.unlink(missing_ok=True)
    return len(stale)


def finished_row(out: Path, key: str) -> dict | None:
    path = out / ITEMS / key / ROW_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def staging_folder(out: Path, key: str) -> Path:
    items = out / ITEMS
    items.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{key}{PARTIAL}", dir=items))


def publish(out: Path, key: str, staging: Path, row: dict) -> dict:
    """Write row.json into the staging folder and rename it to items/<key> in one step. If another worker
    finished the same key first, its output stands and this copy is dropped; returns the row that stands."""
    row_path = staging / ROW_FILE
    with open(row_path, "w") as handle:
        handle.write(json.dumps(row))
        handle.flush()
        os.fsync(handle.fileno())
    if publish_folder(staging, out / ITEMS / key, replace=False):
        return row
    existing = finished_row(out, key)
    if existing is None:
        raise FileExistsError(f"{out / ITEMS / key} exists without its {ROW_FILE}")
    return existing


def write_results(out: Path, command: str, rows: list[dict]) -> Path:
    """All rows as one Parquet file with the command's fixed schema, renamed into place when complete."""
    schema = SCHEMAS[command]
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
    temporary = out / f".{RESULTS}{PARTIAL}{os.getpid()}"
    pq.write_table(table, temporary)
    temporary.rename(out / RESULTS)
    return out / RESULTS
