"""The model at a noise level: what every front end needs of a diffusion model, behind one small interface.

``ModelAtNoiseLevel``: ``invert`` (clean latents -> latents at the noise level) and ``generate`` (back to
clean latents), with the level's ``sigma``. ``DiffusersModel`` implements it for a diffusers UNet and
scheduler (the embedded digits model, or a latent-diffusion folder) and adds the image side, ``encode``
and ``decode`` (its VAE, or none for a pixel model); the ComfyUI nodes implement it over the workflow's MODEL
(nodes/encode_decode.py: ``ComfyModel``) and leave the image side to the workflow's VAE. A model's own
defaults (alpha, noise level) are in defaults.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .core import core, diffusers_adapter


@runtime_checkable
class ModelAtNoiseLevel(Protocol):
    """A diffusion model at one noise level, as the pipeline uses it (latents [B, C, H, W])."""

    sigma: float

    def invert(self, clean: Tensor) -> Tensor:
        """Clean latents -> latents at the noise level (deterministic DDIM inversion)."""
        ...

    def generate(self, latents: Tensor) -> Tensor:
        """Latents at the noise level -> clean latents (the probability-flow ODE)."""
        ...


@dataclass
class DiffusersModel:
    """A diffusers denoiser at one noise level with its ODE schedules and, for a latent model, its VAE."""

    denoise: diffusers_adapter.DiffusersDenoiser
    sigma: float            # the noise level the geodesic lives at
    schedule: Tensor        # descending sigmas from `sigma` to 0 (flipped for inversion)
    decode_schedule: Tensor | None = None  # decoding's own step count; None: the same as `schedule`
    vae: torch.nn.Module | None = None     # None: the UNet works on pixels

    @property
    def field(self) -> core.DenoiserField:
        return core.DenoiserField(self.denoise, self.sigma)

    def encode(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] -> clean latents (the identity for a pixel-space model)."""
        if self.vae is None:
            return images
        return self.vae.encode(images).latent_dist.mean * self.vae.config.scaling_factor

    def invert(self, clean: Tensor) -> Tensor:
        return core.invert(self.denoise, clean, self.schedule.flip(0))

    def generate(self, latents: Tensor) -> Tensor:
        schedule = self.schedule if self.decode_schedule is None else self.decode_schedule
        return core.generate(self.denoise, latents, schedule)

    def decode(self, clean: Tensor) -> Tensor:
        """Clean latents -> images in [-1, 1]."""
        if self.vae is None:
            return clean.clamp(-1.0, 1.0)
        return self.vae.decode(clean / self.vae.config.scaling_factor).sample.clamp(-1.0, 1.0)

    def to_latents(self, images: Tensor) -> Tensor:
        """Images -> latents at the noise level: ``invert(encode(images))``."""
        return self.invert(self.encode(images))

    def to_images(self, latents: Tensor) -> Tensor:
        """Latents at the noise level -> images: ``decode(generate(latents))``."""
        return self.decode(self.generate(latents))


def diffusion_at_level(unet: torch.nn.Module, scheduler, noise_level: float, invert_steps: int,
                       decode_steps: int | None = None, vae: torch.nn.Module | None = None, *,
                       conditioning: Tensor | None = None) -> DiffusersModel:
    """A diffusers ``unet`` and ``scheduler`` (its training noise schedule) as the model at a fraction
    ``noise_level`` of that schedule, with inversion and decoding schedules, its ``vae`` for a latent model, and
    the text ``conditioning`` of a conditional UNet."""
    denoise = diffusers_adapter.DiffusersDenoiser(unet, scheduler, conditioning=conditioning)
    sigma = diffusers_adapter.sigma_at_noise_level(scheduler, noise_level)
    decode_schedule = None if decode_steps is None else diffusers_adapter.denoising_sigmas(scheduler, sigma,
                                                                                           decode_steps)
    return DiffusersModel(denoise, sigma, diffusers_adapter.denoising_sigmas(scheduler, sigma, invert_steps),
                          decode_schedule, vae)
