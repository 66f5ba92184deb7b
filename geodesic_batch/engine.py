"""Running items: one task per item, on Ray Data's actor pool (each worker loads the model once) or, for
reference and benchmarks, in a plain loop in this process. Both run the same ``run_task``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .inputs import Item, ItemError
from .models import BatchModel, load_model
from .settings import Settings, as_dict
from .store import ITEMS, publish, staging_folder
from .work import analyze_item, interpolate_item

WORK = {"interpolate": interpolate_item, "analyze": analyze_item}
# Rows and item descriptions are all that travel through Ray's object store (pixels are read from the
# files by the workers), so a local Ray does not need the default 30% of RAM.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
# shipped to a cluster's workers with the job
PACKAGES = ("geodesic_batch", "geodesic_pipeline", "digits", "geodesic_core")


def run_task(command: str, model: BatchModel, task: dict, settings: Settings, out: Path) -> dict:
    """One item, start to finish: its output folder published under its key, and its results row. Any
    failure (unreadable input, wrong size, NaN from the model, ...) becomes a failed row, never a crash."""
    item, key = Item.from_json(task["item"]), task["row"]["key"]
    torch.manual_seed(settings.seed)
    model.counter.reset()
    started = time.perf_counter()
    row = dict(task["row"]) | {"sigma": model.diffusion.sigma, "reused": False,
                               "worker": f"{socket.gethostname()}:{os.getpid()}"}
    staging = None
    try:
        staging = staging_folder(out, key)
        with torch.no_grad():
            numbers = WORK[command](model, item, settings, staging)
        row |= numbers | {"status": "ok", "error": None, "output_dir": f"{ITEMS}/{key}"}
        row |= {"model_calls": model.counter.calls, "model_images": model.counter.images,
                "wall_seconds": time.perf_counter() - started}
        return publish(out, key, staging, row)
    except Exception as error:  # a bad item must become a row; the job goes on
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        message = str(error) if isinstance(error, ItemError) else f"{type(error).__name__}: {error}"
        return row | {"status": "failed", "error": f"{', '.join(item.inputs)}: {message}",
                      "model_calls": model.counter.calls, "model_images": model.counter.images,
                      "wall_seconds": time.perf_counter() - started}


def device_for(gpus_per_worker: float) -> torch.device:
    return torch.device("cuda" if gpus_per_worker > 0 and torch.cuda.is_available() else "cpu")


class ItemWorker:
    """A Ray Data actor: loads the model once, then runs every batch of tasks it is given."""

    def __init__(self, command: str, model_spec: str, settings: dict, out: str, threads: int,
                 gpus_per_worker: float):
        torch.set_num_threads(threads)
        self.command, self.settings, self.out = command, Settings(**settings), Path(out)
        self.model = load_model(model_spec, self.settings, device_for(gpus_per_worker))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [run_task(self.command, self.model, json.loads(task), self.settings, self.out) for task in batch["task"]]
        return {"row": np.array([json.dumps(row) for row in rows], dtype=object)}


def run_serial(command: str, model: BatchModel, tasks: list[dict], settings: Settings, out: Path) -> Iterator[dict]:
    for task in tasks:
        yield run_task(command, model, task, settings, out)


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Joins the cluster at ``address``, or starts a private local Ray (never an unrelated running one).
    Returns whether this call started the connection (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        here = Path(__file__).resolve().parent.parent
        ray.init(address=address, logging_level=logging.WARNING,
                 runtime_env={"py_modules": [str(here / package) for package in PACKAGES]})
    else:
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 include_dashboard=False, logging_level=logging.WARNING)
    return True


def pool_size(workers: int | None, cpus_per_worker: float, gpus_per_worker: float, n_tasks: int) -> int:
    """--workers, or as many workers as the cluster's CPUs (GPUs when workers take GPUs) hold; never more
    than there are items."""
    import ray

    if workers is None:
        resources = ray.cluster_resources()
        fit = (resources.get("GPU", 0) / gpus_per_worker if gpus_per_worker > 0
               else resources.get("CPU", 1) / cpus_per_worker)
        workers = max(1, int(fit))
    return max(1, min(workers, n_tasks))


def run_on_ray(command: str, model_spec: str, tasks: list[dict], settings: Settings, out: Path, *, workers: int,
               cpus_per_worker: float, gpus_per_worker: float) -> Iterator[dict]:
    """The tasks through ``map_batches`` on a pool of ``workers`` actors, rows as they finish."""
    import ray

    dataset = ray.data.from_items([{"task": json.dumps(task)} for task in tasks], override_num_blocks=len(tasks))
    resources = {"num_cpus": cpus_per_worker} | ({"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {})
    # One item in flight per worker: items are long, and a queue per worker would leave a worker that
    # started late (loading its model) idle while another works through its queue.
    pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    rows = dataset.map_batches(
        ItemWorker, batch_size=1, compute=pool, **resources,
        fn_constructor_kwargs={"command": command, "model_spec": model_spec, "settings": as_dict(settings),
                               "out": str(out.resolve()), "threads": max(1, int(cpus_per_worker)),
                               "gpus_per_worker": gpus_per_worker})
    for row in rows.iter_rows():
        yield json.loads(row["row"])
