"""Boundary value problem: the density geodesic between two points.

Both methods report their path through the error-controlled quadrature of ``path_integrals`` (relative log
density and metric length along the chords, or great-circle arcs with the sphere constraint, between the
frames), and ``max_evals`` bounds every score evaluation of the solve, that readout included.

- ``default``: coarse-to-fine (8, 16, ... segments) minimisation of the path energy E = sum L_i^2 of that same
  quadrature (L_i the metric length of segment i: minimisers are the shortest paths, with the frames equally
  spaced in metric distance), by L-BFGS preconditioned with the energy's elastic (tridiagonal) Hessian and
  an Armijo line search. A line search keeps the quadrature's node layout fixed, so the objective it
  compares is a smooth function of the points; the layout is refined to tolerance at every accepted path
  and coarsened where it is finer than needed. Converges when the scale-free Euler-Lagrange residual of the
  energy falls below ``tol``. Each trial path is one batched field call (frames and quadrature nodes).
- ``paper``: the reference schedule of Yu et al. (CVPR 2025): 1, 3, 7, 15 control points, 100 plain
  gradient steps per level, lr 0.1 (1 - k/400) / n_control, natural cubic spline accelerations,
  level skipped when the smoothness term outweighs the score term, no convergence test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor

from .fields import DensityField
from .geometry import dot, flat, project_out, resample_polyline, segment_lengths, slerp, to_sphere
from .path_integrals import (
    BudgetExceeded,
    Layout,
    PathEnergy,
    PathIntegrals,
    coarsen_for_reuse,
    integrate_path,
    path_energy,
    path_positions,
)
from .progress import Callback, Progress
from .validation import GeodesicInputError, check_alpha, check_pair

METHODS = ("default", "paper")
# Coarse levels only seed the next one: a loose residual and few iterations there save evaluations without
# changing the final length (benchmarks/solvers.py).
COARSE_TOL, COARSE_MAX_ITER, FINAL_MAX_ITER, BACKTRACK = 0.15, 8, 200, 0.25
# While iterating, each segment's quadrature is refined to at most this many leaves: a mode switch moves
# with every step, so resolving it to full accuracy at every trial path would multiply the evaluations
# (up to ~7,000 per trial on the 16,384-D benchmark mixtures). The returned path is read out in full.
ITERATION_LEAVES_PER_SEGMENT = 4


class Outcome(str, Enum):
    """Why a solve (or one of its resolution levels) ended."""

    CONVERGED = "converged"  # the residual met the tolerance
    STALLED = "stalled"      # no further progress (no acceptable step, or 10% over the stall window)
    BUDGET = "budget"        # max_evals would be exceeded by the next step
    STOPPED = "stopped"      # the callback returned False
    SCHEDULE = "schedule"    # the paper's fixed schedule ran to its end (it has no convergence test)


@dataclass
class BVPResult:
    points: Tensor            # [n_points, *shape]; endpoints are the inputs (sphere-rescaled if sphere)
    t: Tensor                 # [n_points] path positions in [0, 1]
    log_density: Tensor       # [n_points] float64, relative to the start
    log_density_error: Tensor  # [n_points] estimated bound on the quadrature error of log_density
    length: float             # metric length, w = exp(-alpha * log_density), along chords / arcs
    length_error: float       # estimated bound on the quadrature error of length
    residual: float           # scale-free Euler-Lagrange residual of the path energy (0 = geodesic)
    point_residuals: Tensor   # [n_points]
    score_evals: int          # every evaluation of the solve, its readout included
    readout_evals: int        # of which the final readout's quadrature (paper: not part of its schedule)
    iterations: int
    converged: bool
    outcome: Outcome
    method: str
    alpha: float
    sphere: bool
    history: list[dict] = field(default_factory=list)

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
        self.max_evals = max_evals
        self.shape, self.dtype = a.shape, a.dtype
        af, bf = a.reshape(1, -1), b.reshape(1, -1)
        self.radius = None
        if sphere:
            self.radius = 0.5 * (af.norm() + bf.norm())
            af, bf = to_sphere(af, self.radius), to_sphere(bf, self.radius)
        self.a, self.b = af, bf
        self.evals = 0
        self.reserve = 0  # evaluations kept back for the final resolution's first pass
        ends = self.score(torch.cat([af, bf]), torch.tensor([0.0, 1.0]))
        self.s_a, self.s_b = ends[:1], ends[1:]

    def left(self) -> int | None:
        return None if self.max_evals is None else self.max_evals - self.reserve - self.evals

    def score(self, xf: Tensor, t: Tensor) -> Tensor:
        self.evals += len(xf)
        s = self.field.score(xf.reshape(len(xf), *self.shape), t)
        return flat(s).to(xf.dtype)

    def full(self, interior: Tensor) -> Tensor:
        return torch.cat([self.a, interior, self.b])

    def retract(self, xf: Tensor) -> Tensor:
        return to_sphere(xf, self.radius) if self.sphere else xf

    def evaluate(self, interior: Tensor, *, layout: Layout | None = None, refine: bool = True,
                 max_leaves_per_segment: int | None = None) -> _State:
        """Score the frames and the quadrature nodes of a path in one batched call (then refine, if asked);
        raises _OutOfBudget when that first call does not fit the budget left."""
        n = len(interior) + 2
        xf = self.full(interior)
        frame_scores = torch.zeros_like(xf)
        frame_scores[0], frame_scores[-1] = self.s_a[0], self.s_b[0]
        known = torch.zeros(n, dtype=torch.bool)
        known[0] = known[-1] = True
        try:
            integrals = integrate_path(self.score, xf, self.alpha, frame_scores=frame_scores, known_frames=known,
                                       sphere=self.sphere, t=path_positions(n), tol=self.quadrature_tol,
                                       layout=layout, refine=refine, max_evals=self.left(),
                                       max_leaves_per_segment=max_leaves_per_segment)
        except BudgetExceeded as exc:
            raise _OutOfBudget from exc
        return self._state(interior, integrals)

    def refined(self, state: _State) -> _State:
        """The same path with its layout refined to tolerance (no evaluations where it already is)."""
        xf = self.full(state.interior)
        integrals = integrate_path(self.score, xf, self.alpha, sphere=self.sphere, t=path_positions(len(xf)),
                                   tol=self.quadrature_tol, layout=state.integrals.layout,
                                   nodes=state.integrals.nodes, max_evals=self.left())
        return self._state(state.interior, integrals)

    def relaid(self, state: _State, layout: Layout) -> _State:
        """The same path read on a coarser layout whose nodes it already has (no evaluations)."""
        xf = self.full(state.interior)
        integrals = integrate_path(self.score, xf, self.alpha, sphere=self.sphere, t=path_positions(len(xf)),
                                   tol=self.quadrature_tol, layout=layout, nodes=state.integrals.nodes,
                                   refine=False)
        return self._state(state.interior, integrals)

    def _state(self, interior: Tensor, integrals: PathIntegrals) -> _State:
        energy = path_energy(self.full(interior), integrals, self.alpha, sphere=self.sphere)
        return _State(interior, integrals, energy)

    def result(self, state: _State, *, iterations: int, outcome: Outcome, method: str, history: list[dict],
               readout_evals: int = 0) -> BVPResult:
        xf = self.full(state.interior)
        q = state.integrals
        return BVPResult(
            points=xf.reshape(len(xf), *self.shape).to(self.dtype), t=path_positions(len(xf)),
            log_density=q.log_density, log_density_error=q.log_density_error, length=q.length,
            length_error=q.length_error, residual=state.energy.residual,
            point_residuals=state.energy.point_residuals, score_evals=self.evals, readout_evals=readout_evals,
            iterations=iterations, converged=outcome == Outcome.CONVERGED, outcome=outcome, method=method,
            alpha=self.alpha, sphere=self.sphere, history=history)

    def progress(self, state: _State, step: int) -> Progress:
        xf = self.full(state.interior)
        return Progress(step=step, total=None, points=xf.reshape(len(xf), *self.shape).to(self.dtype),
                        score_evals=self.evals, length=state.integrals.length, residual=state.energy.residual)


def one_pass_evals(n_points: int) -> int:
    """Score evaluations of the smallest readout of an ``n_points`` path: both ends, the interior frames and
    the quadrature's first nodes (3 per segment). A budget below it cannot report any path."""
    return n_points + 3 * (n_points - 1)


