"""Perceptual metrics of IMAGE frames and decoding a path into perceptually even frames (LPIPS on the GPU
ComfyUI uses for models, or the CPU)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import comfy.model_management
import torch
from torch import Tensor

from ..geodesic_pipeline.core import (
    LPIPS,
    Callback,
    GeodesicInputError,
    PerceptualMetrics,
    Progress,
    even_in_distance,
    interpolate_points,
    load_lpips,
    lpips_size,
    one_pass_evals,
    perceptual_metrics,
    retime,
    retime_work,
    working_bytes,
)
from ..geodesic_pipeline.keyframes import GeodesicSettings
from .bridge import ModelCallSettings, NodeBar, show_progress_text, stop_if_cancelled
from .encode_decode import decode_path
from .geodesics_on_model import read_along
from .path import GeodesicPath
from .plot import lpips_summary, markdown_table, summary_table

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher

LPIPS_NETS = {"alex": "AlexNet (LPIPS default)", "vgg": "VGG16"}
# DecodePath spacing choices: label -> retime method (None: the path's own positions)
DECODE_SPACINGS = {"path": None, "even LPIPS": "adaptive", "even LPIPS (official rescheduler)": "official"}
RANGE_SLACK = 1e-3  # IMAGE values this far outside [0, 1] are float rounding (clamped); further out, refused
MEMORY_SHARE = 0.5  # of the free memory, for LPIPS features (the rest stays for ComfyUI and the model)
MAX_LPIPS_CHUNK = 16  # frames per LPIPS pass: enough to keep a GPU busy, more only costs memory


def check_frames_for_spacing(spacing: str, frames: int | None) -> None:
    """Decode Path's ``frames`` counts only with an even spacing; spacing 'path' decodes every point."""
    if spacing == "path" and frames:
        raise GeodesicInputError(
            f"frames: spacing 'path' decodes one frame per point of the path, so {frames} frames cannot be "
            f"given; set frames to 0, choose the number of frames where the path is made (Geodesic "
            f"Interpolation, Respace Path), or use spacing 'even LPIPS'")


def lpips_progress(stage: str, bar: NodeBar) -> Callback:
    """LPIPS callback: Cancel is honoured between chunks, each chunk's frames advance the node's bar (one unit a
    frame), and the pass says how far it is under the node's title."""
    def report(progress: Progress) -> None:
        stop_if_cancelled(f"{stage}, after LPIPS of {progress.step} of {progress.total} frames")
        bar.advance(len(progress.points))
        show_progress_text(f"{stage}: LPIPS of {progress.step} of {progress.total} frames")

    return report


def lpips_on_device(net: str) -> LPIPS:
    return load_lpips(net, str(comfy.model_management.get_torch_device()))


