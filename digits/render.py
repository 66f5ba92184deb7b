"""The demo's pictures: strip.png (every path's frames with its relative log density below), density.png and
animation.webp (the paths side by side, frame by frame). Each also has a narrow layout, for a panel about 280 px
wide (the node help pages): fewer frames per row, panels stacked, text wrapped, drawn at twice the resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .settings import MNIST_IMAGE_SIZE

STRIP_ROW_INCHES = 1.5  # frames and density plot of one path
ANIMATION_FRAME_PX = 128  # each 32x32 frame drawn 4x larger
# The narrow layout: a figure this wide at twice the usual dpi, 500 px, which the help panel shows about 280 px wide
# (its 8-point text about 12 px; sharp on high-density screens); STRIP_ROW_INCHES_NARROW holds a path's title,
# frames and density plot.
NARROW_INCHES, NARROW_DPI = 2.5, 200
STRIP_ROW_INCHES_NARROW = 1.15
NARROW_STRIP_FRAMES = 9  # frames per row: about 30 px each
NARROW_TEXT_CHARS = 41  # a line of 8-point text at NARROW_INCHES


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


def save_strip(reports: dict, comparisons, judge_reliable: bool, path: Path, *, narrow: bool = False) -> None:
    """Every path's frames (the judge's label under each), with its relative log density per frame plotted
    right below on one shared scale; rows grouped by comparison. ``narrow``: NARROW_STRIP_FRAMES of the frames
    (the ends included), each path's name and numbers above its row."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: renders straight to files, never needs a display

    from .judge import CONFIDENT_PROBABILITY

    names = path_rows(comparisons)
    n_frames = len(reports[names[0]].frames)
    shown = (np.unique(np.linspace(0, n_frames - 1, min(n_frames, NARROW_STRIP_FRAMES)).round().astype(int))
             if narrow else np.arange(n_frames))
    cell = MNIST_IMAGE_SIZE + 1  # tile_frames leaves one blank pixel between frames
    centres = np.arange(len(shown)) * cell + MNIST_IMAGE_SIZE / 2 - 0.5
    densities = np.concatenate([reports[name].readout.log_density.numpy() for name in names])
    margin = 0.1 * (densities.max() - densities.min() + 1e-9)
    width, row_inches = (NARROW_INCHES, STRIP_ROW_INCHES_NARROW) if narrow else (15, STRIP_ROW_INCHES)
    fig = Figure(figsize=(width, row_inches * len(names) + 0.4 * len(comparisons)))
    rows = []
    if narrow:
        # per path: a slot for its comparison's heading where it starts one, then its frames over its density
        headings = {c.baseline for c in comparisons}
        heights = [h for name in names for h in ([0.55] if name in headings else []) + [1.55]]
        slots = iter(fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.45, bottom=0.04, top=0.99,
                                       left=0.1, right=0.99))
        for name in names:
            comparison = next(c for c in comparisons if name in (c.baseline, c.geodesic))
            if name in headings:
                heading_ax = fig.add_subplot(next(slots))
                heading_ax.axis("off")
                heading_ax.text(0.0, 0.0, textwrap.fill(f"{comparison.geodesic} vs {comparison.baseline}: "
                                                        f"{comparison.geometry}", NARROW_TEXT_CHARS - 8),
                                fontsize=8, fontweight="bold", va="bottom", transform=heading_ax.transAxes)
            rows.append(next(slots).subgridspec(2, 1, height_ratios=[1.0, 0.55], hspace=0.5))
    else:
        grid = fig.add_gridspec(2 * len(names), 1, height_ratios=[1.0, 0.55] * len(names), hspace=0.55)
        rows = [(grid[2 * row], grid[2 * row + 1]) for row in range(len(names))]
    for row, name in enumerate(names):
        report = reports[name]
        frames_ax, density_ax = fig.add_subplot(rows[row][0]), fig.add_subplot(rows[row][1])
        frames_ax.imshow(tile_frames(report.frames[shown]), cmap=frame_colormap(), vmin=0, vmax=1,
                         interpolation="nearest")
        confident = report.verdict.confidence[shown] >= CONFIDENT_PROBABILITY
        suffix = "" if judge_reliable else "?"
        frames_ax.set_xticks(centres, [f"{report.verdict.labels[k]}{suffix}" for k in shown],
                             fontsize=7 if narrow else 8)
        for tick, sure in zip(frames_ax.get_xticklabels(), confident, strict=True):
            tick.set_color("black" if sure and judge_reliable else "tab:red")
        frames_ax.tick_params(length=0, pad=1)
        frames_ax.set_yticks([])
        comparison = next(c for c in comparisons if name in (c.baseline, c.geodesic))
        interior = report.readout.log_density[1:-1]
        numbers = f"mean {float(interior.mean()):+.2f}, min {float(interior.min()):+.2f}"
        if narrow:
            frames_ax.set_title(name, loc="left", fontsize=8)
            frames_ax.set_title(numbers, loc="right", fontsize=6.5)
        else:
            frames_ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
            if name == comparison.baseline:
                frames_ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}: {comparison.geometry}",
                                    loc="left", fontsize=11)
            density_ax.text(1.005, 0.5, numbers.replace(", ", "\n"), transform=density_ax.transAxes, fontsize=8,
                            va="center")
        density_ax.plot(centres, report.readout.log_density[shown].numpy(), marker="o", markersize=3,
                        color="tab:blue")
        density_ax.axhline(0.0, color="gray", linewidth=0.6)
        density_ax.set_xlim(-0.5, len(shown) * cell - 1.5)
        density_ax.set_ylim(densities.min() - margin, densities.max() + margin)
        density_ax.set_xticks([])
        density_ax.tick_params(labelsize=6 if narrow else 7)
        if not narrow:  # narrow: the note under the rows says what the plots show
            density_ax.set_ylabel("log p", fontsize=8, rotation=0, ha="right", va="center")
    judge_note = (f"labels: the judge's digit per frame, red where it is below {CONFIDENT_PROBABILITY} sure"
                  if judge_reliable else "labels UNRELIABLE (?): the inputs are unlike every training digit")
    note = f"log p: log density relative to the start at the noise level, one shared scale; {judge_note}"
    if narrow:
        fig.text(0.0, 0.0, textwrap.fill(f"under each row: {note}; every other frame shown", NARROW_TEXT_CHARS + 4),
                 fontsize=7, va="top")
        fig.savefig(path, dpi=NARROW_DPI, bbox_inches="tight")
    else:
        fig.text(0.01, 0.07, note, fontsize=9)
        fig.savefig(path, dpi=100, bbox_inches="tight")


