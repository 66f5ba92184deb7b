"""Flat [N, d] path geometry: straight lines, great circles, sphere projections, finite differences."""

from __future__ import annotations

import torch
from torch import Tensor

from .validation import GeodesicInputError


def flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def lerp(a: Tensor, b: Tensor, ts: Tensor) -> Tensor:
    """Points (1 - t) a + t b for each t in ``ts``: [len(ts), *a.shape]."""
    ts = ts.to(a).reshape(-1, *([1] * a.ndim))
    return (1 - ts) * a + ts * b


def slerp(a: Tensor, b: Tensor, ts: Tensor) -> Tensor:
    """Great-circle interpolation between a and b (norms interpolated linearly), [len(ts), *a.shape]."""
    af, bf = a.reshape(-1).double(), b.reshape(-1).double()
    na, nb = af.norm(), bf.norm()
    cos = torch.clamp(af @ bf / (na * nb), -1.0, 1.0)
    theta = torch.arccos(cos)
    ts_ = ts.to(af).reshape(-1, 1)
    if float(theta) < 1e-6:
        return lerp(a, b, ts)
    ua, ub = af / na, bf / nb
    dirs = (torch.sin((1 - ts_) * theta) * ua + torch.sin(ts_ * theta) * ub) / torch.sin(theta)
    radius = (1 - ts_) * na + ts_ * nb
    return (dirs * radius).to(a.dtype).reshape(len(ts), *a.shape)


def dot(a: Tensor, b: Tensor) -> float:
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


def project_out(v: Tensor, u: Tensor) -> Tensor:
    """Remove from each row of v its component along the matching row of u (u need not be unit)."""
    uu = (u * u).sum(-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
    return v - (v * u).sum(-1, keepdim=True) / uu * u


def to_sphere(x: Tensor, radius: Tensor | float) -> Tensor:
    return x * (radius / x.norm(dim=-1, keepdim=True))


def segment_lengths(xf: Tensor) -> Tensor:
    return (xf[1:] - xf[:-1]).norm(dim=-1)


def knot_interval(knots: Tensor, x: Tensor, *, right: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """The piecewise-linear lookup: for each x (clamped to the knots' range), the index of the knot before it,
    of the knot after it, and the linear weight of the latter in [0, 1]. ``knots``: ascending (repeats
    allowed), at least two, on x's device. On a knot, ``right`` takes the interval after it (False: before
    it, which skips a stretch where the knots repeat)."""
    x = x.clamp(knots[0], knots[-1])
    after = torch.searchsorted(knots, x, right=right).clamp(1, len(knots) - 1)
    before = after - 1
    weight = ((x - knots[before]) / (knots[after] - knots[before]).clamp_min(1e-300)).clamp(0.0, 1.0)
    return before, after, weight


def resample_polyline(xf: Tensor, n: int) -> Tensor:
    """n points evenly spaced in Euclidean arc length along the polyline through the rows of xf."""
    seg = segment_lengths(xf).double()
    cum = torch.cat([seg.new_zeros(1), seg.cumsum(0)])
    if float(cum[-1]) == 0.0:
        return xf[:1].expand(n, -1).clone()
    targets = torch.linspace(0, float(cum[-1]), n, dtype=torch.float64, device=xf.device)
    idx, after, frac = knot_interval(cum, targets)
    out = xf[idx] + frac.to(xf.dtype).unsqueeze(1) * (xf[after] - xf[idx])
    out[0], out[-1] = xf[0], xf[-1]
    return out


def allocate_steps(weights: list[float], total: int) -> list[int]:
    """Split ``total`` frame steps over segments in proportion to ``weights``, at least one each
    (largest-remainder rounding, so the sum is exact)."""
    n = len(weights)
    if total < n:
        raise GeodesicInputError(f"frames: {n} keyframe segments need at least {n} steps between frames")
    spare = total - n
    weight_sum = sum(weights)
    shares = [spare * w / weight_sum if weight_sum > 0 else spare / n for w in weights]
    steps = [1 + int(s) for s in shares]
    by_remainder = sorted(range(n), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_remainder[: total - sum(steps)]:
        steps[i] += 1
    return steps
