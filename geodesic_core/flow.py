"""Deterministic probability-flow ODE in sigma (DDIM): invert clean -> noisy, generate noisy -> clean.

One step from level sigma to sigma' with the denoiser's x0 estimate D keeps the implied noise fixed:
  ve   (x = x0 + sigma n):        x' = D + sigma' (x - D) / sigma
  flow (x = (1-sigma) x0 + sigma n): x' = (1-sigma') D + sigma' (x - (1-sigma) D) / sigma
which is exactly Euler in sigma on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (for both
kinds). ``order=2`` takes Heun steps instead (the Euler step's end re-evaluated, the two slopes averaged; a
step to sigma = 0 stays Euler, as in Karras et al. 2022): two model evaluations per step for a second-order
error, so the same round-trip error can cost fewer evaluations (benchmarks/ode_steps.py). A step from
sigma = 0 starts from the clean sample itself (D = x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .fields import NOISE_KINDS, Denoiser, in_chunks
from .progress import Callback, Progress
from .validation import GeodesicInputError, check_point


def _ddim_step(x: Tensor, denoised: Tensor, sigma: float, sigma_next: float, kind: str) -> Tensor:
    if kind == "ve":
        return denoised + sigma_next * (x - denoised) / sigma
    noise = (x - (1 - sigma) * denoised) / sigma
    return (1 - sigma_next) * denoised + sigma_next * noise


ORDERS = (1, 2)


def _integrate_flow(denoise: Denoiser, x: Tensor, sigmas: Tensor, kind: str, t: Tensor | None, chunk_size: int | None,
                    callback: Callback | None, order: int = 1) -> Tensor:
    if kind not in NOISE_KINDS:
        raise GeodesicInputError(f"kind: expected one of {NOISE_KINDS}, got {kind!r}")
    if order not in ORDERS:
        raise GeodesicInputError(f"order: expected 1 (DDIM / Euler) or 2 (Heun), got {order!r}")
    check_point(x, "x")
    sig = [float(s) for s in torch.as_tensor(sigmas).flatten()]
    if len(sig) < 2:
        raise GeodesicInputError(f"sigmas: expected at least two noise levels, got {len(sig)}")
    if min(sig) < 0 or (kind == "flow" and max(sig) > 1):
        raise GeodesicInputError(f"sigmas: expected levels in [0, {'1' if kind == 'flow' else 'inf'}), got {sig}")
    if t is not None and t.shape != (x.shape[0],):
        raise GeodesicInputError(f"t: expected one path position per sample, shape ({x.shape[0]},), "
                                 f"got {tuple(t.shape)}")
    total = len(sig) - 1
    for i in range(total):
        s, s_next = sig[i], sig[i + 1]
        if s == 0:
            x = _start_from_clean(x, s_next, kind)
        else:
            denoised = in_chunks(lambda xx, tt, s=s: denoise(xx, s, tt), x, t, chunk_size)
            if s_next == 0:
                x = denoised
            elif order == 1:
                x = _ddim_step(x, denoised, s, s_next, kind)
            else:
                euler = _ddim_step(x, denoised, s, s_next, kind)
                denoised_next = in_chunks(lambda xx, tt, s=s_next: denoise(xx, s, tt), euler, t, chunk_size)
                slope = 0.5 * ((x - denoised) / s + (euler - denoised_next) / s_next)
                x = x + (s_next - s) * slope
        if callback is not None:
            callback(Progress(i + 1, total, x))
    return x


def _start_from_clean(x0: Tensor, sigma_next: float, kind: str) -> Tensor:
    # From sigma = 0 the implied noise is undefined; the deterministic choice is no noise at all.
    return x0 if kind == "ve" else (1 - sigma_next) * x0


def invert(denoise: Denoiser, x0: Tensor, sigmas: Tensor, *, kind: str = "ve", t: Tensor | None = None,
           chunk_size: int | None = None, callback: Callback | None = None, order: int = 1) -> Tensor:
    """Clean [B, *shape] -> noisy at sigmas[-1]; ``sigmas`` ascending (DDIM inversion; ``order`` 2: Heun)."""
    sig = torch.as_tensor(sigmas).flatten()
    if len(sig) > 1 and bool((sig[1:] <= sig[:-1]).any()):
        raise GeodesicInputError("sigmas: inversion expects strictly ascending noise levels")
    return _integrate_flow(denoise, x0, sig, kind, t, chunk_size, callback, order)


def generate(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, kind: str = "ve", t: Tensor | None = None,
             chunk_size: int | None = None, callback: Callback | None = None, order: int = 1) -> Tensor:
    """Noisy at sigmas[0] -> clean estimate at sigmas[-1] (usually 0); ``sigmas`` descending (``order`` 2:
    Heun)."""
    sig = torch.as_tensor(sigmas).flatten()
    if len(sig) > 1 and bool((sig[1:] >= sig[:-1]).any()):
        raise GeodesicInputError("sigmas: generation expects strictly descending noise levels")
    return _integrate_flow(denoise, x, sig, kind, t, chunk_size, callback, order)
