"""Time the node pipeline at real model size, in-process through ComfyUI (a benchmark, not a test).

Stages, each timed on its own: (1) VAE-encode two keyframe images and invert them to the noise
level, (2) geodesic BVP solve to N frames, once per solver method, (3) generate the clean latents of
every frame and VAE-decode them. For every stage it reports wall seconds, the number of model calls
(UNet and VAE forward passes, with images per call) and peak memory (process RSS on CPU, torch max
allocated on GPU). The floor of a stage is the same sequence of plain forward calls (same modules,
same inputs, same batch sizes) replayed alone: pipeline / floor is the overhead of everything else
(solver math, ComfyUI's sampling wrappers, conditioning, copies, synchronisation). On CPU every
forward pass is also timed in place (process CPU seconds), so "stage / inside model calls" measures
the same overhead within one run; on a shared CPU machine that is the reliable figure, because
other jobs stretch the separately timed replay by up to 2x either way.

    .venv/bin/python benchmarks/pipeline.py --arch tiny --size 64 --compare-batch-size 4   # ~4 min, 2 free cores
    .venv/bin/python benchmarks/pipeline.py --arch sd15 --size 256 --invert-steps 2 --decode-steps 1 \
        --max-evals 30 --methods default --skip-readout --floor-samples 1 --repeats 2 \
        --compare-batch-size 4                                        # ~12 min of 2 free cores
    .venv/bin/python benchmarks/pipeline.py --arch sdxl --size 256 --invert-steps 2 --decode-steps 1 \
        --max-evals 30 --methods default --skip-readout --floor-samples 1 --repeats 2   # ~9 min, 17 GiB RAM
    python3 benchmarks/pipeline.py --arch sd15 --size 512 --device cuda --repeats 2 --comfy PATH/ComfyUI
    python3 benchmarks/pipeline.py --arch sdxl --size 1024 --device cuda --repeats 2 --comfy PATH/ComfyUI

On a GPU machine without ComfyUI installed, a copy of the ComfyUI 0.3.75 source tree (models/ not
needed) is enough, plus the few of its requirements the in-process path imports (av, torchsde,
trampoline on top of torch, transformers, safetensors, einops, scipy, aiohttp, psutil, matplotlib).

Checkpoints for --arch sd15 / sdxl are generated on first use (benchmarks/make_checkpoints.py) into
--checkpoint-dir; the weights are random, so timings are real but the images are noise and the
solver's iteration counts are those of a random-weight density.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib
import json
import logging
import os
import platform
import re
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "density_geodesics"
DEFAULT_COMFY = REPO / ".comfyui" / "ComfyUI"
TINY_CHECKPOINT = DEFAULT_COMFY / "models" / "checkpoints" / "tiny_sd15.safetensors"
DEFAULT_SIZES = {"tiny": 256, "sd15": 512, "sdxl": 1024}
RSS_POLL_S = 0.02


# ---------------------------------------------------------------------------------------------------
# measurement helpers (no ComfyUI needed)

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


@dataclass
class StageResult:
    stage: str
    wall_s: float
    cpu_s: float
    floor_s: float
    floor_cpu_s: float
    peak_mib: float
    calls: dict
    extra: dict = field(default_factory=dict)

    @property
    def inside_cpu_s(self) -> float:
        """Process CPU seconds spent inside the model forward passes during the stage itself."""
        return sum(v["inside_cpu_s"] for v in self.calls.values())

    @property
    def unet_calls(self) -> int:
        return self.calls.get("unet", {}).get("calls", 0)

    @property
    def unet_images(self) -> int:
        return self.calls.get("unet", {}).get("images", 0)


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


# ---------------------------------------------------------------------------------------------------
# ComfyUI and the pack, in-process

def import_comfy(comfy_root: Path, cpu: bool) -> None:
    """ComfyUI's modules the way main.py sets them up (cwd and sys.path at the tree, args before models)."""
    os.chdir(comfy_root)
    sys.path.insert(0, str(comfy_root))
    # before nodes.py puts comfy/ first on sys.path, where comfy/utils.py would shadow the `utils` package
    importlib.import_module("utils.install_util")
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    importlib.import_module("server")


