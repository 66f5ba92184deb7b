"""The node pipeline's stages, each timed and its model calls recorded (see benchmarks/pipeline.py).

Encode Keyframes (two images, VAE included), Geodesic Interpolation once per solver method, Decode Path (PF-ODE
and VAE), all through the nodes' own execute() on a checkpoint loaded in-process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from devtools import comfy_harness as harness

from . import make_checkpoints
from .measure import ModelCallRecorder, PeakMemory, describe_calls, timed

DEFAULT_SIZES = {"tiny": 256, "sd15": 512, "sdxl": 1024}


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


def load(path: Path, prompt: str) -> Loaded:
    """A checkpoint and one prompt's conditioning, through the harness (ComfyUI imported first)."""
    import comfy.model_management

    model, clip, vae = harness.load_checkpoint(path)
    return Loaded(model, clip, vae, harness.encode_prompt(clip, prompt), comfy.model_management.get_torch_device())


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
    pack = harness.import_pack_module("nodes")
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
            return pack.SolveBVP.execute(**inputs).result[:2]

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
    """The solver's own final length from the Geodesic Interpolation report (one segment: two keyframes)."""
    match = re.search(r"length ([-+0-9.eE]+)", report)
    return float(match.group(1)) if match else None


def path_length_on_model(loaded: Loaded, path, settings: PipelineSettings) -> float:
    """Length of a path's frames under the model's density (same field and alpha for every method)."""
    bridge = harness.import_pack_module("nodes.bridge")
    facts = harness.import_pack_module("nodes.model_facts")
    core = harness.import_pack_module("geodesic_core")

    def length_of_path(denoise, device):
        field_ = core.DenoiserField(denoise, path.sigma, facts.noise_kind(loaded.model))
        return core.path_length(field_, path.points.to(device), alpha=settings.alpha, t=path.t)

    with torch.inference_mode():
        return float(bridge.run_with_denoiser(loaded.model, path.schedule, length_of_path, stage="benchmark readout",
                                              latent_shape=tuple(path.points.shape[1:]),
                                              batch_size=settings.batch_size, largest_batch=len(path),
                                              total_evals=len(path),
                                              sigma=path.sigma))


def checkpoint_for(arch: str, directory: Path, comfy_root: Path) -> Path:
    """The tiny test checkpoint, or the random-weight `arch` checkpoint in `directory` (written on first use)."""
    if arch == "tiny":
        return harness.require_tiny_checkpoint()
    out = directory / f"{arch}_random.safetensors"
    print("checkpoint:", json.dumps(make_checkpoints.write_checkpoint(arch, out, comfy_root)), flush=True)
    return out
