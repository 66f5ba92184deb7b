"""Behind the encode and decode nodes: clean latents -> a path by deterministic inversion, and a path ->
clean latents by deterministic generation (the math is geodesic_core/flow.py), through ``ComfyModel``: the
workflow's MODEL at a noise level as geodesic_pipeline's ModelAtNoiseLevel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError, generate, invert
from .bridge import NodeBar, run_with_denoiser
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


def check_one_source(image_given: bool, latent_given: bool) -> None:
    """Encode Keyframes takes images (encoded with the VAE) or clean latents, exactly one of them."""
    if latent_given and image_given:
        raise GeodesicInputError("latent: connect either image or latent, not both (images are encoded with "
                                 "the VAE; latents must be clean, such as a KSampler output)")
    if not (image_given or latent_given):
        raise GeodesicInputError("image: connect an image (encoded with the VAE) or a latent (clean, such as "
                                 "a KSampler output)")


@dataclass(frozen=True)
class ComfyModel:
    """The workflow's MODEL at one noise level, each latent conditioned by ``schedule`` at its position in ``t``:
    geodesic_pipeline.model.ModelAtNoiseLevel over the sampler bridge, on latents in the model's own space
    (after process_latent_in). The VAE side stays with ComfyUI's VAE object, as the workflow gave it."""

    model: ModelPatcher
    kind: str                     # the model's noise convention (model_facts.noise_kind)
    noise_level: float
    sigma: float                  # the model's sigma at noise_level (a path's own, when decoding one)
    schedule: ConditioningSchedule
    t: Tensor                     # [N] position of every latent passed in
    steps: int                    # DDIM steps between the clean latents and the noise level
    batch_size: int               # latents per model call (0: as many as fit)
    bar: NodeBar | None = None    # the node's bar, where this is one part of its work (None: a bar of its own)

    def _run(self, latents: Tensor, stage: str, total_evals: int, step, preview: bool) -> Tensor:
        def work(denoise, device):
            return step(denoise, latents.to(device), self.kind).float().cpu()

        return run_with_denoiser(self.model, self.schedule, work, stage=stage, latent_shape=tuple(latents.shape[1:]),
                                 batch_size=self.batch_size, largest_batch=len(latents), total_evals=total_evals,
                                 sigma=self.sigma, preview=preview, bar=self.bar)

    def invert(self, clean: Tensor) -> Tensor:
        """Clean latents -> latents at the noise level (deterministic DDIM inversion at CFG 1: higher guidance
        makes the inversion diverge)."""
        sigmas = ode_sigmas(self.model, self.noise_level, self.steps).flip(0)
        # The first inversion step starts from the clean latent itself (sigma 0): no model call.
        # No latent preview: its x0 estimates are the input pictures again, and Encode Keyframes, which shows
        # no picture of its own, would grow over the node below it to show them.
        return self._run(clean, "inversion", (self.steps - 1) * len(clean),
                         lambda denoise, x, kind: invert(denoise, x, sigmas, kind=kind, t=self.t), preview=False)

    def generate(self, latents: Tensor) -> Tensor:
        """Latents at the noise level -> clean latents (the probability-flow ODE)."""
        sigmas = ode_sigmas(self.model, self.noise_level, self.steps)
        return self._run(latents, "decode", self.steps * len(latents),
                         lambda denoise, x, kind: generate(denoise, x, sigmas, kind=kind, t=self.t), preview=True)


def encode_latents(model: ModelPatcher, samples: Tensor, conditioning: list, *, noise_level: float, steps: int,
                   batch_size: int) -> GeodesicPath:
    """Invert clean (unscaled, LATENT-convention) latents [N, C, H, W] to the noise level.

    Every point becomes a keyframe carrying ``conditioning``.
    """
    channels = model.get_model_object("latent_format").latent_channels
    if samples.ndim != 4 or samples.shape[1] != channels:
        raise GeodesicInputError(
            f"latent: expected [batch, {channels}, height, width] latents for this model, got "
            f"{tuple(samples.shape)}; use the VAE and model from the same checkpoint family")
    check_inversion_steps(steps)
    kind = noise_kind(model)
    sigma = sigma_at(model, noise_level)
    t = keyframe_positions(len(samples))
    schedule = ConditioningSchedule(tuple(float(v) for v in t), (conditioning,) * len(samples))
    at_level = ComfyModel(model, kind, noise_level, sigma, schedule, t, steps, batch_size)
    return GeodesicPath(at_level.invert(latent_to_model_space(model, samples)), t, noise_level, sigma,
                        model_key(model), schedule)


def decode_path(model: ModelPatcher, path: GeodesicPath, *, steps: int, batch_size: int,
                input_name: str = "path", bar: NodeBar | None = None) -> Tensor:
    """Clean latents (unscaled, LATENT convention) of every path point, each with its own conditioning; ``bar``
    the node's, where the decode is one part of its work (``steps`` units per point)."""
    check_path_for(model, path, input_name)
    at_level = ComfyModel(model, noise_kind(model), path.noise_level, path.sigma, path.schedule, path.t, steps,
                          batch_size, bar)
    return latent_from_model_space(model, at_level.generate(path.points))