def import_pack_module(name: str):
    """A module of this repository's pack, imported as ComfyUI would (package = the repo folder)."""
    if PACK_NAME not in sys.modules:
        package = types.ModuleType(PACK_NAME)
        package.__path__ = [str(REPO)]
        sys.modules[PACK_NAME] = package
    return importlib.import_module(f"{PACK_NAME}.{name}")


def keyframe_images(size: int) -> torch.Tensor:
    """Two smooth, different RGB images [2, size, size, 3] in 0..1 (ComfyUI's IMAGE convention)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    first = torch.stack([x, y, 0.5 + 0.5 * torch.sin(6 * x)], dim=-1)
    second = torch.stack([1 - y, 0.5 + 0.5 * torch.cos(5 * (x + y)), x * y], dim=-1)
    return torch.stack([first, second]).clamp(0, 1)


@dataclass
class Loaded:
    model: object
    clip: object
    vae: object
    positive: list
    device: torch.device


def load_checkpoint(path: Path, prompt: str) -> Loaded:
    import comfy.model_management
    import comfy.sd

    import nodes as comfy_nodes

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=True)
    (positive,) = comfy_nodes.CLIPTextEncode().encode(clip, prompt)
    return Loaded(model, clip, vae, positive, comfy.model_management.get_torch_device())


def vae_modules(first_stage: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The encoder and decoder networks of the KL-VAE (encoder/decoder) or of TAESD (taesd_*)."""
    if hasattr(first_stage, "taesd_encoder"):
        return {"vae_encoder": first_stage.taesd_encoder, "vae_decoder": first_stage.taesd_decoder}
    return {"vae_encoder": first_stage.encoder, "vae_decoder": first_stage.decoder}


@dataclass
class PipelineSettings:
    size: int
    frames: int
    noise_level: float
    invert_steps: int
    decode_steps: int
    batch_size: int
    alpha: float
    tolerance: float
    max_evals: int


def run_stage(name: str, recorder: ModelCallRecorder, device: torch.device, work: Callable[[], object],
              floor_samples: int | None) -> tuple[StageResult, object]:
    """Time one stage; floor_samples None skips the floor, 0 replays every call, N > 0 N per signature."""
    recorder.stage = name
    # nodes run under inference mode in ComfyUI's executor
    with PeakMemory(device) as memory, timed(device) as clock, torch.inference_mode():
        output = work()
    recorder.stage = "idle"
    calls = recorder.stage_calls(name)
    floor = ({"wall_s": float("nan"), "cpu_s": float("nan")} if floor_samples is None
             else recorder.replay(calls, device, floor_samples))
    stage = StageResult(name, clock["wall_s"], clock["cpu_s"], floor["wall_s"], floor["cpu_s"],
                        memory.peak_bytes / 2**20, describe_calls(calls))
    return stage, output


def node_inputs(node_cls, **overrides) -> dict:
    """A node's widget defaults from its schema (what a user gets without touching it), then overrides."""
    values = {i.id: i.default for i in node_cls.define_schema().inputs if getattr(i, "default", None) is not None}
    unknown = set(overrides) - {i.id for i in node_cls.define_schema().inputs}
    if unknown:
        raise ValueError(f"{node_cls.__name__} has no inputs {sorted(unknown)}")
    return {**values, **overrides}


