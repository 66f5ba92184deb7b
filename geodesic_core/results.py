"""The one readout value: what the density says about a discrete path. ``read_path`` returns it, and every
solver result embeds it (``BVPResult.readout``, ``IVPResult.readout``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from .energy import path_energy
from .path_integrals import PathIntegrals, Segments


@dataclass(frozen=True)
class PathReadout:
    """What the density says about one discrete path: the one readout value every result reports
    (read_path returns it, IVPResult embeds it; a result that did not compute a number has None there)."""

    log_density: Tensor        # [N] float64, relative to the first point
    log_density_error: Tensor  # [N] estimated bound on the quadrature error of each value
    length: float              # metric length with w = exp(-alpha * log_density)
    length_error: float        # estimated bound on the quadrature error of ``length``
    cumulative_length: Tensor  # [N] float64 metric distance from the first point
    euclidean_length: float    # along chords (or arcs with the sphere constraint)
    point_residuals: Tensor    # [N] scale-free Euler-Lagrange residual across the curve (0 at the ends)
    residual: float
    score_evals: int           # the frames and the quadrature's extra nodes
    converged: bool            # every quadrature piece met the tolerance (False: stopped by max_evals)

    @classmethod
    def of(cls, q: PathIntegrals, xf: Tensor, alpha: float, *, sphere: bool) -> PathReadout:
        """The readout of the path through the frames ``xf`` [N, d] from its quadrature ``q``; the residuals
        come from the scores ``q`` already holds (no new score evaluations)."""
        energy = path_energy(xf, q, alpha, sphere=sphere, normal_only=True)
        return cls(q.log_density, q.log_density_error, q.length, q.length_error, q.cumulative_length,
                   Segments.of(xf, sphere).euclidean_length(), energy.point_residuals, energy.residual,
                   q.score_evals, q.converged)

    def cpu(self) -> PathReadout:
        return dataclasses.replace(self, log_density=self.log_density.cpu(),
                                   log_density_error=self.log_density_error.cpu(),
                                   cumulative_length=self.cumulative_length.cpu(),
                                   point_residuals=self.point_residuals.cpu())

