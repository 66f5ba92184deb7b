"""Boundary value problem: the density geodesic between two points.

Two methods:
- ``default``: coarse-to-fine (8, 16, ... segments) minimisation of the discrete log-energy with
  L-BFGS, preconditioned by the energy's exact elastic (tridiagonal) Hessian and an Armijo line
  search; converges when the scale-free Euler-Lagrange residual falls below ``tol``. Every iteration
  evaluates all interior points in one field call.
- ``paper``: the reference schedule of Yu et al. (CVPR 2025): 1, 3, 7, 15 control points, 100 plain
  gradient steps per level, lr 0.1 (1 - k/400) / n_control, natural cubic spline accelerations,
  level skipped when the smoothness term outweighs the score term, no convergence test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .fields import DensityField
from .geometry import dot, flat, project_out, resample_polyline, segment_lengths, slerp, to_sphere
from .readout import PathTerms, path_positions, path_terms
from .validation import GeodesicInputError, check_alpha, check_pair

METHODS = ("default", "paper")
# Coarse levels only seed the next one: a loose residual and few iterations there halve the total
# evaluations on the benchmark mixtures without changing the final length (benchmarks/solvers.py).
COARSE_TOL, COARSE_MAX_ITER, BACKTRACK = 0.15, 8, 0.25


@dataclass
class BVPResult:
    points: Tensor            # [n_points, *shape]; endpoints are the inputs (sphere-rescaled if sphere)
    t: Tensor                 # [n_points] path positions in [0, 1]
    log_density: Tensor       # [n_points] float64, relative to the start
    length: float             # metric length, w = exp(-alpha * log_density)
    residual: float           # scale-free Euler-Lagrange residual of the discrete energy (0 = geodesic)
    point_residuals: Tensor   # [n_points]
    score_evals: int
    iterations: int
    converged: bool
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


Callback = Callable[[int, BVPResult], "bool | None"]


class _Problem:
    """Bookkeeping shared by both methods: fixed ends, their scores, the evaluation count."""

    def __init__(self, field: DensityField, a: Tensor, b: Tensor, alpha: float, sphere: bool):
        self.field, self.alpha, self.sphere = field, alpha, sphere
        self.shape, self.dtype = a.shape, a.dtype
        af, bf = a.reshape(1, -1), b.reshape(1, -1)
        self.radius = None
        if sphere:
            self.radius = 0.5 * (af.norm() + bf.norm())
            af, bf = to_sphere(af, self.radius), to_sphere(bf, self.radius)
        self.a, self.b = af, bf
        self.evals = 0
        ends = self.score(torch.cat([af, bf]), torch.tensor([0.0, 1.0]))
        self.s_a, self.s_b = ends[:1], ends[1:]

    def score(self, xf: Tensor, t: Tensor) -> Tensor:
        self.evals += len(xf)
        s = self.field.score(xf.reshape(len(xf), *self.shape), t)
        return flat(s).to(xf.dtype)

    def full(self, interior: Tensor) -> Tensor:
        return torch.cat([self.a, interior, self.b])

    def terms(self, interior: Tensor, s_interior: Tensor) -> PathTerms:
        scores = torch.cat([self.s_a, s_interior, self.s_b])
        return path_terms(self.full(interior), scores, self.alpha, sphere=self.sphere)

    def retract(self, xf: Tensor) -> Tensor:
        return to_sphere(xf, self.radius) if self.sphere else xf

    def result(self, interior: Tensor, terms: PathTerms, *, iterations: int, converged: bool, method: str,
               history: list[dict]) -> BVPResult:
        xf = self.full(interior)
        return BVPResult(
            points=xf.reshape(len(xf), *self.shape).to(self.dtype),
            t=path_positions(len(xf)), log_density=terms.log_density, length=terms.length,
            residual=terms.residual, point_residuals=terms.point_residuals, score_evals=self.evals,
            iterations=iterations, converged=converged, method=method, alpha=self.alpha,
            sphere=self.sphere, history=history)


def _check_args(start, end, n_points, alpha, method, tol, max_evals, initial):
    check_pair(start, end, ("start", "end"))
    if not isinstance(n_points, int) or n_points < 3:
        raise GeodesicInputError(f"n_points: expected an integer >= 3 (both ends and one interior point), "
                                 f"got {n_points!r}")
    check_alpha(alpha)
    if method not in METHODS:
        raise GeodesicInputError(f"method: expected one of {METHODS}, got {method!r}")
    if not (tol > 0):
        raise GeodesicInputError(f"tol: expected a positive residual tolerance, got {tol!r}")
    if max_evals is not None and (not isinstance(max_evals, int) or max_evals < 1):
        raise GeodesicInputError(f"max_evals: expected a positive integer or None, got {max_evals!r}")
    if initial is not None and (initial.shape != (n_points, *start.shape)):
        raise GeodesicInputError(f"initial: expected shape {(n_points, *start.shape)}, got {tuple(initial.shape)}")


def solve_bvp(field: DensityField, start: Tensor, end: Tensor, *, n_points: int = 17, alpha: float = 1.0,
              sphere: bool = False, method: str = "default", tol: float = 1e-3, max_evals: int | None = None,
              callback: Callback | None = None, initial: Tensor | None = None) -> BVPResult:
    """Density geodesic from ``start`` to ``end`` with ``n_points`` points (ends included).

    ``callback(iteration, result_so_far)`` is called after every iteration (``points`` then has the current
    level's resolution); returning False stops and returns the best path so far (``converged`` False);
    an exception raised in it propagates (use that to cancel). ``max_evals`` caps score evaluations.
    """
    _check_args(start, end, n_points, alpha, method, tol, max_evals, initial)
    if sphere and (float(start.norm()) == 0.0 or float(end.norm()) == 0.0):
        raise GeodesicInputError("start, end: the sphere constraint needs non-zero endpoints")
    if torch.equal(start, end):
        pts = start.unsqueeze(0).expand(n_points, *start.shape).clone()
        zeros = torch.zeros(n_points, dtype=torch.float64)
        return BVPResult(pts, path_positions(n_points), zeros, 0.0, 0.0, zeros, 0, 0, True,
                         method, alpha, sphere)
    problem = _Problem(field, start, end, alpha, sphere)
    solve = _solve_default if method == "default" else _solve_paper
    return solve(problem, n_points, tol, max_evals, callback, initial)


def _initial_path(problem: _Problem, n_points: int) -> Tensor:
    ts = path_positions(n_points, problem.a.device)
    if problem.sphere:
        return slerp(problem.a[0], problem.b[0], ts)
    return problem.a + ts[:, None].to(problem.a) * (problem.b - problem.a)


def _budget_left(problem: _Problem, max_evals: int | None, n: int) -> bool:
    return max_evals is None or problem.evals + n <= max_evals


# ---------------------------------------------------------------------------------------------- default


def _levels(n_segments: int) -> list[int]:
    # Halve down to no fewer than 8 segments: coarser paths are too crude a model of the final one to
    # be worth their evaluations (16,384-D benchmark: 338 evaluations from 2 segments, 210 from 8).
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


def _solve_default(problem: _Problem, n_points: int, tol: float, max_evals: int | None,
                   callback: Callback | None, initial: Tensor | None) -> BVPResult:
    history: list[dict] = []
    xf = flat(initial).to(problem.a) if initial is not None else _initial_path(problem, n_points)
    levels = _levels(n_points - 1) if initial is None else [n_points - 1]
    iteration = 0
    interior = terms = None
    converged = False
    for level, n_seg in enumerate(levels):
        final_level = level == len(levels) - 1
        candidate = problem.retract(_resample_in_t(xf, n_seg))
        t_int = path_positions(n_seg + 1)[1:-1]
        if not _budget_left(problem, max_evals, len(candidate)):
            break
        interior = candidate
        terms = problem.terms(interior, problem.score(interior, t_int))
        level_tol = tol if final_level else max(tol, COARSE_TOL)
        interior, terms, iteration, outcome = _lbfgs_level(
            problem, interior, terms, t_int, level_tol, max_evals, callback, history, iteration, level,
            max_iter=200 if final_level else COARSE_MAX_ITER)
        xf = problem.full(interior)
        converged = outcome == "converged" and final_level
        if outcome == "stopped":
            break
    if terms is None or len(interior) != n_points - 2:
        return _finish_at_resolution(problem, xf, n_points, iteration, history, "default")
    return problem.result(interior, terms, iterations=iteration, converged=converged, method="default",
                          history=history)


def _finish_at_resolution(problem: _Problem, xf: Tensor, n_points: int, iteration: int, history: list[dict],
                          method: str) -> BVPResult:
    """A run stopped before reaching ``n_points``: resample its best path and read it out (n-2 evals)."""
    interior = problem.retract(resample_polyline(xf, n_points)[1:-1])
    s_int = problem.score(interior, path_positions(n_points)[1:-1])
    terms = problem.terms(interior, s_int)
    return problem.result(interior, terms, iterations=iteration, converged=False, method=method, history=history)


def _lbfgs_level(problem: _Problem, x: Tensor, terms: PathTerms, t_int: Tensor, tol: float,
                 max_evals: int | None, callback: Callback | None, history: list[dict], iteration: int,
                 level: int, max_iter: int, memory: int = 6,
                 stall_window: int = 15) -> tuple[Tensor, PathTerms, int, str]:
    """Iterate one resolution level; returns the last accepted path, its terms, the iteration count and
    how the level ended: "converged", "stalled" (no progress, or no acceptable step) or "stopped" (the
    callback or the evaluation budget)."""
    pairs: list[tuple[Tensor, Tensor, float]] = []
    g = terms.energy_grad[1:-1].to(x.dtype)
    best_log_energy = terms.log_energy
    residuals = [terms.residual]
    for _ in range(max_iter):
        if terms.residual <= tol:
            return x, terms, iteration, "converged"
        if len(residuals) > stall_window and min(residuals[-stall_window:]) > 0.9 * min(residuals[:-stall_window]):
            return x, terms, iteration, "stalled"  # no 10% progress over the last window
        c = terms.segment_weights
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
        xf = problem.full(x)
        seg_max = float(segment_lengths(xf).max())
        step_max = float(d.norm(dim=-1).max())
        eta = min(1.0, seg_max / step_max) if step_max > 0 else 1.0
        accepted = False
        for _ in range(8):
            if not _budget_left(problem, max_evals, len(x)):
                return x, terms, iteration, "stopped"
            x_new = problem.retract(x + eta * d)
            terms_new = problem.terms(x_new, problem.score(x_new, t_int))
            # Armijo on the energy, or a clear drop of the residual: near the solution the trapezoid
            # energy is flat to within its quadrature error, and the residual is the meaningful merit.
            if (terms_new.log_energy <= terms.log_energy + 1e-4 * eta * gd
                    or (terms_new.residual <= 0.9 * terms.residual
                        and terms_new.log_energy <= best_log_energy + 1e-3)):
                accepted = True
                break
            eta *= BACKTRACK
        if not accepted:
            return x, terms, iteration, "stalled"
        g_new = terms_new.energy_grad[1:-1].to(x.dtype)
        sk, yk = x_new - x, g_new - g
        sy = dot(sk, yk)
        if sy > 1e-12 * (dot(sk, sk) * dot(yk, yk)) ** 0.5:
            pairs.append((sk, yk, sy))
            if len(pairs) > memory:
                pairs.pop(0)
        x, terms, g = x_new, terms_new, g_new
        best_log_energy = min(best_log_energy, terms.log_energy)
        residuals.append(terms.residual)
        iteration += 1
        history.append({"iteration": iteration, "level": level, "points": len(x) + 2,
                        "score_evals": problem.evals, "length": terms.length, "residual": terms.residual,
                        "step": eta})
        if callback is not None:
            partial = problem.result(x, terms, iterations=iteration, converged=False, method="default",
                                     history=history)
            if callback(iteration, partial) is False:
                return x, terms, iteration, "stopped"
    return x, terms, iteration, "converged" if terms.residual <= tol else "stalled"


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


def _solve_paper(problem: _Problem, n_points: int, tol: float, max_evals: int | None,
                 callback: Callback | None, initial: Tensor | None, *, strengths: int = 4,
                 steps_per_level: int = 100, lr0: float = 0.1) -> BVPResult:
    total = strengths * steps_per_level
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
        if not _budget_left(problem, max_evals, n_ctrl):
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
            terms = problem.terms(yf[1:-1], s)  # scores are one step stale: a preview, not a readout
            partial = problem.result(yf[1:-1], terms, iterations=it, converged=False, method="paper",
                                     history=history)
            if callback(it, partial) is False:
                break
    # The output frames are the spline sampled at n_points, read out with fresh scores.
    h = 1.0 / (len(yf) - 1)
    ts = path_positions(n_points, yf.device).double()
    if problem.sphere:
        out = _slerp_pieces(yf, ts, h)
    else:
        out = _spline_eval(yf, _natural_spline_second_derivatives(yf, h), h, ts)
    interior = problem.retract(out[1:-1])
    s_int = problem.score(interior, path_positions(n_points)[1:-1])
    terms = problem.terms(interior, s_int)
    return problem.result(interior, terms, iterations=it, converged=False, method="paper", history=history)
