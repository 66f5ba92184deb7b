"""Measurement helpers for benchmarks (no ComfyUI needed): timing, peak memory, a model-call recorder.

`timed` gives wall and process CPU seconds of a block, `PeakMemory` its peak memory (torch max
allocated on CUDA, sampled process RSS on CPU), and `ModelCallRecorder` counts the forward calls of
named modules with forward hooks and can replay them alone (the floor of a stage).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
import torch

RSS_POLL_S = 0.02


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory inside a `with` block: torch max allocated on CUDA, sampled process RSS on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll_rss(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
            self._stop.wait(RSS_POLL_S)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._poll_rss, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)


def _map_tensors(value, fn: Callable[[torch.Tensor], object]):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


def _signature(args: tuple, kwargs: dict) -> tuple:
    """Shapes and dtypes of a call's top-level tensor arguments: what its cost depends on."""
    def describe(value):
        return (tuple(value.shape), str(value.dtype)) if isinstance(value, torch.Tensor) else None
    return (tuple(describe(a) for a in args),
            tuple(sorted((k, describe(v)) for k, v in kwargs.items() if isinstance(v, torch.Tensor))))


@dataclass
class RecordedCall:
    stage: str
    module: str
    key: tuple
    images: int
    wall_s: float = 0.0  # time inside the forward pass (only when the recorder times calls)
    cpu_s: float = 0.0


class ModelCallRecorder:
    """Counts the forward calls of named modules (UNet, VAE encoder/decoder) without changing them.

    The first call of every (module, shapes) signature keeps a copy of its inputs so that the floor
    can replay exactly those calls; all later calls only append a small record.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], time_calls: bool):
        """time_calls: also time every forward pass (only meaningful where calls are synchronous: CPU)."""
        self.modules = modules
        self.calls: list[RecordedCall] = []
        self.examples: dict[tuple, tuple[tuple, dict]] = {}
        self.stage = "setup"
        self._handles = [module.register_forward_pre_hook(self._hook(name), with_kwargs=True)
                         for name, module in modules.items()]
        if time_calls:
            self._handles += [module.register_forward_hook(self._finish) for module in modules.values()]
        self._started = (0.0, 0.0)

    def _hook(self, name: str):
        def record(module, args, kwargs):
            key = (name, _signature(args, kwargs))
            if key not in self.examples:
                self.examples[key] = (_map_tensors(args, torch.clone), _map_tensors(kwargs, torch.clone))
            self.calls.append(RecordedCall(self.stage, name, key, int(args[0].shape[0])))
            self._started = (time.perf_counter(), time.process_time())
        return record

    def _finish(self, module, args, output) -> None:
        call = self.calls[-1]
        call.wall_s = time.perf_counter() - self._started[0]
        call.cpu_s = time.process_time() - self._started[1]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def stage_calls(self, stage: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.stage == stage]

    def replay(self, calls: list[RecordedCall], device: torch.device, samples_per_signature: int = 0) -> dict:
        """Wall and process CPU seconds of the same forward calls run back to back.

        With samples_per_signature > 0 only that many calls of each (module, shapes) signature run and
        the times are scaled by the signature's call count: same-shape forward passes cost the same,
        and on a slow CPU this keeps the floor affordable.
        """
        counts = Counter(call.key for call in calls)
        if samples_per_signature == 0:
            # one synchronisation at the end, as the pipeline itself has: no per-call sync in the floor
            with timed(device) as clock, torch.inference_mode():
                for call in calls:
                    self._forward(call)
            return clock
        total = {"wall_s": 0.0, "cpu_s": 0.0}
        with torch.inference_mode():
            for key, n in counts.items():
                sampled = [c for c in calls if c.key == key][:samples_per_signature]
                for call in sampled:
                    with timed(device) as clock:
                        self._forward(call)
                    for k in total:
                        total[k] += clock[k] * n / len(sampled)
        return total

    def _forward(self, call: RecordedCall) -> None:
        args, kwargs = self.examples[call.key]
        # forward passes write bookkeeping into transformer_options: each call gets its own copy
        self.modules[call.module](*args, **copy.deepcopy(kwargs))


def describe_calls(calls: list[RecordedCall]) -> dict:
    """Per module: number of calls, images through it, a histogram of images per call, time inside."""
    out = {}
    for module in sorted({c.module for c in calls}):
        mine = [c for c in calls if c.module == module]
        sizes = [c.images for c in mine]
        out[module] = {"calls": len(sizes), "images": sum(sizes),
                       "images_per_call": dict(sorted(Counter(sizes).items())),
                       "inside_wall_s": sum(c.wall_s for c in mine), "inside_cpu_s": sum(c.cpu_s for c in mine)}
    return out


@contextmanager
def timed(device: torch.device) -> Iterator[dict]:
    """Wall seconds and process CPU seconds (all threads): on a shared CPU machine the CPU seconds are
    the steadier measure, since other people's jobs stretch wall time."""
    box = {}
    synchronize(device)
    started, started_cpu = time.perf_counter(), time.process_time()
    yield box
    synchronize(device)
    box["wall_s"] = time.perf_counter() - started
    box["cpu_s"] = time.process_time() - started_cpu