def _check_args(start, end, n_points, alpha, method, tol, quadrature_tol, max_evals, initial):
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


def solve_bvp(field: DensityField, start: Tensor, end: Tensor, *, n_points: int = 17, alpha: float = 1.0,
              sphere: bool = False, method: str = "default", tol: float = 1e-3, quadrature_tol: float = 1e-3,
              max_evals: int | None = None, callback: Callback | None = None,
              initial: Tensor | None = None) -> BVPResult:
    """Density geodesic from ``start`` to ``end`` with ``n_points`` points (ends included).

    ``tol`` is the Euler-Lagrange residual to converge to (default method), ``quadrature_tol`` the relative
    accuracy of the log-density and length integrals (see ``path_integrals``), ``max_evals`` a bound on all
    score evaluations of the solve, its readout included (below one readout of the path it is refused).
    ``callback(Progress)`` after every iteration; returning False stops and returns the last accepted path
    (``outcome`` STOPPED); an exception raised in it propagates (use that to cancel).
    """
    _check_args(start, end, n_points, alpha, method, tol, quadrature_tol, max_evals, initial)
    if sphere and (float(start.norm()) == 0.0 or float(end.norm()) == 0.0):
        raise GeodesicInputError("start, end: the sphere constraint needs non-zero endpoints")
    if torch.equal(start, end):
        pts = start.unsqueeze(0).expand(n_points, *start.shape).clone()
        zeros = torch.zeros(n_points, dtype=torch.float64)
        return BVPResult(pts, path_positions(n_points), zeros, zeros.clone(), 0.0, 0.0, 0.0, zeros.clone(), 0, 0, 0,
                         True, Outcome.CONVERGED, method, alpha, sphere)
    problem = _Problem(field, start, end, alpha, sphere, quadrature_tol, max_evals)
    solve = _solve_default if method == "default" else _solve_paper
    return solve(problem, n_points, tol, callback, initial)


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
    ts = torch.linspace(0, m, n_segments + 1, dtype=torch.float64, device=xf.device)[1:-1]
    i0 = ts.floor().long().clamp(max=m - 1)
    frac = (ts - i0).to(xf.dtype)[:, None]
    return xf[i0] + frac * (xf[i0 + 1] - xf[i0])