def save_density_plot(reports: dict, comparisons, path: Path, *, narrow: bool = False) -> None:
    """Each comparison's two paths' relative log density over their arc length, side by side (``narrow``:
    stacked)."""
    import numpy as np
    from matplotlib.figure import Figure

    from geodesic_pipeline.core import flat, segment_lengths

    count = len(comparisons)
    fig = Figure(figsize=(NARROW_INCHES, 2.3 * count + 0.3) if narrow else (5.5 * count, 3.6))
    axes = fig.subplots(count, 1, sharey=True) if narrow else fig.subplots(1, count, sharey=True)
    for ax, comparison in zip(np.atleast_1d(axes), comparisons, strict=True):
        for name, colour in ((comparison.baseline, "tab:gray"), (comparison.geodesic, "tab:orange")):
            report = reports[name]
            # x is the fraction of Euclidean arc length, not the frame index: the geodesic's frames are spaced
            # evenly in the density metric, which would stretch its low-density stretches on a frame axis.
            segments = segment_lengths(flat(report.latents)).numpy()
            arc = np.concatenate([[0.0], np.cumsum(segments)]) / segments.sum()
            ax.plot(arc, report.readout.log_density.numpy(), marker="o", markersize=3, color=colour,
                    label=f"{name} (length {report.readout.length:.3g})")
        ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}", fontsize=9 if narrow else 10)
        ax.set_xlabel("fraction of Euclidean arc length" + ("" if narrow else " along the path"),
                      fontsize=8 if narrow else None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if narrow else 8)
        if narrow:
            ax.tick_params(labelsize=7)
            ax.set_ylabel("log p(x) - log p(start)", fontsize=8)
    fig.axes[0].set_ylabel("log p(x) - log p(start)", fontsize=8 if narrow else None)
    title = "relative log density at the noise level (length: density-weighted, same alpha)"
    fig.suptitle(textwrap.fill(title, NARROW_TEXT_CHARS) if narrow else title, fontsize=9 if narrow else 10)
    fig.tight_layout()
    fig.savefig(path, dpi=NARROW_DPI if narrow else 120)


def save_animation(reports: dict, comparisons, path: Path, *, narrow: bool = False) -> None:
    """Every path's frames side by side (``narrow``: two a row, one comparison a row), one animation frame per
    path point, there and back (WebP)."""
    import numpy as np
    from PIL import Image, ImageDraw

    names = path_rows(comparisons)
    label_px, gap = 14, 6
    columns = 2 if narrow else len(names)
    rows = -(-len(names) // columns)
    cell_x, cell_y = ANIMATION_FRAME_PX + gap, ANIMATION_FRAME_PX + label_px + gap
    width, height = columns * cell_x - gap, rows * cell_y - gap
    stills = []
    for k in range(len(reports[names[0]].frames)):
        canvas = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(canvas)
        for place, name in enumerate(names):
            frame = (reports[name].frames[k, 0].numpy() + 1.0) * 127.5
            tile = Image.fromarray(frame.round().astype(np.uint8)).resize(
                (ANIMATION_FRAME_PX, ANIMATION_FRAME_PX), Image.Resampling.NEAREST)
            x, y = (place % columns) * cell_x, (place // columns) * cell_y
            canvas.paste(tile, (x, y + label_px))
            draw.text((x + 2, y + 1), name, fill=0)
        stills.append(canvas)
    loop = stills + stills[-2:0:-1]
    loop[0].save(path, save_all=True, append_images=loop[1:], duration=120, loop=0, lossless=True)
