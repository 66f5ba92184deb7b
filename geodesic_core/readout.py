"""Density, distance and geodesic residual along any discrete path, from the scores at its points.

The discrete path x_0..x_{N-1} has relative log density by the trapezoid line integral of the score,
l_{i+1} - l_i = (s_i + s_{i+1}) . (x_{i+1} - x_i) / 2, metric weight w_i = exp(-alpha l_i), length
L = sum (w_i + w_{i+1}) |x_{i+1} - x_i| / 2 and energy E = sum c_i |x_{i+1} - x_i|^2 with
c_i = w_i w_{i+1}. Minimisers of E are constant-speed geodesics; its gradient is the discrete
Euler-Lagrange residual. Weights stay in log space so large log-density ranges cannot overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .fields import DensityField
from .geometry import flat, project_out, rowdot, segment_lengths
from .validation import check_alpha, check_path


@dataclass
class PathTerms:
    """Everything one set of scores tells about a path (all float64 scalars per point/segment)."""

    log_density: Tensor      # [N], relative to the first point
    length: float
    cumulative_length: Tensor  # [N] metric distance from the first point along the path
    log_energy: float
    energy_grad: Tensor      # [N, d] gradient of log E (rows 0 and N-1 are zero: endpoints are fixed)
    segment_weights: Tensor  # [N-1] c_i / E: the elastic stiffness of each segment
    point_residuals: Tensor  # [N], 0 at the fixed endpoints
    residual: float


def path_terms(xf: Tensor, scores: Tensor, alpha: float, *, sphere: bool = False,
               normal_only: bool = False) -> PathTerms:
    """Terms of the flat path ``xf`` [N, d] with ``scores`` [N, d] at its points.

    ``normal_only`` measures the residual across the curve only (the geodesic condition on the shape of
    the path, independent of how the points are spaced along it); otherwise spacing counts too.
    """
    # [N, d] arrays stay in the caller's dtype; per-point scalars are accumulated in float64.
    dt = xf.dtype
    delta = xf[1:] - xf[:-1]
    seg = rowdot(delta, delta).sqrt()
    dlog = 0.5 * rowdot(scores[1:] + scores[:-1], delta)
    log_density = torch.cat([dlog.new_zeros(1), dlog.cumsum(0)])
    logw = -alpha * log_density
    # Trapezoid segment weights m_i = (w_i + w_{i+1}) / 2, in log space so wide log-density ranges
    # cannot overflow; the energy sum m_i^2 |dx_i|^2 uses the same quadrature as the length.
    log_m = torch.logaddexp(logw[1:], logw[:-1]) - math.log(2.0)
    tiny = torch.finfo(torch.float64).tiny
    log_seg = torch.log(seg.clamp_min(tiny))
    seg_lengths = torch.exp(log_m + log_seg)
    cumulative = torch.cat([seg_lengths.new_zeros(1), seg_lengths.cumsum(0)])
    length = float(cumulative[-1])
    log_energy = float(torch.logsumexp(2 * log_m + 2 * log_seg, 0))
    c = torch.exp(2 * log_m - log_energy)  # m_i^2 / E
    elastic = torch.zeros_like(xf)
    force = torch.zeros_like(xf)
    elastic[1:-1] = (2 * c[:-1]).to(dt)[:, None] * delta[:-1] - (2 * c[1:]).to(dt)[:, None] * delta[1:]
    # d(m_i)/dx_j = -alpha w_j s_j / 2 for both segments i touching point j.
    pull = torch.exp(log_m + 2 * log_seg - log_energy)  # m_i |dx_i|^2 / E
    force[1:-1] = (-alpha * torch.exp(logw[1:-1]) * (pull[:-1] + pull[1:])).to(dt)[:, None] * scores[1:-1]
    grad = elastic + force
    if sphere:
        grad, force = (project_out(v, xf) for v in (grad, force))
    pr_grad, pr_f = grad, force
    if normal_only and len(xf) > 2:
        tangent = torch.zeros_like(xf)
        tangent[1:-1] = xf[2:] - xf[:-2]
        tangent[0], tangent[-1] = tangent[1], tangent[-2]
        pr_grad, pr_f = (project_out(v, tangent) for v in (grad, force))
    # Scale: the magnitudes of the two spring tensions plus the density force acting on each point,
    # so a straight line in a uniform field (tensions balanced, no force) has residual 0, not 0/0.
    tension = torch.zeros(len(xf), dtype=torch.float64, device=xf.device)
    tension[1:-1] = 2 * (c[:-1] * seg[:-1] + c[1:] * seg[1:])
    num = rowdot(pr_grad, pr_grad).sqrt()
    den = tension + rowdot(pr_f, pr_f).sqrt()
    point_res = torch.where(den > 0, num / den.clamp_min(tiny), torch.zeros_like(num))
    total_den = float(den.square().sum().sqrt())
    residual = float(num.square().sum().sqrt()) / total_den if total_den > 0 else 0.0
    return PathTerms(log_density, length, cumulative, log_energy, grad, c, point_res, residual)


@dataclass
class PathReadout:
    log_density: Tensor      # [N] float64, relative to the first point
    length: float            # metric length with w = exp(-alpha * log_density)
    cumulative_length: Tensor  # [N] float64 metric distance from the first point
    euclidean_length: float
    point_residuals: Tensor  # [N] scale-free Euler-Lagrange residual across the curve (0 at the ends)
    residual: float
    score_evals: int
    scores: Tensor           # [N, *shape]


def path_positions(n: int, device: torch.device | str = "cpu") -> Tensor:
    """``n`` evenly spaced path positions in [0, 1]. Positions handed to a field stay on the CPU whatever
    the points' device: they are a handful of numbers used for host-side lookups (conditioning)."""
    return torch.linspace(0.0, 1.0, n, device=device)


