"""The demo's pictures: strip.png (every path's frames with its relative log density below), density.png and
animation.webp (the paths side by side, frame by frame)."""

from __future__ import annotations

from pathlib import Path

from .settings import MNIST_IMAGE_SIZE

STRIP_ROW_INCHES = 1.5  # frames and density plot of one path
ANIMATION_FRAME_PX = 128  # each 32x32 frame drawn 4x larger


def path_rows(comparisons) -> list[str]:
    return [name for comparison in comparisons for name in (comparison.baseline, comparison.geodesic)]


def tile_frames(frames):
    """[N, 1, S, S] frames in [-1, 1] -> one [S, (S + 1) N - 1] row in [0, 1], with a NaN (blank) column
    between frames; draw with frame_colormap()."""
    import numpy as np

    cell = MNIST_IMAGE_SIZE + 1
    tiles = np.full((MNIST_IMAGE_SIZE, len(frames) * cell - 1), np.nan)
    for k, frame in enumerate((frames[:, 0].numpy() + 1.0) / 2.0):
        tiles[:, k * cell: k * cell + MNIST_IMAGE_SIZE] = frame
    return tiles


def frame_colormap():
    import matplotlib

    return matplotlib.colormaps["gray"].with_extremes(bad="white")


def save_strip(reports: dict, comparisons, judge_reliable: bool, path: Path) -> None:
    """Every path's frames (the judge's label under each), with its relative log density per frame plotted
    right below on one shared scale; rows grouped by comparison."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: renders straight to files, never needs a display

    from .judge import CONFIDENT_PROBABILITY

    names = path_rows(comparisons)
    n_frames = len(reports[names[0]].frames)
    cell = MNIST_IMAGE_SIZE + 1  # tile_frames leaves one blank pixel between frames
    centres = np.arange(n_frames) * cell + MNIST_IMAGE_SIZE / 2 - 0.5
    densities = np.concatenate([reports[name].readout.log_density.numpy() for name in names])
    margin = 0.1 * (densities.max() - densities.min() + 1e-9)
    fig = Figure(figsize=(15, STRIP_ROW_INCHES * len(names) + 0.4 * len(comparisons)))
    grid = fig.add_gridspec(2 * len(names), 1, height_ratios=[1.0, 0.55] * len(names), hspace=0.55)
    for row, name in enumerate(names):
        report = reports[name]
        frames_ax, density_ax = fig.add_subplot(grid[2 * row]), fig.add_subplot(grid[2 * row + 1])
        frames_ax.imshow(tile_frames(report.frames), cmap=frame_colormap(), vmin=0, vmax=1,
                         interpolation="nearest")
        confident = report.verdict.confidence >= CONFIDENT_PROBABILITY
        suffix = "" if judge_reliable else "?"
        frames_ax.set_xticks(centres, [f"{label}{suffix}" for label in report.verdict.labels], fontsize=8)
        for tick, sure in zip(frames_ax.get_xticklabels(), confident, strict=True):
            tick.set_color("black" if sure and judge_reliable else "tab:red")
        frames_ax.tick_params(length=0, pad=1)
        frames_ax.set_yticks([])
        frames_ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
        comparison = next(c for c in comparisons if name in (c.baseline, c.geodesic))
        if name == comparison.baseline:
            frames_ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}: {comparison.geometry}",
                                loc="left", fontsize=11)
        density_ax.plot(centres, report.readout.log_density.numpy(), marker="o", markersize=3, color="tab:blue")
        density_ax.axhline(0.0, color="gray", linewidth=0.6)
        density_ax.set_xlim(-0.5, n_frames * cell - 1.5)
        density_ax.set_ylim(densities.min() - margin, densities.max() + margin)
        density_ax.set_xticks([])
        density_ax.tick_params(labelsize=7)
        density_ax.set_ylabel("log p", fontsize=8, rotation=0, ha="right", va="center")
        interior = report.readout.log_density[1:-1]
        density_ax.text(1.005, 0.5, f"mean {float(interior.mean()):+.2f}\nmin {float(interior.min()):+.2f}",
                        transform=density_ax.transAxes, fontsize=8, va="center")
    judge_note = (f"labels: the judge's digit per frame, red where it is below {CONFIDENT_PROBABILITY} sure"
                  if judge_reliable else "labels UNRELIABLE (?): the inputs are unlike every training digit")
    fig.text(0.01, 0.07, f"log p: log density relative to the start at the noise level, one shared scale; "
             f"{judge_note}", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_density_plot(reports: dict, comparisons, path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    from geodesic_pipeline.core import flat, segment_lengths

    fig = Figure(figsize=(5.5 * len(comparisons), 3.6))
    for ax, comparison in zip(np.atleast_1d(fig.subplots(1, len(comparisons), sharey=True)), comparisons,
                              strict=True):
        for name, colour in ((comparison.baseline, "tab:gray"), (comparison.geodesic, "tab:orange")):
            report = reports[name]
            # x is the fraction of Euclidean arc length, not the frame index: the geodesic's frames are spaced
            # evenly in the density metric, which would stretch its low-density stretches on a frame axis.
            segments = segment_lengths(flat(report.latents)).numpy()
            arc = np.concatenate([[0.0], np.cumsum(segments)]) / segments.sum()
            ax.plot(arc, report.readout.log_density.numpy(), marker="o", markersize=3, color=colour,
                    label=f"{name} (length {report.readout.length:.3g})")
        ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}", fontsize=10)
        ax.set_xlabel("fraction of Euclidean arc length along the path")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.axes[0].set_ylabel("log p(x) - log p(start)")
    fig.suptitle("relative log density at the noise level (length: density-weighted, same alpha)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_animation(reports: dict, comparisons, path: Path) -> None:
    """Every path's frames side by side, one animation frame per path point, there and back (WebP)."""
    import numpy as np
    from PIL import Image, ImageDraw

    names = path_rows(comparisons)
    label_px, gap = 14, 6
    width = len(names) * (ANIMATION_FRAME_PX + gap) - gap
    stills = []
    for k in range(len(reports[names[0]].frames)):
        canvas = Image.new("L", (width, ANIMATION_FRAME_PX + label_px), 255)
        draw = ImageDraw.Draw(canvas)
        for column, name in enumerate(names):
            frame = (reports[name].frames[k, 0].numpy() + 1.0) * 127.5
            tile = Image.fromarray(frame.round().astype(np.uint8)).resize(
                (ANIMATION_FRAME_PX, ANIMATION_FRAME_PX), Image.Resampling.NEAREST)
            x = column * (ANIMATION_FRAME_PX + gap)
            canvas.paste(tile, (x, label_px))
            draw.text((x + 2, 1), name, fill=0)
        stills.append(canvas)
    loop = stills + stills[-2:0:-1]
    loop[0].save(path, save_all=True, append_images=loop[1:], duration=120, loop=0, lossless=True)
