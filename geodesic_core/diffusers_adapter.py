"""A diffusers UNet + noise scheduler as the variance-exploding denoiser that geodesic_core takes.

geodesic_core works in ComfyUI's scaled convention, x = x0 + sigma * n ("ve"). A diffusers model with
cumulative alphas a_t is variance preserving, x_vp = sqrt(a_t) x0 + sqrt(1 - a_t) n, which is the same
point rescaled: sigma_t = sqrt((1 - a_t) / a_t) and x_vp = x / sqrt(1 + sigma_t^2). So one adapter lets
DenoiserField, invert and generate drive any diffusers epsilon / v / sample model, inside or outside
ComfyUI. Import it explicitly (``from geodesic_core.diffusers_adapter import DiffusersDenoiser``): the
core itself never imports diffusers.

    denoise = DiffusersDenoiser(unet, scheduler)
    sigma = sigma_at_noise_level(scheduler, 0.6)            # the paper's default level
    schedule = denoising_sigmas(scheduler, sigma, n_steps=20)
    noisy = invert(denoise, x0, schedule.flip(0))           # clean -> level sigma
    field = DenoiserField(denoise, sigma)                   # score of the noisy density
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .validation import GeodesicInputError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def scheduler_sigmas(scheduler) -> Tensor:
    """[T] float64 sigma of every training timestep, ascending: sqrt((1 - a_t) / a_t)."""
    alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
    if alphas_cumprod is None:
        raise GeodesicInputError(
            f"scheduler: expected a diffusers noise scheduler with `alphas_cumprod` (DDPM, DDIM, Euler, ...), "
            f"got {type(scheduler).__name__}")
    alphas = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
    return ((1.0 - alphas) / alphas).sqrt()


def sigma_to_timestep(sigmas: Tensor, sigma: float) -> float:
    """Continuous timestep whose sigma is ``sigma``, interpolating linearly in log sigma (clamped to the
    table's range, so levels below the smallest trained sigma use timestep 0)."""
    log_sigmas = sigmas.log()
    log_sigma = math.log(max(float(sigma), float(sigmas[0])))
    if log_sigma >= float(log_sigmas[-1]):
        return float(len(sigmas) - 1)
    high = int(torch.searchsorted(log_sigmas, torch.tensor(log_sigma, dtype=torch.float64), right=True))
    low = max(high - 1, 0)
    span = float(log_sigmas[high] - log_sigmas[low])
    frac = 0.0 if span == 0.0 else (log_sigma - float(log_sigmas[low])) / span
    return low + frac


def timestep_to_sigma(sigmas: Tensor, timestep: float) -> float:
    """Sigma at a continuous timestep in [0, T-1], interpolating linearly in log sigma."""
    low = min(int(math.floor(timestep)), len(sigmas) - 1)
    high = min(low + 1, len(sigmas) - 1)
    frac = timestep - low
    return math.exp((1.0 - frac) * math.log(float(sigmas[low])) + frac * math.log(float(sigmas[high])))


def sigma_at_noise_level(scheduler, noise_level: float) -> float:
    """Sigma at a fraction of the training schedule: timestep noise_level * (T - 1).

    noise_level 0.6 is the paper's default (60% of the schedule)."""
    if not (isinstance(noise_level, (int, float)) and 0.0 < noise_level <= 1.0):
        raise GeodesicInputError(f"noise_level: expected a fraction of the schedule in (0, 1], got {noise_level!r}")
    sigmas = scheduler_sigmas(scheduler)
    return timestep_to_sigma(sigmas, noise_level * (len(sigmas) - 1))


def denoising_sigmas(scheduler, sigma_max: float, n_steps: int) -> Tensor:
    """[n_steps + 1] descending float64 sigmas for ``generate``: evenly spaced timesteps from the one at
    ``sigma_max`` down to 0 (DDIM's spacing), then 0. Flipped, it is the matching ``invert`` schedule, so
    inverting and generating with it retrace the same probability-flow ODE."""
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise GeodesicInputError(f"n_steps: expected a positive integer, got {n_steps!r}")
    if not (isinstance(sigma_max, (int, float)) and math.isfinite(sigma_max) and sigma_max > 0):
        raise GeodesicInputError(f"sigma_max: expected a finite positive noise level, got {sigma_max!r}")
    sigmas = scheduler_sigmas(scheduler)
    timesteps = torch.linspace(sigma_to_timestep(sigmas, sigma_max), 0.0, n_steps, dtype=torch.float64)
    # the top level is sigma_max itself, not its round trip through the timestep table
    levels = [float(sigma_max)] + [timestep_to_sigma(sigmas, float(ts)) for ts in timesteps[1:]]
    return torch.tensor([*levels, 0.0], dtype=torch.float64)


def _path_conditioning(conditioning: Tensor | tuple[Tensor, Tensor] | None, t: Tensor | None,
                       batch: int) -> Tensor | None:
    # A (start, end) pair is interpolated linearly with the path position, as the paper does for prompts.
    if conditioning is None:
        return None
    if isinstance(conditioning, tuple):
        if t is None:
            raise GeodesicInputError("t: a (start, end) conditioning pair needs the path position of every point")
        start, end = conditioning
        weight = t.to(start).reshape(-1, *([1] * (start.ndim - 1)))
        return start + weight * (end - start)
    return conditioning.expand(batch, *conditioning.shape[1:]) if conditioning.shape[0] == 1 else conditioning


class DiffusersDenoiser:
    """``denoise(x, sigma, t) -> x0`` for a diffusers UNet (UNet2DModel or UNet2DConditionModel) and its
    scheduler, with x in the variance-exploding form x = x0 + sigma * n.

    The UNet gets x / sqrt(1 + sigma^2) at the continuous timestep whose sigma is ``sigma``; its epsilon,
    v or sample prediction (the scheduler's ``prediction_type``) is turned into x0. ``conditioning`` is
    passed as ``encoder_hidden_states`` ([1 or B, ...], or a (start, end) pair interpolated with ``t``);
    without it ``t`` is ignored (an unconditional model).
    """

    def __init__(self, unet: torch.nn.Module, scheduler, *,
                 conditioning: Tensor | tuple[Tensor, Tensor] | None = None):
        prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        if prediction_type not in PREDICTION_TYPES:
            raise GeodesicInputError(
                f"scheduler: prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        self.unet = unet
        self.sigmas = scheduler_sigmas(scheduler)
        self.prediction_type = prediction_type
        self.conditioning = conditioning

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @torch.no_grad()
    def __call__(self, x: Tensor, sigma: float, t: Tensor | None = None) -> Tensor:
        sigma = float(sigma)
        timestep = torch.full((x.shape[0],), sigma_to_timestep(self.sigmas, sigma), device=x.device)
        unet_dtype = next(self.unet.parameters()).dtype
        x_vp = (x / math.sqrt(1.0 + sigma**2)).to(unet_dtype)
        kwargs = {}
        hidden = _path_conditioning(self.conditioning, t, x.shape[0])
        if hidden is not None:
            kwargs["encoder_hidden_states"] = hidden.to(device=x.device, dtype=unet_dtype)
        out = self.unet(x_vp, timestep, **kwargs).sample.to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - sigma * out
        if self.prediction_type == "v_prediction":
            # x0 = sqrt(a) x_vp - sqrt(1 - a) v with a = 1 / (1 + sigma^2)
            return x / (1.0 + sigma**2) - sigma * out / math.sqrt(1.0 + sigma**2)
        return out