def pipeline_stages(loaded: Loaded, settings: PipelineSettings, methods: dict[str, int], recorder,
                    floor_samples: int | None, readout: bool) -> list[StageResult]:
    """The node pipeline through the nodes' own execute(): Encode Keyframes (two images, VAE included),
    Geodesic Interpolation (BVP) once per method, Decode Path (PF-ODE and VAE) of the first method's path."""
    pack = import_pack_module("nodes")
    device = loaded.device
    shared = {"model": loaded.model, "batch_size": settings.batch_size}

    def encode():
        inputs = node_inputs(pack.EncodeKeyframes, **shared, positive=loaded.positive,
                             noise_level=settings.noise_level, steps=settings.invert_steps,
                             image=keyframe_images(settings.size), vae=loaded.vae)
        return pack.EncodeKeyframes.execute(**inputs).result[0]

    results = []
    stage, keyframes = run_stage("encode", recorder, device, encode, floor_samples)
    results.append(stage)
    paths = {}
    for method, max_evals in methods.items():
        def solve(method=method, max_evals=max_evals):
            inputs = node_inputs(pack.SolveBVP, **shared, keyframes=keyframes, frames=settings.frames,
                                 alpha=settings.alpha, method=method, tolerance=settings.tolerance,
                                 max_evals=max_evals)
            return pack.SolveBVP.execute(**inputs).result

        # the paper solver is a comparison, not part of the pipeline: its floor is not needed
        stage, (path, report) = run_stage(f"solve_{method}", recorder, device, solve,
                                          None if method == "paper" else floor_samples)
        stage.extra.update(report=report, max_evals=max_evals, solver_length=reported_length(report))
        paths[method] = path
        results.append(stage)
    # one readout (the same frames' field and alpha) judges every method's path on an equal footing
    for stage, path in zip(results[1:], paths.values(), strict=True):
        stage.extra["readout_length"] = path_length_on_model(loaded, path, settings) if readout else None

    def decode():
        inputs = node_inputs(pack.DecodePath, **shared, path=paths[next(iter(methods))],
                             steps=settings.decode_steps, vae=loaded.vae)
        return pack.DecodePath.execute(**inputs).result[1]

    stage, images = run_stage("decode", recorder, device, decode, floor_samples)
    stage.extra["images"] = list(images.shape)
    results.append(stage)
    return results


def reported_length(report: str) -> float | None:
    """The solver's own final length from the BVP node's report (one segment: two keyframes)."""
    match = re.search(r"length ([-+0-9.eE]+)", report)
    return float(match.group(1)) if match else None


def path_length_on_model(loaded: Loaded, path, settings: PipelineSettings) -> float:
    """Length of a path's frames under the model's density (same field and alpha for every method)."""
    bridge = import_pack_module("nodes.bridge")
    core = import_pack_module("geodesic_core")

    def work(denoise, device):
        field_ = core.DenoiserField(denoise, path.sigma, bridge.noise_kind(loaded.model))
        return core.path_length(field_, path.points.to(device), alpha=settings.alpha, t=path.t)

    with torch.inference_mode():
        return float(bridge.run_with_denoiser(loaded.model, path.schedule, work, stage="benchmark readout",
                                              latent_shape=tuple(path.points.shape[1:]),
                                              batch_size=settings.batch_size, largest_batch=len(path),
                                              total_evals=len(path),
                                              sigma=path.sigma))


# ---------------------------------------------------------------------------------------------------
# reporting

def machine_description(device: torch.device) -> dict:
    info = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_mem_gib"] = round(props.total_memory / 2**30, 1)
    return info


def in_model_ratio(*stages: StageResult) -> float:
    """Stage CPU seconds over CPU seconds inside model forward passes, measured in the same run (immune
    to other jobs on a shared machine); NaN where calls were not timed (GPU: timing them would sync)."""
    inside = sum(s.inside_cpu_s for s in stages)
    return sum(s.cpu_s for s in stages) / inside if inside > 0 else float("nan")


def format_table(stages: list[StageResult], memory_label: str) -> str:
    header = (f"{'stage':<16}{'wall s':>9}{'floor s':>9}{'x floor':>8}{'cpu s':>9}{'floor cpu':>10}"
              f"{'x floor':>8}{'in-model cpu':>13}{'x in-model':>11}{'UNet calls':>11}{'UNet imgs':>10}"
              f"{'imgs/call':>22}{'VAE calls':>10}{memory_label:>15}")
    lines = [header, "-" * len(header)]
    for s in stages:
        unet = s.calls.get("unet", {})
        vae_calls = sum(v["calls"] for k, v in s.calls.items() if k.startswith("vae"))
        histogram = ",".join(f"{k}x{v}" for k, v in unet.get("images_per_call", {}).items())
        lines.append(f"{s.stage:<16}{s.wall_s:>9.2f}{s.floor_s:>9.2f}{s.wall_s / s.floor_s:>8.3f}"
                     f"{s.cpu_s:>9.2f}{s.floor_cpu_s:>10.2f}{s.cpu_s / s.floor_cpu_s:>8.3f}"
                     f"{s.inside_cpu_s:>13.2f}{in_model_ratio(s):>11.3f}"
                     f"{s.unet_calls:>11}{s.unet_images:>10}{histogram:>22}{vae_calls:>10}{s.peak_mib:>15.0f}")
    return "\n".join(lines)


