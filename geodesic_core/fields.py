"""Density fields: anything with a batched ``score(x, t)``.

``x`` is [B, *shape]; ``t`` is None or a [B] tensor in [0, 1], the position of each point along the
path (conditioning can be interpolated with it). Solvers count evaluations themselves, so fields
hold no hidden state beyond their constructor arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .geometry import flat
from .validation import GeodesicInputError, check_finite

Denoiser = Callable[[Tensor, float, "Tensor | None"], Tensor]
NOISE_KINDS = ("ve", "flow")


class DensityField(Protocol):
    def score(self, x: Tensor, t: Tensor | None = None) -> Tensor: ...


def flat_score(field: DensityField, shape: tuple[int, ...], dtype: torch.dtype) -> Callable[[Tensor, Tensor], Tensor]:
    """``field.score`` on flat points [B, d]: each is reshaped to ``shape`` and cast to the field's ``dtype``
    (the solvers work in float64, the model in its own precision); the scores come back flat [B, d]."""
    def score(x: Tensor, t: Tensor) -> Tensor:
        return flat(field.score(x.to(dtype).reshape(len(x), *shape), t))
    return score


class GaussianMixtureField:
    """Mixture of isotropic Gaussians with closed-form score and log density (the exact reference)."""

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None):
        means = torch.as_tensor(means)
        if means.ndim < 2:
            raise GeodesicInputError(f"means: expected [K, *shape] with K components, got shape {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=means.dtype)
        stds = stds.expand(k).clone() if stds.ndim == 0 else stds
        weights = torch.full((k,), 1.0 / k, dtype=means.dtype) if weights is None else torch.as_tensor(weights)
        if stds.shape != (k,) or weights.shape != (k,):
            raise GeodesicInputError(
                f"stds and weights: expected one value per component ({k}), got {tuple(stds.shape)} "
                f"and {tuple(weights.shape)}")
        if (stds <= 0).any() or (weights <= 0).any():
            raise GeodesicInputError("stds and weights must all be positive")
        self.means = means
        self.stds = stds
        self.log_weights = torch.log(weights / weights.sum())
        self.shape = tuple(means.shape[1:])

    def _component_log_probs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xf = flat(x).to(torch.float64)
        mu = flat(self.means).to(device=x.device, dtype=torch.float64)
        var = (self.stds.to(device=x.device, dtype=torch.float64)) ** 2
        d = xf.shape[1]
        sq = torch.cdist(xf, mu) ** 2
        logc = (self.log_weights.to(x.device, torch.float64) - 0.5 * sq / var
                - 0.5 * d * torch.log(2 * math.pi * var))
        return logc, xf

    def log_prob(self, x: Tensor) -> Tensor:
        logc, _ = self._component_log_probs(x)
        return torch.logsumexp(logc, dim=1)

    def score(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        logc, xf = self._component_log_probs(x)
        resp = torch.softmax(logc, dim=1)
        mu = flat(self.means).to(device=x.device, dtype=torch.float64)
        var = (self.stds.to(device=x.device, dtype=torch.float64)) ** 2
        # sum_k r_k (mu_k - x) / var_k
        s = (resp / var) @ mu - (resp / var).sum(1, keepdim=True) * xf
        return s.to(x.dtype).reshape(x.shape)


def in_chunks(fn: Callable[[Tensor, Tensor | None], Tensor], x: Tensor, t: Tensor | None,
              chunk_size: int | None) -> Tensor:
    """Apply ``fn(x, t)`` over the batch in chunks of at most ``chunk_size`` (memory bound)."""
    if chunk_size is None or x.shape[0] <= chunk_size:
        return fn(x, t)
    outs = []
    for i in range(0, x.shape[0], chunk_size):
        outs.append(fn(x[i:i + chunk_size], None if t is None else t[i:i + chunk_size]))
    return torch.cat(outs)


def score_from_denoised(x: Tensor, denoised: Tensor, sigma: float, kind: str) -> Tensor:
    """Tweedie: the score of the noisy density at level ``sigma`` from the denoiser's estimate of x0."""
    if kind == "ve":
        return (denoised - x) / sigma**2
    return ((1.0 - sigma) * denoised - x) / sigma**2


def check_noise(sigma: float, kind: str) -> None:
    if kind not in NOISE_KINDS:
        raise GeodesicInputError(f"kind: expected one of {NOISE_KINDS}, got {kind!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise GeodesicInputError(f"sigma: expected a finite positive noise level, got {sigma!r}")
    if kind == "flow" and sigma >= 1:
        raise GeodesicInputError(f"sigma: a flow model's noise level must be below 1, got {sigma}")


class DenoiserField:
    """Score of the noisy-data density at one level ``sigma``, from any denoiser ``denoise(x, sigma, t) -> x0``.

    ``guidance`` g with a ``negative`` denoiser gives s + g (s - s_neg). ``smoothing`` > 0 re-noises each
    point to a random level in [sigma, sigma * (1 + smoothing)] with fresh noise before denoising (the
    paper's stochastic smoothing); the field is then random, so pass a ``generator`` for reproducibility.
    """

    def __init__(self, denoise: Denoiser, sigma: float, kind: str = "ve", *, negative: Denoiser | None = None,
                 guidance: float = 0.0, smoothing: float = 0.0, chunk_size: int | None = None,
                 generator: torch.Generator | None = None):
        check_noise(sigma, kind)
        if guidance != 0.0 and negative is None:
            raise GeodesicInputError("guidance: a non-zero guidance scale needs a negative denoiser")
        if smoothing < 0:
            raise GeodesicInputError(f"smoothing: expected >= 0, got {smoothing}")
        if chunk_size is not None and chunk_size < 1:
            raise GeodesicInputError(f"chunk_size: expected a positive batch size, got {chunk_size}")
        self.denoise = denoise
        self.sigma = float(sigma)
        self.kind = kind
        self.negative = negative
        self.guidance = float(guidance)
        self.smoothing = float(smoothing)
        self.chunk_size = chunk_size
        self.generator = generator

    def _score_chunk(self, x: Tensor, t: Tensor | None) -> Tensor:
        sigma = self.sigma
        xin = x
        if self.smoothing > 0:
            u = torch.rand((), generator=self.generator, device="cpu").item()
            sigma = self.sigma * (1.0 + self.smoothing * u)
            if self.kind == "ve":
                extra = math.sqrt(sigma**2 - self.sigma**2)
                xin = x + extra * torch.randn(x.shape, generator=self.generator, device="cpu").to(x)
            else:
                # flow: x = (1-s)x0 + s n; rescale the signal and top up the noise to reach level sigma.
                scale = (1 - sigma) / (1 - self.sigma)
                extra = math.sqrt(max(sigma**2 - (scale * self.sigma) ** 2, 0.0))
                xin = scale * x + extra * torch.randn(x.shape, generator=self.generator, device="cpu").to(x)
        s = score_from_denoised(xin, self.denoise(xin, sigma, t), sigma, self.kind)
        if self.negative is not None and self.guidance != 0.0:
            s_neg = score_from_denoised(xin, self.negative(xin, sigma, t), sigma, self.kind)
            s = s + self.guidance * (s - s_neg)
        return s

    def score(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        s = in_chunks(self._score_chunk, x, t, self.chunk_size)
        check_finite(s, "denoiser output (score)")
        return s
