"""What the output nodes show: the density readout as a plot and a table, and a VAE-free colour preview of
latents."""

from __future__ import annotations

import io as bytes_io
from typing import TYPE_CHECKING

import latent_preview
import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: renders to a buffer, never touches ComfyUI's matplotlib backend
from PIL import Image
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError
from .model_facts import latent_to_model_space

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher

    from ..geodesic_pipeline.core import PerceptualMetrics
    from .geodesics_on_model import DensityReadoutResult

LATENT_DOWNSCALE = 8  # pixels per latent cell of SD-family VAEs, to size the preview like decoded frames


class ShownFloat(float):
    """A FLOAT output that prints to 4 significant digits, as far as a readout's error bounds go: Preview as Text
    shows ``str()`` of a float (0.2018112057149414 for an efficiency known to about 1e-3). Nodes it feeds get the
    full value: it is a float, and arithmetic on it gives a plain one."""

    def __str__(self) -> str:
        return f"{self:.4g}"


def readout_title(result: DensityReadoutResult) -> str:
    compared = "" if result.compared is None else f", efficiency {result.compared.efficiency:.2f} (1 = geodesic)"
    return f"length {result.readout.length:.4g} ± {result.readout.length_error:.1g}{compared}"


def markdown_table(rows: list[list[str]], numeric: list[bool]) -> str:
    """A Markdown table (the first row its header), cells padded so the columns line up in monospace text:
    Preview as Text renders it as a table (its Markdown mode; the only mode of older frontends) or shows it
    aligned. ``numeric`` columns are right-aligned."""
    widths = [max(3, *(len(row[i]) for row in rows)) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:  # no spaces beside the bars: 4 columns of numbers fit in 32 characters
        return "|" + "|".join(cell.rjust(w) if right else cell.ljust(w)
                              for cell, w, right in zip(cells, widths, numeric, strict=True)) + "|"

    rule = "|" + "|".join("-" * (w - 1) + ":" if right else "-" * w
                          for w, right in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def summary_table(rows: list[list[str]]) -> str:
    """The numbers under a table: name, value rounded to what it is known to, what the value means."""
    return markdown_table([["number", "value", "meaning"], *rows], [False, True, False])


def lpips_summary(metrics: PerceptualMetrics) -> list[list[str]]:
    """PPL and PDV rows of a summary table."""
    return [["ppl", f"{metrics.ppl:.3g}", "sum of the LPIPS steps"],
            ["pdv", f"{metrics.pdv:.2g}", "0 = perfectly even steps"]]


def readout_table(result: DensityReadoutResult, lpips: PerceptualMetrics | None = None) -> str:
    """Two Markdown tables, narrow enough for a text preview beside the node: one row per frame (its position t,
    log density relative to the first frame, geodesic distance from the first frame, and with ``lpips`` the
    LPIPS to the next frame), then the summary."""
    readout = result.readout
    header = ["frame", "t", "log_p", "distance"]
    frames = [[str(i), f"{float(t):.4f}", f"{float(ld):.4g}", f"{float(d):.4g}"]
              for i, (t, ld, d) in enumerate(zip(result.t, readout.log_density, readout.cumulative_length,
                                                 strict=True))]
    summary = [["length", f"{readout.length:.4g}", f"density-weighted, ± {readout.length_error:.1g}"],
               ["euclidean", f"{readout.euclidean_length:.4g}", "straight-line length"],
               ["residual", f"{readout.normal_residual:.2g}", "0 = geodesic"],
               ["lowest log_p", f"{result.min_log_density:.4g}", "vs the first frame"],
               ["log_p error", f"{float(readout.log_density_error.max()):.1g}", "largest bound of a frame's log_p"],
               ["evaluations", str(readout.score_evals), "model evaluations of the readout"],
               ["alpha", f"{result.alpha:.4g}", "density weight, as given" if result.calibration is None else
                f"= strength {result.calibration.strength:g} / pull {result.calibration.pull:.4g}"]]
    if result.compared is not None:
        compared, closure = result.compared, result.compared.closure
        # Both paths end at the last frame: for an exact density their end values would agree.
        summary += [["geodesic", f"{compared.geodesic.readout.length:.4g}", "length of the geodesic between the ends"],
                    ["efficiency", f"{compared.efficiency:.2f}", "1 = geodesic"],
                    ["closure gap", f"{closure.gap:.2g}",
                     f"end log_p, path vs geodesic: quadrature up to {closure.quadrature_bound:.1g}, model at "
                     f"least {closure.field_part:.2g}"]]
    if lpips is not None:
        header.append("lpips")
        for row, step in zip(frames, [f"{float(d):.3g}" for d in lpips.steps] + ["-"], strict=True):
            row.append(step)
        summary += lpips_summary(lpips)
    return markdown_table([header, *frames], [True] * len(header)) + "\n\n" + summary_table(summary)


def density_plot(result: DensityReadoutResult) -> Tensor:
    """IMAGE [1, H, W, 3]: relative log density and cumulative geodesic distance per frame."""
    frames = np.arange(len(result.readout.log_density))
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(frames, result.readout.log_density.numpy(), marker="o", color="tab:blue")
    top.set_ylabel("relative log density")
    top.set_title(readout_title(result))
    top.grid(alpha=0.3)
    bottom.plot(frames, result.readout.cumulative_length.numpy(), marker="o", color="tab:orange")
    bottom.set_ylabel("geodesic distance")
    bottom.set_xlabel("frame")
    bottom.grid(alpha=0.3)
    return figure_image(fig)


def lpips_plot(metrics: PerceptualMetrics) -> Tensor:
    """IMAGE [1, H, W, 3]: LPIPS of every step between adjacent frames, with their mean."""
    steps = metrics.steps.numpy()
    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    axes = fig.subplots()
    axes.bar(np.arange(len(steps)) + 0.5, steps, width=0.8, color="tab:purple")
    axes.axhline(float(steps.mean()), color="black", linestyle="--", linewidth=1, label="mean step")
    axes.set_xlabel("frame")
    axes.set_ylabel("LPIPS to the next frame")
    axes.set_title(f"PPL {metrics.ppl:.3g} (sum of the steps), PDV {metrics.pdv:.2g} (0 = perfectly even steps)")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3, axis="y")
    return figure_image(fig)


def figure_image(fig: Figure) -> Tensor:
    """A matplotlib figure as an IMAGE [1, H, W, 3]."""
    fig.tight_layout()
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    pixels = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)[None]


def latent_rgb_preview(model: ModelPatcher, samples: Tensor) -> Tensor:
    """IMAGE [N, H, W, 3] approximating each latent's colours (ComfyUI's latent preview factors)."""
    latent_format = model.get_model_object("latent_format")
    if latent_format.latent_rgb_factors is None:
        raise GeodesicInputError("vae: this model has no latent colour preview; connect a VAE to get images")
    previewer = latent_preview.Latent2RGBPreviewer(latent_format.latent_rgb_factors,
                                                   latent_format.latent_rgb_factors_bias,
                                                   latent_format.latent_rgb_factors_reshape)
    scaled = latent_to_model_space(model, samples)
    frames = []
    for i in range(len(scaled)):
        preview = previewer.decode_latent_to_preview(scaled[i:i + 1])
        size = (preview.width * LATENT_DOWNSCALE, preview.height * LATENT_DOWNSCALE)
        frames.append(np.asarray(preview.resize(size, Image.NEAREST), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(frames))
