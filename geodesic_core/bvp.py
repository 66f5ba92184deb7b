"""Boundary value problem: the density geodesic between two points.

Both methods report their path through the error-controlled quadrature of ``path_integrals`` (relative log
density and metric length along the chords, or great-circle arcs with the sphere constraint, between the
frames), and ``max_evals`` bounds every score evaluation of the solve, that readout included.

- ``default``: coarse-to-fine (8, 16, ... segments) minimisation of the path energy E = sum L_i^2 (``energy``;
  L_i the metric length of segment i: minimisers are the shortest paths, with the frames equally spaced in
  metric distance) by Gauss-Newton steps with an Armijo line search. The model Hessian is the energy's elastic
  part, the segments' Jacobian outer products J_i J_i^T and the density's own curvature (a secant estimate
  from the frames' scores), solved through the Woodbury identity (``gauss_newton_step``). Iterations read each
  trial path cheaply (at most two quadrature leaves per segment, one batched call); the error-controlled
  readout is made only to certify, once the model predicts less than the quadrature tolerance to gain, and
  further (polishing) iterations run on the certified layout only while it is cheap. ``converged`` means the
  scale-free Euler-Lagrange residual met ``tol`` on a certified path; ``Outcome.FLOOR`` that the solve
  stopped where the improvement left is below what the quadrature resolves cheaply, or where no step
  decreases the certified energy (a learned field's non-conservative part). ``search="global"`` then tries
  routes through waypoints that score ascent proposes from the local path's displaced frames, and keeps the
  shortest certified path.
- ``paper``: the reference schedule of Yu et al. (CVPR 2025): 1, 3, 7, 15 control points, 100 plain
  gradient steps per level, lr 0.1 (1 - k/400) / n_control, natural cubic spline accelerations,
  level skipped when the smoothness term outweighs the score term, no convergence test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import torch
from torch import Tensor

from .budget import Budget
from .energy import PathEnergy, path_energy
from .fields import DensityField, flat_score
from .geometry import dot, flat, knot_interval, project_out, resample_polyline, segment_lengths, slerp, to_sphere
from .path_integrals import BudgetExceeded, Layout, PathIntegrals, integrate_path, path_positions
from .progress import Callback, Progress
from .results import PathReadout
from .validation import GeodesicInputError, NonFiniteError, check_alpha, check_pair

METHODS = ("default", "paper")
SEARCHES = ("local", "global")
# Coarse levels only seed the next one: a loose residual and few iterations there save evaluations without
# changing the final length (benchmarks/solvers.py).
COARSE_TOL, COARSE_MAX_ITER, FINAL_MAX_ITER = 0.15, 8, 200
LINE_SEARCH_TRIALS, BACKTRACK = 6, 0.25
TANGENT_KEEP = 0.1
# Global search: waypoints from WAYPOINT_FRAMES frames of the local path, displaced by each of WAYPOINT_SCALES
# times the distance between the ends, ASCENT_STEPS score-ascent steps (the first WAYPOINT_PROBE of that
# distance long); waypoints closer than WAYPOINT_SEPARATION of it to each other or to the local path are
# dropped; the ROUTES_POLISHED best-screening routes are solved.
WAYPOINT_FRAMES, WAYPOINT_SCALES, ASCENT_STEPS, WAYPOINT_PROBE = 4, (0.5, 1.0, 2.0), 4, 0.05
WAYPOINT_SEPARATION, ROUTES_POLISHED = 0.05, 1
# While iterating, each segment's quadrature is refined to at most this many leaves: a mode switch moves
# with every step, so resolving it to full accuracy at every trial path would multiply the evaluations.
# The returned path is read out in full.
ITERATION_LEAVES_PER_SEGMENT = 2
# Polishing iterations on the certified layout cost every node of it per trial: worth it only while that
# layout is cheap (at most POLISH_COST times an exploring trial's evaluations; a sharp mixture's certified
# layout can need thousands of nodes), and for at most POLISH_MAX_ITER iterations (benchmarks/solvers.py).
POLISH_MAX_ITER, POLISH_COST, POLISH_NEAR = 30, 2.0, 10.0
EXPLORED_RESIDUAL = 1e-2
DEFAULT_TOL = 1e-3


class Outcome(str, Enum):
    """Why a solve (or one of its resolution levels) ended."""

    CONVERGED = "converged"  # the residual met the tolerance
    STALLED = "stalled"      # no further progress on a coarse level, or the iteration limit
    BUDGET = "budget"        # max_evals would be exceeded by the next step
    STOPPED = "stopped"      # the callback returned False
    FLOOR = "floor"          # the improvement left is below the readout's error bound, or no step decreases
                             # the certified energy (a learned field's non-conservative part)
    SCHEDULE = "schedule"    # the paper's fixed schedule ran to its end (it has no convergence test)


@dataclass
class BVPResult:
    points: Tensor            # [n_points, *shape]; endpoints are the inputs (sphere-rescaled if sphere)
    t: Tensor                 # [n_points] path positions in [0, 1]
    readout: PathReadout      # the certified readout of ``points`` (log density, length, their error bounds)
    residual: float           # scale-free Euler-Lagrange residual of the path energy (0 = geodesic)
    point_residuals: Tensor   # [n_points]
    score_evals: int          # every evaluation of the solve, its readout included
    readout_evals: int        # of which the final readout's quadrature (paper: not part of its schedule)
    iterations: int
    converged: bool           # the residual met the tolerance on a certified readout
    outcome: Outcome
    method: str
    alpha: float
    sphere: bool
    history: list[dict] = field(default_factory=list)
    route: str = "direct"     # the global search's winner: "direct" (the start path's basin) or "via waypoint k"
    search_evals: int = 0     # of score_evals, what the global search spent beyond the local solve

    @property
    def log_density(self) -> Tensor:
        return self.readout.log_density

    @property
    def log_density_error(self) -> Tensor:
        return self.readout.log_density_error

    @property
    def length(self) -> float:
        return self.readout.length

    @property
    def length_error(self) -> float:
        return self.readout.length_error

    def _tangent(self, i0: int, i1: int, i2: int) -> Tensor:
        xf = flat(self.points).double()
        d = -3 * xf[i0] + 4 * xf[i1] - xf[i2]  # second-order one-sided difference
        if self.sphere:
            d = project_out(d[None], xf[i0][None])[0]
        euclid = segment_lengths(xf).sum()
        d = d / d.norm().clamp_min(1e-300) * euclid
        return d.to(self.points.dtype).reshape(self.points.shape[1:])

    @property
    def start_tangent(self) -> Tensor:
        """Initial direction of the path, scaled to its Euclidean length (a velocity for solve_ivp)."""
        return self._tangent(0, 1, 2)

    @property
    def end_tangent(self) -> Tensor:
        """Direction of travel at the end, scaled to the path's Euclidean length (to extrapolate onward)."""
        return -self._tangent(-1, -2, -3)


