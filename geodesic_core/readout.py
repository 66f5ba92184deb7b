"""Density, distance and geodesic residual along any discrete path (e.g. video frames), with error bounds.

The numbers come from the error-controlled quadrature of ``path_integrals``: the frames stay where they are,
and the path between them is the chord (or, with the sphere constraint, the great-circle arc).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .budget import check_budget, one_pass_evals
from .bvp import BVPResult, solve_bvp
from .fields import DensityField, flat_score
from .geometry import flat
from .path_integrals import integrate_path, path_positions
from .results import PathReadout
from .validation import GeodesicInputError, check_alpha, check_path


def read_path(field: DensityField, points: Tensor, alpha: float = 1.0, *, sphere: bool = False,
              t: Tensor | None = None, tol: float = 1e-3, max_evals: int | None = None) -> PathReadout:
    """Read out any path's relative log density, metric length and residual, to relative accuracy ``tol``.

    Costs one score evaluation per frame plus the quadrature's nodes between them (batched; at least 3 per
    segment, more where the density changes fast). ``max_evals`` caps them all: below one pass
    (``one_pass_evals``) it is refused, above it stops the refinement, and the error bounds say what was
    reached.
    """
    check_path(points)
    check_alpha(alpha)
    if not (0 < tol < 1):
        raise GeodesicInputError(f"tol: expected a relative tolerance in (0, 1), got {tol!r}")
    t = path_positions(len(points)) if t is None else t
    xf = flat(points)
    check_budget(max_evals, one_pass_evals(len(points)), f"the {len(points)} points")
    q = integrate_path(flat_score(field, points.shape[1:], points.dtype), xf, alpha, sphere=sphere, t=t, tol=tol,
                       max_evals=max_evals)
    return PathReadout.of(q, xf, alpha, sphere=sphere)


def log_density_along(field: DensityField, points: Tensor, t: Tensor | None = None, *, sphere: bool = False,
                      tol: float = 1e-3) -> Tensor:
    """Relative log density log p(x_i) - log p(x_0) along the path (float64, [N])."""
    return read_path(field, points, 1.0, t=t, sphere=sphere, tol=tol).log_density


def path_length(field: DensityField, points: Tensor, alpha: float = 1.0, t: Tensor | None = None, *,
                sphere: bool = False, tol: float = 1e-3) -> float:
    return read_path(field, points, alpha, t=t, sphere=sphere, tol=tol).length


@dataclass
class Closure:
    """How far two paths with the same ends disagree on the end's relative log density.

    For an exact gradient field the whole gap is quadrature error, bounded by ``quadrature_bound``; what
    exceeds that bound (``field_part``, a lower bound) is the score's non-conservative part, which no
    quadrature removes (a learned score is not an exact gradient)."""

    gap: float               # log density at the end along the first path minus along the second
    quadrature_bound: float  # sum of both paths' reported error bounds at the end
    field_part: float        # max(0, |gap| - quadrature_bound)


def closure(first: PathReadout | BVPResult, second: PathReadout | BVPResult) -> Closure:
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
    eff = geo.length / path.length if path.length > 0 else 1.0
    return EfficiencyResult(eff, path, geo, closure(path, geo))
