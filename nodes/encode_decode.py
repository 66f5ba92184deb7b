"""Behind the encode and decode nodes: clean latents -> a path by deterministic inversion, and a path ->
clean latents by deterministic generation (the math is geodesic_core/flow.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..geodesic_core import GeodesicInputError, generate, invert
from .bridge import run_with_denoiser
from .model_facts import (
    check_path_for,
    latent_from_model_space,
    latent_to_model_space,
    model_key,
    noise_kind,
    ode_sigmas,
    sigma_at,
)
from .path import ConditioningSchedule, GeodesicPath

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher


def keyframe_positions(n: int) -> Tensor:
    return torch.linspace(0.0, 1.0, n) if n > 1 else torch.zeros(1)


def check_inversion_steps(steps: int) -> None:
    """The first inversion step starts at the clean latent (sigma 0), where no model call is made: one step
    would move along no model's direction at all, so it would not invert anything."""
    if steps < 2:
        raise GeodesicInputError(f"steps: the inversion needs at least 2 steps (its first step starts at the "
                                 f"clean latent and makes no model call), got {steps}")


def encode_latents(model: ModelPatcher, samples: Tensor, conditioning: list, *, noise_level: float, steps: int,
                   batch_size: int) -> GeodesicPath:
    """Invert clean (unscaled, LATENT-convention) latents [N, C, H, W] to the noise level.

    Every point becomes a keyframe carrying ``conditioning``; inversion runs at CFG 1 because higher
    guidance makes DDIM inversion diverge.
    """
    channels = model.get_model_object("latent_format").latent_channels
    if samples.ndim != 4 or samples.shape[1] != channels:
        raise GeodesicInputError(
            f"latent: expected [batch, {channels}, height, width] latents for this model, got "
            f"{tuple(samples.shape)}; use the VAE and model from the same checkpoint family")
    check_inversion_steps(steps)
    kind = noise_kind(model)
    sigma = sigma_at(model, noise_level)
    sigmas = ode_sigmas(model, noise_level, steps).flip(0)
    t = keyframe_positions(len(samples))
    schedule = ConditioningSchedule(tuple(float(v) for v in t), (conditioning,) * len(samples))
    clean = latent_to_model_space(model, samples)

    def invert_keyframes(denoise, device):
        noisy = invert(denoise, clean.to(device), sigmas, kind=kind, t=t)
        return noisy.float().cpu()

    # The first inversion step starts from the clean latent itself (sigma 0): no model call.
    points = run_with_denoiser(model, schedule, invert_keyframes, stage="inversion",
                               latent_shape=tuple(samples.shape[1:]), batch_size=batch_size,
                               largest_batch=len(samples), total_evals=(steps - 1) * len(samples), sigma=sigma)
    return GeodesicPath(points, t, noise_level, sigma, model_key(model), schedule)


def decode_path(model: ModelPatcher, path: GeodesicPath, *, steps: int, batch_size: int,
                input_name: str = "path") -> Tensor:
    """Clean latents (unscaled, LATENT convention) of every path point, each with its own conditioning."""
    check_path_for(model, path, input_name)
    kind = noise_kind(model)
    sigmas = ode_sigmas(model, path.noise_level, steps)

    def generate_clean(denoise, device):
        clean = generate(denoise, path.points.to(device), sigmas, kind=kind, t=path.t)
        return clean.float().cpu()

    clean = run_with_denoiser(model, path.schedule, generate_clean, stage="decode",
                              latent_shape=tuple(path.points.shape[1:]), batch_size=batch_size,
                              largest_batch=len(path), total_evals=steps * len(path), sigma=path.sigma)
    return latent_from_model_space(model, clean)
