"""How a path compares with the geodesic between its ends: its efficiency (geodesic length / its length), and
the closure of two paths with the same ends (how far their end values disagree, and why)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .bvp import BVPResult, solve_bvp
from .fields import DensityField
from .readout import PathReadout, read_path


@dataclass
class Closure:
    """How far two paths with the same ends disagree on the end's relative log density.

    For an exact gradient field the whole gap is quadrature error, bounded by ``quadrature_bound``; what
    exceeds that bound (``field_part``, a lower bound) is the score's non-conservative part, which no
    quadrature removes (a learned score is not an exact gradient)."""

    gap: float               # log density at the end along the first path minus along the second
    quadrature_bound: float  # sum of both paths' reported error bounds at the end
    field_part: float        # max(0, |gap| - quadrature_bound)


def closure(first: PathReadout, second: PathReadout) -> Closure:
    gap = float(first.log_density[-1] - second.log_density[-1])
    bound = float(first.log_density_error[-1] + second.log_density_error[-1])
    return Closure(gap, bound, max(0.0, abs(gap) - bound))


@dataclass
class EfficiencyResult:
    efficiency: float        # geodesic length / path length (<= 1 up to solver tolerance; 1 = a geodesic)
    path: PathReadout
    geodesic: BVPResult      # between the path's first and last point
    closure: Closure         # path vs geodesic at the shared end


def geodesic_efficiency(field: DensityField, points: Tensor, alpha: float = 1.0, *, sphere: bool = False,
                        quadrature_tol: float = 1e-3, readout_max_evals: int | None = None,
                        **bvp_kwargs) -> EfficiencyResult:
    """How close a path (e.g. video frames) is to the density geodesic between its ends; both are read out
    to relative accuracy ``quadrature_tol`` (the path's readout within ``readout_max_evals``); ``bvp_kwargs``
    go to ``solve_bvp`` (method, tol, max_evals)."""
    path = read_path(field, points, alpha, sphere=sphere, tol=quadrature_tol, max_evals=readout_max_evals)
    bvp_kwargs.setdefault("n_points", max(len(points), 3))
    geo = solve_bvp(field, points[0], points[-1], alpha=alpha, sphere=sphere, quadrature_tol=quadrature_tol,
                    **bvp_kwargs)
    eff = geo.readout.length / path.length if path.length > 0 else 1.0
    return EfficiencyResult(eff, path, geo, closure(path, geo.readout))