def format_batch_comparison(stages: list[StageResult], other: list[StageResult], batch: int, other_batch: int,
                            memory_label: str) -> str:
    """The pipeline's stages at two batch sizes: wall seconds, UNet calls and peak memory, with ratios."""
    by_name = {s.stage: s for s in other}
    header = (f"{'stage':<16}{f'wall s @{batch}':>12}{f'wall s @{other_batch}':>12}{'ratio':>8}"
              f"{f'UNet calls @{batch}':>16}{f'UNet calls @{other_batch}':>16}"
              f"{f'{memory_label} @{batch}':>22}{f'@{other_batch}':>8}")
    lines = [f"batch_size {batch} vs {other_batch} (ratio = wall @{batch} / wall @{other_batch})", header,
             "-" * len(header)]
    for s in stages:
        o = by_name.get(s.stage)
        if o is not None:
            lines.append(f"{s.stage:<16}{s.wall_s:>12.2f}{o.wall_s:>12.2f}{s.wall_s / o.wall_s:>8.3f}"
                         f"{s.unet_calls:>16}{o.unet_calls:>16}{s.peak_mib:>22.0f}{o.peak_mib:>8.0f}")
    mine = [s for s in stages if s.stage in by_name]
    total, total_other = sum(s.wall_s for s in mine), sum(by_name[s.stage].wall_s for s in mine)
    lines.append(f"{'pipeline':<16}{total:>12.2f}{total_other:>12.2f}{total / total_other:>8.3f}")
    return "\n".join(lines)


def ratios(stages: list[StageResult]) -> dict:
    by_name = {s.stage: s for s in stages}
    pipeline = [s for s in stages if s.stage != "solve_paper"]
    out = {"pipeline_over_floor_wall": sum(s.wall_s for s in pipeline) / sum(s.floor_s for s in pipeline),
           "pipeline_over_floor_cpu": sum(s.cpu_s for s in pipeline) / sum(s.floor_cpu_s for s in pipeline),
           "pipeline_over_in_model_cpu": in_model_ratio(*pipeline),
           "pipeline_wall_s": sum(s.wall_s for s in pipeline),
           "pipeline_peak_mib": max(s.peak_mib for s in pipeline)}
    default, paper = by_name.get("solve_default"), by_name.get("solve_paper")
    if default and paper:
        out["default_over_paper_unet_images"] = default.unet_images / paper.unet_images
        out["default_over_paper_unet_calls"] = default.unet_calls / paper.unet_calls
        out["default_over_paper_wall"] = default.wall_s / paper.wall_s
        for key in ("solver_length", "readout_length"):
            out[f"{key}_default"] = default.extra.get(key)
            out[f"{key}_paper"] = paper.extra.get(key)
    return out


# ---------------------------------------------------------------------------------------------------