def image_frames(images: Tensor, input_name: str = "images") -> Tensor:
    """ComfyUI IMAGE [B, H, W, C] in [0, 1] (C = 1 grey, repeated to RGB; 3 RGB; 4 RGBA, alpha dropped) ->
    LPIPS frames [B, 3, H, W] in [-1, 1]."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise GeodesicInputError(
            f"{input_name}: expected an IMAGE batch [frames, height, width, 1, 3 or 4 channels], got {shape}")
    if not images.is_floating_point():
        raise GeodesicInputError(
            f"{input_name}: expected a float IMAGE with values in [0, 1], got dtype {images.dtype} (values "
            f"{images.min().item()} to {images.max().item()}); divide 8-bit pictures by 255")
    low, high = (v.item() for v in torch.aminmax(images))
    if not (math.isfinite(low) and math.isfinite(high)) or low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise GeodesicInputError(f"{input_name}: expected values in [0, 1] (a ComfyUI IMAGE), got {low:g} to {high:g}")
    rgb = images[..., :3] if images.shape[-1] >= 3 else images.expand(-1, -1, -1, 3)
    return rgb.clamp(0.0, 1.0).movedim(-1, 1).float() * 2 - 1


def lpips_chunk(lpips: LPIPS, frames: Tensor, input_name: str = "images") -> int:
    """Frames per LPIPS forward pass: as many as fit in MEMORY_SHARE of the device's free memory (asked as
    ComfyUI asks it), at most MAX_LPIPS_CHUNK; refuses frames of which even one does not fit."""
    height, width = lpips_size(frames, input_name)
    per_frame = working_bytes(lpips.net, height, width)
    room = comfy.model_management.get_free_memory(lpips.device) * MEMORY_SHARE
    if per_frame > room:
        raise GeodesicInputError(
            f"{input_name}: LPIPS-{lpips.net} needs about {per_frame / 2**20:,.1f} MiB per {height}x{width} px frame, "
            f"more than the {room / 2**20:,.1f} MiB it may use now; resize the frames (e.g. Upscale Image by 0.5)")
    return int(min(MAX_LPIPS_CHUNK, room // per_frame))


def image_metrics(images: Tensor, net: str = "alex", input_name: str = "images",
                  bar: NodeBar | None = None) -> PerceptualMetrics:
    """LPIPS metrics of the frames of ``images``; ``bar`` the node's, where they are one part of its work (one unit
    a frame), else a bar of their own."""
    frames = image_frames(images, input_name)
    if len(frames) < 2:
        raise GeodesicInputError(f"{input_name}: perceptual metrics need at least 2 frames, got {len(frames)}")
    lpips = lpips_on_device(net)
    return perceptual_metrics(frames, lpips, chunk_size=lpips_chunk(lpips, frames, input_name),
                              callback=lpips_progress(input_name, bar or NodeBar(len(frames))))


def metrics_table(metrics: PerceptualMetrics) -> str:
    """Two Markdown tables: one row per step (its frames, its LPIPS), then PPL, PDV and the largest step."""
    steps = [[str(i), f"{i}-{i + 1}", f"{float(d):.3g}"] for i, d in enumerate(metrics.steps)]
    summary = [*lpips_summary(metrics), ["largest", f"{float(metrics.steps.max()):.3g}", "largest step"]]
    return markdown_table([["step", "frames", "lpips"], *steps], [True] * 3) + "\n\n" + summary_table(summary)


@dataclass
class EvenDecode:
    samples: Tensor        # [n, C, h, w] clean latents (LATENT convention) of the returned frames
    images: Tensor         # IMAGE [n, H, W, 3]
    report: str
    frames: GeodesicPath   # the n noisy points the frames were decoded from, at their positions on the path


def decode_evenly(model: ModelPatcher, path: GeodesicPath, vae, *, frames: int, method: str, steps: int,
                  batch_size: int, net: str = "alex") -> EvenDecode:
    """Exactly ``frames`` frames of the path, equally spaced in LPIPS: the path's own points are decoded, the
    path is measured with as many frames again (interpolating latents between its points), the frames are
    placed at equal cumulative LPIPS and those not yet decoded are decoded."""
    if vae is None:
        raise GeodesicInputError("vae: even LPIPS spacing measures decoded images; connect a VAE")
    if frames < 2:
        raise GeodesicInputError(f"frames: even LPIPS spacing needs at least 2 frames, got {frames}")
    decoded: dict[float, tuple[Tensor, Tensor, Tensor]] = {}  # position -> (noisy point, clean latent, image)
    own_t = path.t.double()
    measure = len(path) + frames - 1
    work = retime_work(frames, method=method, measure=measure, known_t=own_t)
    # One bar for the node's whole work, so it fills once: model evaluations (steps per decoded frame), then frames
    # through LPIPS (the measuring passes, the placed frames, and the path's own frames for the report).
    bar = NodeBar(steps * (len(path) + work.renders) + work.lpips_frames + len(path), previews_of=model)

    def render(t: Tensor) -> Tensor:
        sub_path = path.with_points(interpolate_points(path.points, path.t, t.float()), t.float())
        samples = decode_path(model, sub_path, steps=steps, batch_size=batch_size, bar=bar)
        images = vae.decode(samples)
        images = images.reshape(-1, *images.shape[-3:])
        for position, point, sample, image in zip(t.tolist(), sub_path.points, samples, images, strict=True):
            decoded[position] = (point, sample, image)
        return image_frames(images, "vae")

    plain = render(own_t)
    lpips = lpips_on_device(net)
    chunk_size = lpips_chunk(lpips, plain, "vae")
    result = retime(render, frames, method=method, measure=measure, initial=(own_t, plain),
                    lpips=lpips, chunk_size=chunk_size, callback=lpips_progress("measuring", bar))
    before = perceptual_metrics(plain, lpips, chunk_size=chunk_size, callback=lpips_progress("path frames", bar))
    bar.finish()
    # render_at reuses a frame at a position within SAME_POSITION: look frames up by the nearest position
    positions = [min(decoded, key=lambda known: abs(known - position)) for position in result.t.tolist()]
    points, samples, images = (torch.stack(parts) for parts in zip(*(decoded[p] for p in positions), strict=True))
    extra = result.renders
    report = "\n".join([
        f"spacing\teven LPIPS ({method})",
        f"frames\t{frames}",
        f"pdv_before\t{before.pdv:.6g}", f"pdv_after\t{result.metrics.pdv:.6g}",
        f"ppl_before\t{before.ppl:.6g}", f"ppl_after\t{result.metrics.ppl:.6g}",
        f"frames_decoded\t{len(path) + extra} ({len(path)} path points + {extra} extra)",
        f"extra_model_evaluations\t{extra * steps} ({extra} frames x {steps} steps)",
        "t\t" + " ".join(f"{v:.4f}" for v in result.t.tolist()),
    ])
    return EvenDecode(samples, images, report,
                      path.with_points(points, torch.tensor(positions, dtype=path.t.dtype)))


def respace_evenly(model: ModelPatcher, path: GeodesicPath, frames: int, settings: GeodesicSettings,
                   calls: ModelCallSettings) -> GeodesicPath:
    """The path re-read at ``frames`` points equally far apart in its geodesic (density-weighted) distance."""
    # One pass over the frames (no refinement): the spacing needs the distances, not a length to 1e-3.
    readout = read_along(model, path, settings=dataclasses.replace(settings, max_evals=one_pass_evals(len(path))),
                         calls=calls).readout
    t, points = even_in_distance(path.points, path.t, readout.cumulative_length, frames)
    return path.with_points(points.float(), t.float())