@dataclass
class _State:
    """One path with everything the quadrature knows about it."""

    interior: Tensor          # [n - 2, d]
    integrals: PathIntegrals
    energy: PathEnergy


class _OutOfBudget(Exception):
    pass


class _Problem:
    """What both methods share: fixed ends and their scores, the quadrature settings, the evaluation budget."""

    def __init__(self, field: DensityField, a: Tensor, b: Tensor, alpha: float, sphere: bool,
                 quadrature_tol: float, max_evals: int | None):
        self.field, self.alpha, self.sphere, self.quadrature_tol = field, alpha, sphere, quadrature_tol
        self.budget = Budget(max_evals)
        self.shape, self.dtype = a.shape, a.dtype
        self.flat_score = flat_score(field, a.shape, a.dtype)
        af, bf = a.reshape(1, -1), b.reshape(1, -1)
        self.radius = None
        if sphere:
            self.radius = 0.5 * (af.norm() + bf.norm())
            af, bf = to_sphere(af, self.radius), to_sphere(bf, self.radius)
        self.a, self.b = af, bf
        ends = self.score(torch.cat([af, bf]), torch.tensor([0.0, 1.0]))
        self.s_a, self.s_b = ends[:1], ends[1:]

    @property
    def evals(self) -> int:
        return self.budget.spent

    def score(self, xf: Tensor, t: Tensor) -> Tensor:
        self.budget.spend(len(xf))
        return self.flat_score(xf, t).to(xf.dtype)

    def full(self, interior: Tensor) -> Tensor:
        return torch.cat([self.a, interior, self.b])

    def retract(self, xf: Tensor) -> Tensor:
        return to_sphere(xf, self.radius) if self.sphere else xf

    def evaluate(self, interior: Tensor, *, keep: int = 0, layout: Layout | None = None,
                 refine: bool = True, max_leaves_per_segment: int | None = None) -> _State:
        """Score the frames and the quadrature nodes of a path in one batched call (then refine, if asked),
        leaving ``keep`` evaluations of the budget unspent; raises _OutOfBudget when that first call does
        not fit."""
        n = len(interior) + 2
        xf = self.full(interior)
        frame_scores = torch.zeros_like(xf)
        frame_scores[0], frame_scores[-1] = self.s_a[0], self.s_b[0]
        known = torch.zeros(n, dtype=torch.bool)
        known[0] = known[-1] = True
        try:
            integrals = integrate_path(self.score, xf, self.alpha, frame_scores=frame_scores, known_frames=known,
                                       sphere=self.sphere, t=path_positions(n), tol=self.quadrature_tol,
                                       layout=layout, refine=refine, max_evals=self.budget.left(keep),
                                       max_leaves_per_segment=max_leaves_per_segment)
        except BudgetExceeded as exc:
            raise _OutOfBudget from exc
        return self._state(interior, integrals)

    def refined(self, state: _State, *, keep: int = 0) -> _State:
        """The same path with its layout refined to tolerance (no evaluations where it already is)."""
        xf = self.full(state.interior)
        integrals = integrate_path(self.score, xf, self.alpha, sphere=self.sphere, t=path_positions(len(xf)),
                                   tol=self.quadrature_tol, layout=state.integrals.layout,
                                   nodes=state.integrals.nodes, max_evals=self.budget.left(keep))
        return self._state(state.interior, integrals)

    def _state(self, interior: Tensor, integrals: PathIntegrals) -> _State:
        energy = path_energy(self.full(interior), integrals, self.alpha, sphere=self.sphere)
        return _State(interior, integrals, energy)

    def result(self, state: _State, *, iterations: int, outcome: Outcome, method: str, history: list[dict],
               readout_evals: int = 0) -> BVPResult:
        xf = self.full(state.interior)
        return BVPResult(
            points=xf.reshape(len(xf), *self.shape).to(self.dtype), t=path_positions(len(xf)),
            readout=PathReadout.of(state.integrals, xf, self.alpha, sphere=self.sphere),
            residual=state.energy.residual, point_residuals=state.energy.point_residuals, score_evals=self.evals,
            readout_evals=readout_evals, iterations=iterations, converged=outcome == Outcome.CONVERGED,
            outcome=outcome, method=method, alpha=self.alpha, sphere=self.sphere, history=history)

    def progress(self, state: _State, step: int) -> Progress:
        xf = self.full(state.interior)
        return Progress(step=step, total=None, points=xf.reshape(len(xf), *self.shape).to(self.dtype),
                        score_evals=self.evals, length=state.integrals.length, residual=state.energy.residual)


