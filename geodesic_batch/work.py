"""One item's work on a loaded model: the numbers of its results row and the files of its output folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: renders straight to files, never needs a display
from PIL import Image
from torch import Tensor

from geodesic_pipeline.compare import PATH_NAMES, against_geodesic, compare_keyframe_paths

from .inputs import Item, ItemError, read_clip, read_images
from .models import BatchModel
from .settings import Settings

MIN_PICTURE_SIDE = 64   # small frames (the digits' 32x32) are scaled up, pixel for pixel, to at least this
WEBP_FRAME_MS = 100


def check_finite(values: Tensor, what: str) -> None:
    if not torch.isfinite(values).all():
        raise ItemError(f"the model's output is not finite ({what} contains NaN or inf)")


def to_pixels(images: Tensor) -> list[Image.Image]:
    """[B, C, H, W] in [-1, 1] -> PIL images, scaled up by a whole factor to at least MIN_PICTURE_SIDE."""
    scale = max(1, math.ceil(MIN_PICTURE_SIDE / min(images.shape[-2:])))
    array = ((images.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    pictures = []
    for frame in array:
        mode = "L" if frame.shape[0] == 1 else "RGB"
        picture = Image.fromarray(frame[0] if mode == "L" else frame.transpose(1, 2, 0), mode)
        pictures.append(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST))
    return pictures


def save_strip(rows: dict[str, list[Image.Image]], path: Path) -> None:
    """One row of frames per path (linear, slerp, geodesic from top to bottom)."""
    width, height = rows[PATH_NAMES[0]][0].size
    strip = Image.new(rows[PATH_NAMES[0]][0].mode, (width * len(rows[PATH_NAMES[0]]), height * len(rows)))
    for r, frames in enumerate(rows.values()):
        for c, frame in enumerate(frames):
            strip.paste(frame, (c * width, r * height))
    strip.save(path)


def save_webp(frames: list[Image.Image], path: Path) -> None:
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=WEBP_FRAME_MS, loop=0, lossless=True)


def interpolate_item(model: BatchModel, item: Item, settings: Settings, folder: Path) -> dict:
    """Linear, slerp and geodesic paths through the item's images: strip.png and one animated WebP per
    path in ``folder``; returns the row's per-path and solver numbers."""
    images, notices = read_images(list(item.inputs), model.image_size, model.grey, model.invert_light_background)
    latents = model.encode(images)
    check_finite(latents, "the inverted images")
    reports, solves = compare_keyframe_paths(model.diffusion, latents, settings.geodesic, loop=item.loop,
                                             n_points=settings.frames)
    for report in reports.values():
        check_finite(report.readout.log_density, f"the {report.name} path's log density")
    frames = model.decode(torch.cat([report.latents for report in reports.values()]))
    check_finite(frames, "the decoded frames")
    pictures = dict(zip(reports, (to_pixels(f) for f in frames.split(settings.frames)), strict=True))
    save_strip(pictures, folder / "strip.png")
    for name, path_pictures in pictures.items():
        save_webp(path_pictures, folder / f"{name}.webp")
    geodesic_length = reports["geodesic"].readout.length
    row = {"notices": notices}
    for name, report in reports.items():
        length = report.readout.length
        row[f"{name}_log_density"] = report.readout.log_density.tolist()
        row[f"{name}_length"] = length
        row[f"{name}_efficiency"] = geodesic_length / length if length > 0 else 1.0
    row |= {"solver_score_evals": sum(s.score_evals for s in solves),
            "solver_iterations": sum(s.iterations for s in solves),
            "solver_residual": max((s.residual for s in solves), default=0.0),
            "converged": all(s.converged for s in solves)}
    return row


def analyze_item(model: BatchModel, item: Item, settings: Settings, folder: Path) -> dict:
    """Density along a clip's frames and its efficiency against the geodesic between its first and last
    frame; density.png in ``folder``; returns the row's numbers."""
    frames, notices, indices, total = read_clip(item.inputs[0], settings.clip_frames, model.image_size, model.grey,
                                                model.invert_light_background)
    latents = model.encode(frames)
    check_finite(latents, "the inverted frames")
    result = against_geodesic(model.diffusion.field, latents, settings.geodesic)
    check_finite(result.path.log_density, "the clip's log density")
    save_density_plot(item.item_id, indices, result, folder / "density.png")
    return {"notices": notices, "clip_frames_total": total, "frame_indices": indices,
            "log_density": result.path.log_density.tolist(),
            "cumulative_length": result.path.cumulative_length.tolist(),
            "length": result.path.length, "euclidean_length": result.path.euclidean_length,
            "geodesic_length": result.geodesic.readout.length, "efficiency": result.efficiency,
            "solver_score_evals": result.geodesic.score_evals, "solver_iterations": result.geodesic.iterations,
            "solver_residual": result.geodesic.residual, "converged": result.geodesic.converged}


def save_density_plot(title: str, indices: list[int], result, path: Path) -> None:
    fig = Figure(figsize=(6.5, 3.6))
    density, distance = fig.subplots(1, 2)
    density.plot(indices, result.path.log_density.numpy(), marker="o", markersize=3, label="clip")
    geodesic_x = np.linspace(indices[0], indices[-1], len(result.geodesic.readout.log_density))
    density.plot(geodesic_x, result.geodesic.readout.log_density.cpu().numpy(), linestyle="--",
                 label="geodesic between its ends")
    density.set_xlabel("frame")
    density.set_ylabel("log p(x) - log p(first frame)")
    density.legend(fontsize=7)
    density.grid(alpha=0.3)
    distance.plot(indices, result.path.cumulative_length.numpy(), marker="o", markersize=3)
    distance.axhline(result.geodesic.readout.length, color="C1", linestyle="--", label="geodesic between its ends")
    distance.set_xlabel("frame")
    distance.set_ylabel("density-weighted distance from frame 0")
    distance.legend(fontsize=7)
    distance.grid(alpha=0.3)
    fig.suptitle(f"{title}: geodesic efficiency {result.efficiency:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
