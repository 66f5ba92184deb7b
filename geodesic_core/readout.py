"""The one readout value and the function that makes it: density, distance and how far from a geodesic, along
any discrete path (e.g. video frames), with error bounds.

The numbers come from the error-controlled quadrature of ``path_integrals``: the frames stay where they are,
and the path between them is the chord (or, with the sphere constraint, the great-circle arc).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from .budget import check_budget, one_pass_evals
from .energy import path_energy
from .fields import DensityField, flat_score
from .geometry import flat
from .path_integrals import FrameIntegrals, PathIntegrals, Segments, integrate_path, path_positions
from .validation import GeodesicInputError, check_alpha, check_path


@dataclass(frozen=True)
class PathReadout(FrameIntegrals):
    """What the density says about one discrete path: the one readout value every result reports
    (read_path returns it; BVPResult and IVPResult embed it). Its density and distance fields are the
    quadrature's (``FrameIntegrals``: log_density, log_density_error, length, length_error, cumulative_length,
    score_evals, converged; float64, relative to the first point); the path's own geometry is added here."""

    euclidean_length: float    # along chords (or arcs with the sphere constraint)
    # How far the frames are from a geodesic, from the normal (across-the-curve) part of the Euler-Lagrange
    # residual alone: readable for any path (BVPResult.residual is the solver's, of the whole path energy).
    point_normal_residuals: Tensor  # [N] scale-free, 0 at the ends
    normal_residual: float

    @classmethod
    def of(cls, q: PathIntegrals, xf: Tensor, alpha: float, *, sphere: bool) -> PathReadout:
        """The readout of the path through the frames ``xf`` [N, d] from its quadrature ``q``; the residuals
        come from the scores ``q`` already holds (no new score evaluations)."""
        energy = path_energy(xf, q, alpha, sphere=sphere, normal_only=True)
        return cls(**vars(q.frames), euclidean_length=Segments.of(xf, sphere).euclidean_length(),
                   point_normal_residuals=energy.point_residuals, normal_residual=energy.residual)

    def cpu(self) -> PathReadout:
        return dataclasses.replace(self, log_density=self.log_density.cpu(),
                                   log_density_error=self.log_density_error.cpu(),
                                   cumulative_length=self.cumulative_length.cpu(),
                                   point_normal_residuals=self.point_normal_residuals.cpu())


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