def checkpoint_for(arch: str, directory: Path, comfy_root: Path) -> Path:
    if arch == "tiny":
        return TINY_CHECKPOINT
    sys.path.insert(0, str(REPO / "benchmarks"))
    import make_checkpoints

    out = directory / f"{arch}_random.safetensors"
    print("checkpoint:", json.dumps(make_checkpoints.write_checkpoint(arch, out, comfy_root)), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["tiny", "sd15", "sdxl"], default="tiny")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: per arch)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--comfy", type=Path, default=DEFAULT_COMFY, help="ComfyUI source tree")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/tmp/density_geodesics_bench"))
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--noise-level", type=float, default=0.6)
    parser.add_argument("--invert-steps", type=int, default=25)
    parser.add_argument("--decode-steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="most latents per model call; 0 = automatic, the nodes' default")
    parser.add_argument("--compare-batch-size", type=int, default=None, metavar="N",
                        help="afterwards run the same pipeline (default solver, no floor) with batch_size N and "
                             "print both side by side")
    parser.add_argument("--alpha", type=float, default=0.002)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--max-evals", type=int, default=3000, help="evaluation budget of the default solver")
    parser.add_argument("--paper-max-evals", type=int, default=3000,
                        help="budget of the paper solver (cap it on CPU; the time is then extrapolated)")
    parser.add_argument("--methods", default="default,paper")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the pipeline this many times, report the last (the first pays warm-up)")
    parser.add_argument("--floor-samples", type=int, default=0,
                        help="0: the floor replays every model call; N: N calls per shape, scaled by count")
    parser.add_argument("--skip-readout", action="store_true",
                        help="skip the equal-footing length readout of each path (N extra model evaluations)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    args = parser.parse_args()

    # ComfyUI's and the nodes' INFO lines (model loads, per-stage call counts) show progress
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    comfy_root = args.comfy.resolve()
    checkpoint = checkpoint_for(args.arch, args.checkpoint_dir.resolve(), comfy_root)
    json_path = args.json.resolve() if args.json else None
    import_comfy(comfy_root, cpu=args.device == "cpu")
    loaded = load_checkpoint(checkpoint, "a photograph of a mountain lake at dawn")
    settings = PipelineSettings(args.size or DEFAULT_SIZES[args.arch], args.frames, args.noise_level,
                                args.invert_steps, args.decode_steps, args.batch_size, args.alpha,
                                args.tolerance, args.max_evals)
    budgets = {"default": args.max_evals, "paper": args.paper_max_evals}
    methods = {m: budgets[m] for m in args.methods.split(",")}
    recorder = ModelCallRecorder({"unet": loaded.model.model.diffusion_model,
                                  **vae_modules(loaded.vae.first_stage_model)},
                                 time_calls=args.device == "cpu")
    device = loaded.device
    print(f"{args.arch} {settings.size}px on {device}: methods {methods}", flush=True)

    def repeated(settings: PipelineSettings, methods: dict[str, int], floor_samples: int | None,
                 readout: bool) -> list[list[StageResult]]:
        runs = []
        for repeat in range(args.repeats):
            recorder.calls.clear()
            # only the reported (last) repeat pays for the floor replay
            last = repeat == args.repeats - 1
            stages = pipeline_stages(loaded, settings, methods, recorder, floor_samples if last else None,
                                     readout=readout)
            runs.append(stages)
            print(f"batch_size {settings.batch_size}, repeat {repeat + 1}/{args.repeats}: pipeline "
                  f"{sum(s.wall_s for s in stages if s.stage != 'solve_paper'):.2f} s", flush=True)
        return runs

    runs = repeated(settings, methods, args.floor_samples, not args.skip_readout)
    compared = None
    if args.compare_batch_size is not None:
        compared = repeated(replace(settings, batch_size=args.compare_batch_size),
                            {"default": budgets["default"]}, None, False)[-1]
    recorder.remove()
    stages = runs[-1]
    memory_label = "peak alloc MiB" if device.type == "cuda" else "peak RSS MiB"
    summary = {"machine": machine_description(device), "arch": args.arch, "checkpoint": str(checkpoint),
               "settings": asdict(settings), "methods": methods, "device": str(device),
               "stages": [asdict(s) for s in stages], "ratios": ratios(stages),
               "first_run_wall_s": [round(s.wall_s, 3) for s in runs[0]]}
    for s in stages:
        if "report" in s.extra:
            print(f"{s.stage}: {s.extra['report']}  [readout length {s.extra.get('readout_length')}]")
    print(json.dumps(summary["machine"]))
    print(f"{args.arch} {settings.size}px, {settings.frames} frames, batch_size {settings.batch_size}, "
          f"device {device}")
    print(format_table(stages, memory_label))
    print(json.dumps(summary["ratios"], indent=1))
    if compared is not None:
        summary["compare_batch_size"] = {"batch_size": args.compare_batch_size,
                                         "stages": [asdict(s) for s in compared]}
        print(format_batch_comparison(stages, compared, settings.batch_size, args.compare_batch_size,
                                      memory_label))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