def one_pass_evals(n_points: int) -> int:
    """Score evaluations of the smallest readout of an ``n_points`` path: both ends, the interior frames and
    the quadrature's first nodes (3 per segment). A budget below it cannot report any path."""
    return n_points + 3 * (n_points - 1)


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
        if max_evals < one_pass_evals(n_points):
            raise GeodesicInputError(
                f"max_evals: {max_evals} score evaluations cannot cover even one readout of a {n_points}-point "
                f"path ({one_pass_evals(n_points)}: the {n_points} points and 3 quadrature nodes per segment); "
                f"raise it to at least {one_pass_evals(n_points)}, or use fewer points")
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

    ``tol`` is the Euler-Lagrange residual to converge to (default method), ``quadrature_tol`` the relative
    accuracy of the log-density and length integrals (see ``path_integrals``), ``max_evals`` a bound on all
    score evaluations of the solve, its readout included (below one readout of the path it is refused).
    ``callback(Progress)`` after every iteration; returning False stops and returns the last accepted path
    (``outcome`` STOPPED); an exception raised in it propagates (use that to cancel). ``search`` "global"
    (default method only) also tries routes through waypoints the field proposes and returns the shortest
    (``route`` says which won, ``search_evals`` what the search cost); "local" stays in the basin of the
    start path.
    """
    _check_args(start, end, n_points, alpha, method, tol, quadrature_tol, max_evals, initial, search)
    if sphere and (float(start.norm()) == 0.0 or float(end.norm()) == 0.0):
        raise GeodesicInputError("start, end: the sphere constraint needs non-zero endpoints")
    if torch.equal(start, end):
        pts = start.unsqueeze(0).expand(n_points, *start.shape).clone()
        zeros = torch.zeros(n_points, dtype=torch.float64)
        readout = PathReadout(zeros, zeros.clone(), 0.0, 0.0, zeros.clone(), 0.0, zeros.clone(), 0.0, 0, True)
        return BVPResult(pts, path_positions(n_points), readout, 0.0, zeros.clone(), 0, 0, 0, True, Outcome.CONVERGED,
                         method, alpha, sphere)
    problem = _Problem(field, start, end, alpha, sphere, quadrature_tol, max_evals)
    if method == "paper":
        return _solve_paper(problem, n_points, callback)
    if search == "global":
        return _solve_global(problem, n_points, tol, callback)
    return _solve_default(problem, n_points, tol, callback, initial)


def _initial_path(problem: _Problem, n_points: int) -> Tensor:
    ts = path_positions(n_points, problem.a.device)
    if problem.sphere:
        return slerp(problem.a[0], problem.b[0], ts)
    return problem.a + ts[:, None].to(problem.a) * (problem.b - problem.a)


# ---------------------------------------------------------------------------------------------- default


def _levels(n_segments: int) -> list[int]:
    # Halve down to no fewer than 8 segments: coarser paths are too crude a model of the final one to
    # be worth their evaluations.
    levels = [n_segments]
    while levels[-1] >= 16:
        levels.append(math.ceil(levels[-1] / 2))
    return levels[::-1]


def _resample_in_t(xf: Tensor, n_segments: int) -> Tensor:
    """Interior points of a path with ``n_segments`` uniform segments, linear in the path parameter."""
    m = len(xf) - 1
    knots = torch.arange(m + 1, dtype=torch.float64)
    before, after, weight = knot_interval(knots, torch.linspace(0, m, n_segments + 1, dtype=torch.float64)[1:-1])
    return xf[before] + weight.to(xf)[:, None] * (xf[after] - xf[before])


def gauss_newton_step(xf: Tensor, energy: PathEnergy, sphere: bool, curvature: float = 0.0, *,
                      elastic_only: bool = False) -> Tensor:
    """The Gauss-Newton step [n - 2, d] for log E at the path ``xf`` [n, d] (ends fixed).

    Model Hessian: 2 sum_i (J_i J_i^T + c_i P_i), J_i the gradient of segment i's share l_i = L_i / sqrt(E)
    (two [d] blocks), and c_i P_i its elastic stiffness across the segment (c_i = (L_i / |dx_i|)^2 / E,
    P_i = I - t_i t_i^T on the difference of its end points). The J J^T terms carry the density's curvature
    along the scores, which dominates in high dimension (alpha^2 s s^T) and which an elastic preconditioner
    alone misses. With the identity in place of P_i the elastic part is tridiagonal in the point index and the
    same in every coordinate; J_i J_i^T and the tangential corrections c_i t_i t_i^T are 2 (n - 1) rank-one
    terms, so the Woodbury identity solves the whole system through one (2n - 2)^2 matrix. ``elastic_only``
    keeps the tridiagonal part alone (a preconditioned gradient step: the fallback when the model fails)."""
    x = xf.double()
    m = len(x) - 2
    d = x.shape[1]
    g = energy.grad[1:-1].double()
    c = energy.segment_weights
    n_seg = m + 1
    tri = torch.diag(2 * (c[:-1] + c[1:]))
    if m > 1:
        tri = tri - torch.diag(2 * c[1:-1], 1) - torch.diag(2 * c[1:-1], -1)
    # The density's own curvature (alpha times that of -log p, ``curvature``) on each segment's points,
    # weighted as the linear interpolation weights' second moments: 1/3 on each end, 1/6 between them.
    l2 = energy.segment_share.square() * 2 * curvature
    tri = tri + torch.diag((l2[:-1] + l2[1:]) / 3)
    if m > 1:
        tri = tri + torch.diag(l2[1:-1] / 6, 1) + torch.diag(l2[1:-1] / 6, -1)
    tri_inv = torch.linalg.inv(tri)
    if elastic_only:
        step = -(tri_inv @ (project_out(g, x[1:-1]) if sphere else g))
        return (project_out(step, x[1:-1]) if sphere else step).to(xf.dtype)
    # Rank-one columns, each on a segment's two end points: column r has the blocks blocks[r, k] at interior
    # point index[r, k] (k = 0, 1; a block at a fixed end is zero and points at index 0).
    tangent = x[1:] - x[:-1]
    tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    seg = torch.arange(n_seg)
    on_first, on_second = (seg >= 1)[:, None], (seg < m)[:, None]
    blocks = torch.stack([torch.cat([energy.jacobian_start * on_first, tangent * on_first]),
                          torch.cat([energy.jacobian_end * on_second, -tangent * on_second])], 1)  # [2S, 2, d]
    index = torch.stack([(seg - 1).clamp(min=0), seg.clamp(max=m - 1)], 1).repeat(2, 1)          # [2S, 2]
    if sphere:
        blocks = project_out(blocks, x[1:-1][index])
        g = project_out(g, x[1:-1])
    # Keep a little of the tangential stiffness: the model then never goes flat along the path.
    signs = torch.cat([torch.full((n_seg,), 2.0, dtype=torch.float64),
                       -2 * (1 - TANGENT_KEEP) * c.clamp_min(torch.finfo(torch.float64).tiny)])
    flat_blocks = blocks.reshape(-1, d)
    gram = (flat_blocks @ flat_blocks.T).reshape(2 * n_seg, 2, 2 * n_seg, 2)
    coupling = tri_inv[index[:, :, None, None], index[None, None, :, :]]          # [2S, 2, 2S, 2]
    small = torch.diag(1.0 / signs) + (gram * coupling).sum((1, 3))
    tri_g = tri_inv @ g
    rhs = (blocks * tri_g[index]).sum((1, 2))
    coef = torch.linalg.solve(small, rhs)
    scattered = torch.zeros_like(g).index_add_(0, index.reshape(-1), (coef[:, None, None] * blocks).reshape(-1, d))
    step = -(tri_g - tri_inv @ scattered)
    if sphere:
        step = project_out(step, x[1:-1])
    return step.to(xf.dtype)


@dataclass
class _LevelEnd:
    state: _State
    iterations: int
    outcome: Outcome


def _solve_default(problem: _Problem, n_points: int, tol: float, callback: Callback | None,
                   initial: Tensor | None) -> BVPResult:
    history: list[dict] = []
    # A given start path begins at the level of its own resolution (a waypoint route: the coarsest).
    levels = [n for n in _levels(n_points - 1) if initial is None or n >= len(initial) - 1]
    xf = flat(initial).to(problem.a) if initial is not None else _initial_path(problem, levels[0] + 1)
    iteration = 0
    end: _LevelEnd | None = None
    for level, n_seg in enumerate(levels):
        final_level = level == len(levels) - 1
        # A coarse level keeps back the final resolution's first readout, so it cannot spend it.
        keep = 0 if final_level else one_pass_evals(n_points) - 2
        interior = problem.retract(_resample_in_t(xf, n_seg)) if len(xf) != n_seg + 1 else xf[1:-1]
        try:
            state = problem.evaluate(interior, keep=keep, refine=False)
        except _OutOfBudget:
            break  # only a coarse level can get here: the final level's first pass is kept back
        level_tol = tol if final_level else max(tol, COARSE_TOL)
        end = _gauss_newton_level(problem, state, _LevelSettings(level, level_tol, keep, final_level,
                                                                 FINAL_MAX_ITER if final_level else COARSE_MAX_ITER),
                                  callback, history, iteration)
        iteration = end.iterations
        xf = problem.full(end.state.interior)
        if end.outcome == Outcome.STOPPED:
            break
    if end is None or len(end.state.interior) != n_points - 2:
        return _finish_at_resolution(problem, xf, n_points, iteration, history,
                                     end.outcome if end is not None else Outcome.BUDGET)
    state, before = end.state, problem.evals
    if not state.integrals.converged:  # the answer is always read out to tolerance, within the budget
        state = _certify(problem, state, 0) or state
    return problem.result(state, iterations=iteration, outcome=end.outcome, method="default", history=history,
                          readout_evals=problem.evals - before)


def _finish_at_resolution(problem: _Problem, xf: Tensor, n_points: int, iteration: int, history: list[dict],
                          outcome: Outcome) -> BVPResult:
    """A run stopped before reaching ``n_points``: resample its best path and read it out."""
    interior = problem.retract(resample_polyline(xf, n_points)[1:-1])
    before = problem.evals
    state = problem.evaluate(interior)
    return problem.result(state, iterations=iteration, outcome=outcome, method="default", history=history,
                          readout_evals=problem.evals - before)


@dataclass
class _LevelSettings:
    level: int
    tol: float
    keep: int        # evaluations the level must leave unspent
    certify: bool    # final level: the answer must be read out to the quadrature tolerance
    max_iter: int


def _frame_scores(integrals: PathIntegrals) -> Tensor:
    table = integrals.nodes
    n_seg = len(integrals.segment_lengths)
    rows = [table.index[(i, 0.0)] for i in range(n_seg)] + [table.index[(n_seg - 1, 1.0)]]
    return table.scores[rows]


def _path_curvature(xf: Tensor, scores: Tensor) -> float:
    """A first estimate of the curvature of -log p from the scores at a path's frames: the median of the
    positive secants -(s_{i+1} - s_i) . dx_i / |dx_i|^2 along it (0 when none is positive)."""
    dx = (xf[1:] - xf[:-1]).double()
    ds = (scores[1:] - scores[:-1]).double()
    kappa = -(ds * dx).sum(1) / (dx * dx).sum(1).clamp_min(torch.finfo(torch.float64).tiny)
    kappa = kappa[kappa > 0]
    return float(kappa.median()) if len(kappa) else 0.0


def _secant_curvature(old: _State, new: _State, previous: float) -> float:
    """The curvature of -log p along the last step, from the frames' scores before and after it:
    -(s' - s) . (x' - x) / |x' - x|^2 (for a Gaussian of variance v it is 1 / v). Kept at the previous
    estimate when the step gives none (a negative value: a mode switch crossed)."""
    dx = (new.interior - old.interior).double()
    ds = (_frame_scores(new.integrals)[1:-1] - _frame_scores(old.integrals)[1:-1]).double()
    den = float((dx * dx).sum())
    kappa = -float((ds * dx).sum()) / den if den > 0 else -1.0
    return kappa if kappa > 0 else previous


def _gauss_newton_level(problem: _Problem, state: _State, settings: _LevelSettings, callback: Callback | None,
                        history: list[dict], iteration: int) -> _LevelEnd:
    """Gauss-Newton iterations with an Armijo line search on the path energy, from ``state``.

    Two phases. Exploring: every trial path is read with at most ITERATION_LEAVES_PER_SEGMENT leaves per
    segment (frames and those nodes in one batched call), cheap and accurate enough to find the basin's
    optimum to within the quadrature tolerance; it ends when the decrease the model still predicts falls
    below that tolerance. Polishing (final level only): the path is certified (its layout refined to the
    tolerance) and further trials are read on that layout, held fixed, so the energy the line search
    compares is one smooth function of the points; a path that meets the residual tolerance is certified
    before it is returned as converged. Polishing runs only while it pays (near the tolerance, each iteration
    at least halving the residual, the layout cheap; any cost when ``tol`` is below the default) and stops
    at the floor otherwise, or when no step decreases the certified energy (what a learned field's
    non-conservative part or the quadrature's error leave)."""
    keep = settings.keep
    curvature = _path_curvature(problem.full(state.interior), _frame_scores(state.integrals))
    polished, polish_from = 0, math.inf
    # The energy trials are compared with: the current path read the way exploring trials are (certifying a
    # path changes its reading, not the path).
    reference = state.integrals.log_energy
    for _ in range(settings.max_iter):
        accurate = state.integrals.converged
        if state.energy.residual <= settings.tol and (accurate or not settings.certify):
            return _LevelEnd(state, iteration, Outcome.CONVERGED)
        x = state.interior
        d = gauss_newton_step(problem.full(x), state.energy, problem.sphere, problem.alpha * curvature)
        g = state.energy.grad[1:-1]
        gd = dot(g, d)
        if gd >= 0:  # not a descent direction (a non-conservative field's gradient): fall back to the gradient
            d = -g
            gd = dot(g, d)
        # The model's decrease of log E is -gd / 2, of log L about half that.
        predicted_gain = -gd / 4
        polishing = False
        # Done exploring when the model predicts less than the quadrature tolerance to gain, unless the
        # residual says the model is wrong (far from the geodesic, its curvature estimate can be too stiff).
        explored = predicted_gain < problem.quadrature_tol and state.energy.residual <= EXPLORED_RESIDUAL
        if settings.certify and (explored or state.energy.residual <= settings.tol):
            if not accurate:  # certify; its more accurate gradient may show more to gain
                certified = _certify(problem, state, keep)
                if certified is None or not certified.integrals.converged:  # the budget ran out refining
                    return _LevelEnd(state if certified is None else certified, iteration, Outcome.BUDGET)
                state = certified
                continue
            # Polish while it pays: near the tolerance, and while each iteration at least halves the residual
            # (Newton-like progress; a learned field's floor shows as a crawl). A residual tolerance below the
            # default asks for the geodesic whatever the polishing costs.
            strict = settings.tol < DEFAULT_TOL
            pays = (state.energy.residual <= POLISH_NEAR * settings.tol
                    and (polished == 0 or state.energy.residual <= 0.5 * polish_from))
            polish_from = state.energy.residual
            polishing = polished < POLISH_MAX_ITER and (strict or (pays and _cheap_to_polish(state)))
            if not polishing:
                return _LevelEnd(state, iteration, Outcome.FLOOR)
        try:
            trial, eta = _line_search(problem, state, d, gd, keep, polishing,
                                      state.integrals.log_energy if polishing else reference)
            if trial is None:  # the model's step failed: a preconditioned gradient step instead
                d = gauss_newton_step(problem.full(x), state.energy, problem.sphere, elastic_only=True)
                trial, eta = _line_search(problem, state, d, dot(g, d), keep, polishing,
                                          state.integrals.log_energy if polishing else reference)
        except _OutOfBudget:
            return _LevelEnd(state, iteration, Outcome.BUDGET)
        if trial is None:
            if not settings.certify:
                return _LevelEnd(state, iteration, Outcome.STALLED)
            if accurate:  # no descent from a certified path: the field's or the quadrature's floor
                return _LevelEnd(state, iteration, Outcome.FLOOR)
            certified = _certify(problem, state, keep)
            if certified is None:
                return _LevelEnd(state, iteration, Outcome.BUDGET)
            state = certified
            continue
        curvature = _secant_curvature(state, trial, curvature)
        state, reference = trial, trial.integrals.log_energy
        iteration += 1
        polished += polishing
        history.append({"iteration": iteration, "level": settings.level, "points": len(x) + 2,
                        "score_evals": problem.evals, "length": state.integrals.length,
                        "residual": state.energy.residual, "step": eta, "accurate": state.integrals.converged,
                        "predicted_gain": predicted_gain})
        if callback is not None and callback(problem.progress(state, iteration)) is False:
            return _LevelEnd(state, iteration, Outcome.STOPPED)
    return _LevelEnd(state, iteration, Outcome.STALLED)


def _cheap_to_polish(state: _State) -> bool:
    n = len(state.interior) + 2
    layout_cost = len(state.integrals.nodes.u) - 2 * (n - 1) + n - 2  # interior nodes and frames per trial
    exploring_cost = n - 2 + (n - 1) * (4 * ITERATION_LEAVES_PER_SEGMENT - 1)
    return layout_cost <= POLISH_COST * exploring_cost


def _line_search(problem: _Problem, state: _State, d: Tensor, gd: float, keep: int, polishing: bool,
                 reference: float) -> tuple[_State | None, float]:
    """Armijo backtracking along ``d``; returns the accepted trial (None if none) and its step. Raises
    _OutOfBudget when a trial does not fit the budget."""
    x = state.interior
    # Never move a point further than the path's longest segment in one step.
    seg_max = float(segment_lengths(problem.full(x)).max())
    step_max = float(d.norm(dim=-1).max())
    eta = min(1.0, seg_max / step_max) if step_max > 0 else 1.0
    for _ in range(LINE_SEARCH_TRIALS):
        point = problem.retract(x + eta * d)
        try:
            if polishing:
                candidate = problem.evaluate(point, keep=keep, layout=state.integrals.layout, refine=False)
            else:
                candidate = problem.evaluate(point, keep=keep, max_leaves_per_segment=ITERATION_LEAVES_PER_SEGMENT)
        except NonFiniteError:
            # A learned model can overflow far from its data: a trial it cannot score is a rejected trial
            # (its evaluations were made and stay counted).
            eta *= BACKTRACK
            continue
        if candidate.integrals.log_energy <= reference + 1e-4 * eta * gd:
            return candidate, eta
        eta *= BACKTRACK
    return None, 0.0


def _certify(problem: _Problem, state: _State, keep: int) -> _State | None:
    """``state`` with its layout refined to the quadrature tolerance (within the budget: it may stop short,
    with its error bounds saying so); None when not even one more evaluation is left."""
    if not problem.budget.affords(1, keep):
        return None
    return problem.refined(state, keep=keep)


# ---------------------------------------------------------------------------------------------- global


def _solve_global(problem: _Problem, n_points: int, tol: float, callback: Callback | None) -> BVPResult:
    """The local solve, then routes through waypoints the field itself proposes, compared by certified length.

    Waypoints: the local path's interior frames, displaced at random (seeded: the search is reproducible) by
    a few fractions of the distance between the ends, then carried uphill by Newton-type score ascent
    x <- x + s(x) / kappa (kappa the secant curvature of -log p along the path), so that they settle in
    probable regions the local path does not visit. Each route start -> waypoint -> end is screened as a
    coarse polyline on one quadrature leaf per segment; the most promising that screens shorter than the
    local geodesic is solved like the local one, and the shortest certified path is returned."""
    local = _solve_default(problem, n_points, tol, callback, None)
    if local.outcome in (Outcome.STOPPED, Outcome.BUDGET):
        return local
    coarse = _levels(n_points - 1)[0] + 1
    waypoints = _propose_waypoints(problem, flat(local.points).to(problem.a), n_points)
    screened: list[tuple[float, int, Tensor]] = []
    for k, waypoint in enumerate(waypoints):
        route = _route_via(problem, waypoint, coarse)
        keep = one_pass_evals(n_points)
        try:
            state = problem.evaluate(route[1:-1], keep=keep, refine=False)
        except _OutOfBudget:
            break
        except NonFiniteError:
            continue  # the model cannot score this route: not a candidate
        screened.append((state.integrals.length, k, route))
    screened.sort(key=lambda item: item[0])
    best, history = local, list(local.history)
    for screen_length, k, route in screened[:ROUTES_POLISHED]:
        if screen_length >= best.length:
            break
        candidate = _solve_default(problem, n_points, tol, callback, route)
        history += candidate.history
        if candidate.length < best.length:
            best = replace(candidate, route=f"via waypoint {k + 1} of {len(waypoints)}")
        if candidate.outcome in (Outcome.STOPPED, Outcome.BUDGET):
            break
    return replace(best, score_evals=problem.evals, history=history,
                               search_evals=problem.evals - local.score_evals)


def _propose_waypoints(problem: _Problem, xf: Tensor, n_points: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(0)
    interior = xf[1:-1]
    picks = torch.linspace(0, len(interior) - 1, WAYPOINT_FRAMES).round().long()
    span = float((problem.b - problem.a).norm())
    starts = []
    for scale in WAYPOINT_SCALES:
        noise = torch.randn(len(picks), xf.shape[1], generator=generator).to(xf)
        noise = noise / noise.norm(dim=1, keepdim=True) * (scale * span)
        starts.append(interior[picks] + noise)
    points = problem.retract(torch.cat(starts))
    keep = one_pass_evals(n_points)
    if not problem.budget.affords(len(points) * (ASCENT_STEPS + 1), keep):
        return []
    t = torch.full((len(points),), 0.5)
    try:
        return _ascend(problem, points, t, span, xf)
    except NonFiniteError:
        return []  # the model cannot score the displaced frames: no waypoints


def _ascend(problem: _Problem, points: Tensor, t: Tensor, span: float, xf: Tensor) -> list[Tensor]:
    """Score ascent from ``points``, then the distinct end points away from the local path ``xf``."""
    scores = problem.score(points, t)
    tiny = torch.finfo(torch.float64).tiny
    # A first short step along each score, then Newton steps of length 1 / kappa with each point's secant
    # curvature (a step that finds none, e.g. across a mode switch, doubles instead).
    h = (WAYPOINT_PROBE * span / scores.double().norm(dim=1, keepdim=True).clamp_min(tiny))
    for _ in range(ASCENT_STEPS):
        previous, previous_scores = points, scores
        points = problem.retract(points + (h * scores.double()).to(points))
        scores = problem.score(points, t)
        dx, ds = (points - previous).double(), (scores - previous_scores).double()
        kappa = -(ds * dx).sum(1, keepdim=True) / (dx * dx).sum(1, keepdim=True).clamp_min(tiny)
        h = torch.where(kappa > 0, 1.0 / kappa.clamp_min(tiny), 2 * h)
    # Distinct waypoints away from the local path (those near it lie in the basin it already found).
    distinct: list[Tensor] = []
    radius = WAYPOINT_SEPARATION * span
    for p in points:
        if float((xf - p).norm(dim=1).min()) < radius:
            continue
        if all(float((p - q).norm()) >= radius for q in distinct):
            distinct.append(p)
    return distinct


def _route_via(problem: _Problem, waypoint: Tensor, n_points: int) -> Tensor:
    """``n_points`` frames along start -> waypoint -> end, evenly spaced in Euclidean length (arcs on the
    sphere)."""
    half = max(2, n_points // 2 + 1)
    ts = path_positions(half, problem.a.device).to(problem.a)
    if problem.sphere:
        first, second = slerp(problem.a[0], waypoint, ts), slerp(waypoint, problem.b[0], ts)
    else:
        first = problem.a + ts[:, None] * (waypoint - problem.a)
        second = waypoint + ts[:, None] * (problem.b - waypoint)
    polyline = torch.cat([first, second[1:]])
    return problem.retract(resample_polyline(polyline, n_points))


# ---------------------------------------------------------------------------------------------- paper


def _natural_spline_second_derivatives(yf: Tensor, h: float) -> Tensor:
    """Second derivatives M at the uniformly spaced knots of the natural cubic spline through yf [K+1, d]."""
    k = len(yf) - 1
    m = torch.zeros_like(yf)
    if k < 2:
        return m
    n = k - 1
    a = 4 * torch.eye(n, dtype=torch.float64) + torch.diag(torch.ones(n - 1, dtype=torch.float64), 1) \
        + torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    rhs = (yf[2:] - 2 * yf[1:-1] + yf[:-2]) * (6 / h**2)
    m[1:-1] = torch.linalg.inv(a).to(device=yf.device, dtype=yf.dtype) @ rhs
    return m


def _spline_eval(yf: Tensor, m: Tensor, h: float, ts: Tensor) -> Tensor:
    k = len(yf) - 1
    pos = (ts.double() / h).clamp(0, k)
    j = pos.floor().long().clamp(max=k - 1)
    u = (pos - j).to(yf.dtype)[:, None]
    return ((1 - u) * yf[j] + u * yf[j + 1]
            + h**2 / 6 * (((1 - u) ** 3 - (1 - u)) * m[j] + (u**3 - u) * m[j + 1]))


def _slerp_pieces(yf: Tensor, ts: Tensor, h: float) -> Tensor:
    """Piecewise great-circle path through the knots yf (the paper's spherical spline positions)."""
    k = len(yf) - 1
    pos = (ts.double() / h).clamp(0, k)
    j = pos.floor().long().clamp(max=k - 1)
    u = (pos - j).to(yf.dtype)
    out = [slerp(yf[jj], yf[jj + 1], uu[None])[0] for jj, uu in zip(j.tolist(), u)]
    return torch.stack(out)


def _slerp_velocity(x0: Tensor, x1: Tensor, a: float, h: float) -> Tensor:
    cos = torch.clamp((x0 * x1).sum(-1, keepdim=True) / (x0.norm(dim=-1, keepdim=True) * x1.norm(dim=-1, keepdim=True)),
                      -1, 1)
    th = torch.arccos(cos).clamp_min(1e-12)
    return th * (-torch.cos((1 - a) * th) * x0 + torch.cos(a * th) * x1) / torch.sin(th) / h


def _paper_velocity(yf: Tensor, m: Tensor, h: float, sphere: bool) -> Tensor:
    """Velocity at the interior knots: slerp derivative averaged over both sides, or the cubic's."""
    if sphere:
        return 0.5 * (_slerp_velocity(yf[:-2], yf[1:-1], 1.0, h) + _slerp_velocity(yf[1:-1], yf[2:], 0.0, h))
    return (yf[2:] - yf[1:-1]) / h - h * (2 * m[1:-1] + m[2:]) / 6


def _solve_paper(problem: _Problem, n_points: int, callback: Callback | None, *, strengths: int = 4,
                 steps_per_level: int = 100, lr0: float = 0.1) -> BVPResult:
    total = strengths * steps_per_level
    # Keep back the final readout's first pass (the schedule itself never reads the path out).
    keep = one_pass_evals(n_points) - 2
    outcome = Outcome.SCHEDULE
    history: list[dict] = []
    yf = torch.cat([problem.a, problem.b])  # knots at t = j / (len - 1)
    strength, it = 1, 0
    level_knots = 2
    while it < total and strength <= strengths:
        n_ctrl = 2**strength - 1
        if n_ctrl + 2 != level_knots:  # bisect: insert midpoints taken from the current spline
            h_old = 1.0 / (level_knots - 1)
            ts = torch.linspace(0, 1, n_ctrl + 2, dtype=torch.float64, device=yf.device)
            if problem.sphere:
                yf = _slerp_pieces(yf, ts, h_old)
            else:
                yf = _spline_eval(yf, _natural_spline_second_derivatives(yf, h_old), h_old, ts)
            yf[0], yf[-1] = problem.a[0], problem.b[0]
            level_knots = n_ctrl + 2
        h = 1.0 / (level_knots - 1)
        x = yf[1:-1]
        t_ctrl = path_positions(level_knots)[1:-1]
        if not problem.budget.affords(n_ctrl, keep):
            outcome = Outcome.BUDGET
            break
        s = problem.score(x, t_ctrl)
        m = _natural_spline_second_derivatives(yf, h)
        v = _paper_velocity(yf, m, h, problem.sphere)
        acc = m[1:-1]
        if problem.sphere:
            s, acc = project_out(s, x), project_out(acc, x)
        term1 = project_out(s, v)
        term2 = project_out(acc / (v * v).sum(-1, keepdim=True), v) / problem.alpha
        it += 1
        # The paper's heuristic compares the mean per-point norms: when the smoothness term dominates,
        # the step is skipped and the next level starts.
        if float(term1.norm(dim=-1).mean()) < float(term2.norm(dim=-1).mean()):
            strength += 1
            continue
        lr = lr0 * (1 - (it - 1) / total) / n_ctrl
        yf = torch.cat([problem.a, problem.retract(x + lr * (term1 + term2)), problem.b])
        if it >= strength * steps_per_level:
            strength += 1
        history.append({"iteration": it, "level": strength, "points": level_knots,
                        "score_evals": problem.evals, "step": lr})
        if callback is not None:
            knots = yf.to(problem.dtype).reshape(len(yf), *problem.shape)
            if callback(Progress(it, total, knots, problem.evals)) is False:
                outcome = Outcome.STOPPED
                break
    # The output frames are the spline sampled at n_points, read out with fresh scores.
    h = 1.0 / (len(yf) - 1)
    ts = path_positions(n_points, yf.device).double()
    if problem.sphere:
        out = _slerp_pieces(yf, ts, h)
    else:
        out = _spline_eval(yf, _natural_spline_second_derivatives(yf, h), h, ts)
    before = problem.evals
    state = problem.evaluate(problem.retract(out[1:-1]))
    return problem.result(state, iterations=it, outcome=outcome, method="paper", history=history,
                          readout_evals=problem.evals - before)