def _elastic_solve(c: Tensor, g: Tensor) -> Tensor:
    """Apply the inverse of the energy's elastic Hessian (tridiagonal in the point index, built from the
    segment weights c) to g [n, d]."""
    n = len(g)
    h = torch.diag(2 * (c[:-1] + c[1:]))
    if n > 1:
        off = -2 * c[1:-1]
        h = h + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.inv(h).to(device=g.device, dtype=g.dtype) @ g


@dataclass
class _LevelEnd:
    state: _State
    iterations: int
    outcome: Outcome


def _solve_default(problem: _Problem, n_points: int, tol: float, callback: Callback | None,
                   initial: Tensor | None) -> BVPResult:
    history: list[dict] = []
    levels = _levels(n_points - 1) if initial is None else [n_points - 1]
    # Keep back what the final resolution's first readout costs, so coarse levels cannot spend it.
    problem.reserve = one_pass_evals(n_points) - 2 if len(levels) > 1 else 0
    xf = flat(initial).to(problem.a) if initial is not None else _initial_path(problem, levels[0] + 1)
    iteration = 0
    end: _LevelEnd | None = None
    for level, n_seg in enumerate(levels):
        final_level = level == len(levels) - 1
        if final_level:
            problem.reserve = 0
        interior = problem.retract(_resample_in_t(xf, n_seg)) if len(xf) != n_seg + 1 else xf[1:-1]
        try:
            state = problem.evaluate(interior)
        except _OutOfBudget:
            break  # only a coarse level can get here: the final level's first pass is reserved
        end = _lbfgs_level(problem, state, tol if final_level else max(tol, COARSE_TOL), callback, history,
                           iteration, level, FINAL_MAX_ITER if final_level else COARSE_MAX_ITER)
        iteration = end.iterations
        xf = problem.full(end.state.interior)
        if end.outcome == Outcome.STOPPED:
            break
    if end is None or len(end.state.interior) != n_points - 2:
        return _finish_at_resolution(problem, xf, n_points, iteration, history,
                                     end.outcome if end is not None else Outcome.BUDGET)
    return problem.result(end.state, iterations=iteration, outcome=end.outcome, method="default", history=history)


def _finish_at_resolution(problem: _Problem, xf: Tensor, n_points: int, iteration: int, history: list[dict],
                          outcome: Outcome) -> BVPResult:
    """A run stopped before reaching ``n_points``: resample its best path and read it out."""
    problem.reserve = 0
    interior = problem.retract(resample_polyline(xf, n_points)[1:-1])
    before = problem.evals
    state = problem.evaluate(interior)
    return problem.result(state, iterations=iteration, outcome=outcome, method="default", history=history,
                          readout_evals=problem.evals - before)