def read_path(field: DensityField, points: Tensor, alpha: float = 1.0, *, sphere: bool = False,
              t: Tensor | None = None) -> PathReadout:
    """Evaluate the score once at every point of any path (e.g. video frames) and read out its numbers."""
    check_path(points)
    check_alpha(alpha)
    t = path_positions(len(points)) if t is None else t
    scores = field.score(points, t)
    terms = path_terms(flat(points), flat(scores), alpha, sphere=sphere, normal_only=True)
    euclid = float(segment_lengths(flat(points)).double().sum())
    return PathReadout(terms.log_density, terms.length, terms.cumulative_length, euclid, terms.point_residuals,
                       terms.residual, len(points), scores)


def log_density_along(field: DensityField, points: Tensor, t: Tensor | None = None) -> Tensor:
    """Relative log density log p(x_i) - log p(x_0) along the path (float64, [N])."""
    return read_path(field, points, 1.0, t=t).log_density


def path_length(field: DensityField, points: Tensor, alpha: float = 1.0, t: Tensor | None = None) -> float:
    return read_path(field, points, alpha, t=t).length


@dataclass
class EfficiencyResult:
    efficiency: float        # geodesic length / path length (<= 1 up to solver tolerance; 1 = a geodesic)
    path: PathReadout
    geodesic: object         # BVPResult between the path's first and last point


def geodesic_efficiency(field: DensityField, points: Tensor, alpha: float = 1.0, *, sphere: bool = False,
                        **bvp_kwargs) -> EfficiencyResult:
    """How close a path (e.g. video frames) is to the density geodesic between its ends."""
    from .bvp import solve_bvp  # the BVP builds on this module's terms

    path = read_path(field, points, alpha, sphere=sphere)
    bvp_kwargs.setdefault("n_points", max(len(points), 3))
    geo = solve_bvp(field, points[0], points[-1], alpha=alpha, sphere=sphere, **bvp_kwargs)
    eff = geo.length / path.length if path.length > 0 else 1.0
    return EfficiencyResult(eff, path, geo)
