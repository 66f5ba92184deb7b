"""Boundary value problem: the density geodesic between two points.

Both methods report their path through the error-controlled quadrature of ``path_integrals`` (relative log
density and metric length along the chords, or great-circle arcs with the sphere constraint, between the
frames), and ``max_evals`` bounds every score evaluation of the solve, that readout included.

- ``default``: coarse-to-fine (8, 16, ... segments) minimisation of the path energy E = sum L_i^2 (``energy``;
  L_i the metric length of segment i: minimisers are the shortest paths, with the frames equally spaced in
  metric distance) by Gauss-Newton steps with a line search (``default``; the model Hessian, with the density's
  curvature estimated per segment from the frames' scores, is solved through the Woodbury identity:
  ``gauss_newton``). Every accept/reject decision compares two readings made on one and the same quadrature
  layout; layouts go from loose to the quadrature's tolerance, the next one taken only when the gain the
  model predicts, or the last step realised, falls below what the current one resolves. A finer level starts
  from the coarser path with a frame added where each of its segments is halved in metric distance.
  ``converged``: on the certified layout, the relative length gain predicted by the model or realised by the
  last step fell below ``tol``. ``Outcome.FLOOR``: no step along the model's direction decreases the energy
  read on the certified layout (what a learned score, which is not a gradient, can leave). ``search="global"``
  then tries routes through waypoints that score ascent proposes from the local path's displaced frames, and
  keeps the shortest certified path.
- ``paper``: the reference schedule of Yu et al. (CVPR 2025): 1, 3, 7, 15 control points, 100 plain
  gradient steps per level, lr 0.1 (1 - k/400) / n_control, natural cubic spline accelerations,
  level skipped when the smoothness term outweighs the score term, no convergence test.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..budget import check_budget, one_pass_evals
from ..fields import DensityField
from ..path_integrals import path_positions
from ..progress import Callback
from ..readout import PathReadout
from ..validation import GeodesicInputError, check_alpha, check_pair
from .default import DEFAULT_TOL, solve_default
from .gauss_newton import gauss_newton_step
from .global_search import solve_global
from .paper import solve_paper
from .problem import BVPResult, Outcome, Problem

METHODS = ("default", "paper")
SEARCHES = ("local", "global")

__all__ = ["METHODS", "SEARCHES", "BVPResult", "Outcome", "gauss_newton_step", "one_pass_evals", "solve_bvp"]


def _check_args(start, end, n_points, alpha, method, tol, quadrature_tol, max_evals, initial, search):
    check_pair(start, end, ("start", "end"))
    if not isinstance(n_points, int) or n_points < 3:
        raise GeodesicInputError(f"n_points: expected an integer >= 3 (both ends and one interior point), "
                                 f"got {n_points!r}")
    check_alpha(alpha)
    if method not in METHODS:
        raise GeodesicInputError(f"method: expected one of {METHODS}, got {method!r}")
    if not (tol > 0):
        raise GeodesicInputError(f"tol: expected a positive residual tolerance, got {tol!r}")
    if not (0 < quadrature_tol < 1):
        raise GeodesicInputError(f"quadrature_tol: expected a relative tolerance in (0, 1), got {quadrature_tol!r}")
    if max_evals is not None:
        if not isinstance(max_evals, int) or max_evals < 1:
            raise GeodesicInputError(f"max_evals: expected a positive integer or None, got {max_evals!r}")
        check_budget(max_evals, one_pass_evals(n_points), f"a {n_points}-point path")
    if initial is not None and (initial.shape != (n_points, *start.shape)):
        raise GeodesicInputError(f"initial: expected shape {(n_points, *start.shape)}, got {tuple(initial.shape)}")
    if search not in SEARCHES:
        raise GeodesicInputError(f"search: expected one of {SEARCHES}, got {search!r}")
    if method == "paper" and (initial is not None or search != "local"):
        raise GeodesicInputError("method: the paper's schedule always starts from the straight path and searches "
                                 "locally; drop initial and search, or use method='default'")
    if search == "global" and initial is not None:
        raise GeodesicInputError("initial: the global search proposes its own start paths; drop initial, or use "
                                 "search='local'")


def solve_bvp(field: DensityField, start: Tensor, end: Tensor, *, n_points: int = 17, alpha: float = 1.0,
              sphere: bool = False, method: str = "default", tol: float = DEFAULT_TOL, quadrature_tol: float = 1e-3,
              max_evals: int | None = None, callback: Callback | None = None,
              initial: Tensor | None = None, search: str = "local") -> BVPResult:
    """Density geodesic from ``start`` to ``end`` with ``n_points`` points (ends included).

    ``tol`` is the relative length gain per iteration below which the default method has converged (the
    length is then within about ``tol`` of its basin's optimum; frame positions converge as its square root;
    the Euler-Lagrange residual is reported as ``residual``), ``quadrature_tol`` the relative
    accuracy of the log-density and length integrals (see ``path_integrals``), ``max_evals`` a bound on all
    score evaluations of the solve, its readout included (below one readout of the path it is refused).
    ``callback(Progress)`` after every iteration and every change of quadrature layout; returning False stops and
    returns the last accepted path (``outcome`` STOPPED); an exception raised in it propagates (use that to cancel).
    ``search`` "global" (default method only) also tries routes through waypoints the field proposes and returns the
    shortest (``route`` says which won, ``search_evals`` what the search cost); "local" stays in the basin of the
    start path.
    """
    _check_args(start, end, n_points, alpha, method, tol, quadrature_tol, max_evals, initial, search)
    if sphere and (float(start.norm()) == 0.0 or float(end.norm()) == 0.0):
        raise GeodesicInputError("start, end: the sphere constraint needs non-zero endpoints")
    if torch.equal(start, end):
        pts = start.unsqueeze(0).expand(n_points, *start.shape).clone()
        zeros = torch.zeros(n_points, dtype=torch.float64)
        readout = PathReadout(log_density=zeros, log_density_error=zeros.clone(), length=0.0, length_error=0.0,
                              cumulative_length=zeros.clone(), score_evals=0, converged=True, euclidean_length=0.0,
                              point_normal_residuals=zeros.clone(), normal_residual=0.0)
        return BVPResult(pts, path_positions(n_points), readout, 0.0, zeros.clone(), 0, 0, 0, True, Outcome.CONVERGED,
                         method, alpha, sphere)
    problem = Problem(field, start, end, alpha, sphere, quadrature_tol, max_evals)
    if method == "paper":
        return solve_paper(problem, n_points, callback)
    if search == "global":
        return solve_global(problem, n_points, tol, callback)
    return solve_default(problem, n_points, tol, callback, initial)