def _lbfgs_level(problem: _Problem, state: _State, tol: float, callback: Callback | None, history: list[dict],
                 iteration: int, level: int, max_iter: int, memory: int = 6, stall_window: int = 15) -> _LevelEnd:
    """Iterate one resolution level from ``state``; returns the last accepted path.

    The quadrature layout stays fixed while the error estimates that every trial evaluation brings along stay
    within tolerance, so the line search and the curvature pairs see one smooth objective. When they do not,
    the accepted path's layout is refined (and merged where finer than needed) and the curvature memory
    restarts, since the objective changed. Convergence needs both the residual and the quadrature in
    tolerance."""
    pairs: list[tuple[Tensor, Tensor, float]] = []
    residuals = [state.energy.residual]
    for _ in range(max_iter):
        if state.energy.residual <= tol and state.integrals.converged:
            return _LevelEnd(state, iteration, Outcome.CONVERGED)
        if len(residuals) > stall_window and min(residuals[-stall_window:]) > 0.9 * min(residuals[:-stall_window]):
            return _LevelEnd(state, iteration, Outcome.STALLED)  # no 10% progress over the last window
        x, g = state.interior, state.energy.grad[1:-1]
        c = state.energy.segment_weights
        d = -_two_loop(g, pairs, lambda v, c=c: _elastic_solve(c, v))
        if problem.sphere:
            d = project_out(d, x)
        gd = dot(g, d)
        if gd >= 0:  # not a descent direction: drop the curvature memory
            pairs.clear()
            d = -_elastic_solve(c, g)
            d = project_out(d, x) if problem.sphere else d
            gd = dot(g, d)
        # Never move a point further than the path's longest segment in one step.
        seg_max = float(segment_lengths(problem.full(x)).max())
        step_max = float(d.norm(dim=-1).max())
        eta = min(1.0, seg_max / step_max) if step_max > 0 else 1.0
        trial = None
        for _ in range(8):
            try:
                candidate = problem.evaluate(problem.retract(x + eta * d),
                                             max_leaves_per_segment=ITERATION_LEAVES_PER_SEGMENT)
            except _OutOfBudget:
                return _LevelEnd(state, iteration, Outcome.BUDGET)
            if candidate.integrals.log_energy <= state.integrals.log_energy + 1e-4 * eta * gd:
                trial = candidate
                break
            eta *= BACKTRACK
        if trial is None:
            if state.integrals.converged:
                return _LevelEnd(state, iteration, Outcome.STALLED)
            trial, eta = state, 0.0  # no descent on an inaccurate layout: refine it and go on
        if trial.integrals.converged:
            sk, yk = trial.interior - x, trial.energy.grad[1:-1] - g
            sy = dot(sk, yk)
            if sy > 1e-12 * (dot(sk, sk) * dot(yk, yk)) ** 0.5:
                pairs.append((sk, yk, sy))
                if len(pairs) > memory:
                    pairs.pop(0)
            state = trial
        else:
            refined = problem.refined(trial)
            state = problem.relaid(refined, coarsen_for_reuse(refined.integrals))
            if not state.integrals.converged:  # merging went too far: keep the refined layout
                state = refined
            pairs.clear()
        residuals.append(state.energy.residual)
        iteration += 1
        history.append({"iteration": iteration, "level": level, "points": len(x) + 2, "score_evals": problem.evals,
                        "length": state.integrals.length, "residual": state.energy.residual, "step": eta})
        if callback is not None and callback(problem.progress(state, iteration)) is False:
            return _LevelEnd(state, iteration, Outcome.STOPPED)
    converged = state.energy.residual <= tol and state.integrals.converged
    return _LevelEnd(state, iteration, Outcome.CONVERGED if converged else Outcome.STALLED)


def _two_loop(g: Tensor, pairs: list[tuple[Tensor, Tensor, float]], precondition: Callable[[Tensor], Tensor]):
    q = g.clone()
    alphas = []
    for sk, yk, sy in reversed(pairs):
        a = dot(sk, q) / sy
        alphas.append(a)
        q = q - a * yk
    r = precondition(q)
    if pairs:
        # Scale the preconditioner by the latest measured curvature (s.y / y.P y), as in standard
        # L-BFGS: the elastic Hessian misses the density's own curvature along the path.
        sk, yk, sy = pairs[-1]
        r = r * (sy / dot(yk, precondition(yk)))
    for (sk, yk, sy), a in zip(pairs, reversed(alphas)):
        b = dot(yk, r) / sy
        r = r + (a - b) * sk
    return r


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


def _solve_paper(problem: _Problem, n_points: int, tol: float, callback: Callback | None,
                 initial: Tensor | None, *, strengths: int = 4,
                 steps_per_level: int = 100, lr0: float = 0.1) -> BVPResult:
    total = strengths * steps_per_level
    # Keep back the final readout's first pass (the schedule itself never reads the path out).
    problem.reserve = one_pass_evals(n_points) - 2
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
        left = problem.left()
        if left is not None and n_ctrl > left:
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
    problem.reserve = 0
    before = problem.evals
    state = problem.evaluate(problem.retract(out[1:-1]))
    return problem.result(state, iterations=it, outcome=outcome, method="paper", history=history,
                          readout_evals=problem.evals - before)
