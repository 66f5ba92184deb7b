"""What the output nodes show: the density readout as a plot and a table, and a VAE-free colour preview of
latents."""

from __future__ import annotations

import io as bytes_io
from typing import TYPE_CHECKING

import latent_preview
import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..geodesic_core import GeodesicInputError
from .model_facts import latent_to_model_space

matplotlib.use("Agg")  # no display in a server; must precede pyplot
from matplotlib import pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher

    from ..geodesic_core.perceptual import PerceptualMetrics
    from .geodesics_on_model import DensityReadoutResult

LATENT_DOWNSCALE = 8  # pixels per latent cell of SD-family VAEs, to size the preview like decoded frames


def readout_title(readout: DensityReadoutResult) -> str:
    compared = f", efficiency {readout.efficiency:.3f}" if readout.efficiency >= 0 else ""
    return f"length {readout.length:.4g} ± {readout.length_error:.2g}{compared}"


def readout_table(readout: DensityReadoutResult) -> str:
    """Tab-separated: one row per frame (t, relative log density and its error bound, geodesic distance),
    then the summary."""
    rows = ["frame\tt\trelative_log_density\terror_bound\tgeodesic_distance"]
    rows += [f"{i}\t{float(t):.4f}\t{float(ld):.6g}\t{float(e):.2g}\t{float(d):.6g}"
             for i, (t, ld, e, d) in enumerate(zip(readout.t, readout.log_density, readout.log_density_error,
                                                   readout.cumulative_distance, strict=True))]
    rows.append(f"geodesic_length\t{readout.length:.6g}")
    rows.append(f"geodesic_length_error_bound\t{readout.length_error:.2g}")
    rows.append(f"euclidean_length\t{readout.euclidean_length:.6g}")
    rows.append(f"geodesic_residual\t{readout.residual:.4g}")
    rows.append(f"min_relative_log_density\t{readout.min_log_density:.6g}")
    rows.append(f"readout_score_evaluations\t{readout.score_evals}")
    if readout.efficiency >= 0:
        rows.append(f"geodesic_between_ends_length\t{readout.geodesic_length:.6g}")
        rows.append(f"efficiency\t{readout.efficiency:.6g}")
    if readout.closure is not None:
        # Both paths end at the last frame: for an exact density their end values would agree.
        rows.append(f"closure_gap_at_end_vs_geodesic\t{readout.closure.gap:.4g}")
        rows.append(f"closure_quadrature_bound\t{readout.closure.quadrature_bound:.2g}")
        rows.append(f"closure_non_conservative_part_at_least\t{readout.closure.field_part:.4g}")
    return "\n".join(rows)


def density_plot(readout: DensityReadoutResult) -> Tensor:
    """IMAGE [1, H, W, 3]: relative log density and cumulative geodesic distance per frame."""
    frames = np.arange(len(readout.log_density))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.8), dpi=100, sharex=True)
    top.plot(frames, readout.log_density.numpy(), marker="o", color="tab:blue")
    top.set_ylabel("relative log density")
    top.set_title(readout_title(readout))
    top.grid(alpha=0.3)
    bottom.plot(frames, readout.cumulative_distance.numpy(), marker="o", color="tab:orange")
    bottom.set_ylabel("geodesic distance")
    bottom.set_xlabel("frame")
    bottom.grid(alpha=0.3)
    return figure_image(fig)


def lpips_plot(metrics: PerceptualMetrics) -> Tensor:
    """IMAGE [1, H, W, 3]: LPIPS of every step between adjacent frames, with their mean."""
    steps = metrics.steps.numpy()
    fig, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    axes.bar(np.arange(len(steps)) + 0.5, steps, width=0.8, color="tab:purple")
    axes.axhline(float(steps.mean()), color="black", linestyle="--", linewidth=1, label="mean step")
    axes.set_xlabel("frame")
    axes.set_ylabel("LPIPS to the next frame")
    axes.set_title(f"PPL {metrics.ppl:.4g}, PDV {metrics.pdv:.4g} (even steps: PDV 0)")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3, axis="y")
    return figure_image(fig)


def figure_image(fig) -> Tensor:
    """A matplotlib figure as an IMAGE [1, H, W, 3] (the figure is closed)."""
    fig.tight_layout()
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
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
