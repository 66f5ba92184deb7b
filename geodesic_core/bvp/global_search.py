"""The global search: the local solve, then routes through waypoints the field itself proposes."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..budget import one_pass_evals
from ..geometry import flat, resample_polyline, slerp
from ..path_integrals import path_positions
from ..progress import Callback
from ..validation import NonFiniteError
from .default import resolution_levels, solve_default
from .problem import BVPResult, Outcome, OutOfBudget, Problem

# Waypoints from WAYPOINT_FRAMES frames of the local path, displaced by each of WAYPOINT_SCALES times the
# distance between the ends, ASCENT_STEPS score-ascent steps (the first WAYPOINT_PROBE of that distance long);
# waypoints closer than WAYPOINT_SEPARATION of it to each other or to the local path are dropped; the
# ROUTES_POLISHED best-screening routes are solved.
WAYPOINT_FRAMES, WAYPOINT_SCALES, ASCENT_STEPS, WAYPOINT_PROBE = 4, (0.5, 1.0, 2.0), 4, 0.05
WAYPOINT_SEPARATION, ROUTES_POLISHED = 0.05, 1


def solve_global(problem: Problem, n_points: int, tol: float, callback: Callback | None) -> BVPResult:
    """The local solve, then routes through waypoints the field itself proposes, compared by certified length.

    Waypoints: the local path's interior frames, displaced at random (seeded: the search is reproducible) by
    a few fractions of the distance between the ends, then carried uphill by Newton-type score ascent
    x <- x + s(x) / kappa (kappa the secant curvature of -log p along the path), so that they settle in
    probable regions the local path does not visit. Each route start -> waypoint -> end is screened as a
    coarse polyline on one quadrature leaf per segment; the most promising that screens shorter than the
    local geodesic is solved like the local one, and the shortest certified path is returned."""
    local = solve_default(problem, n_points, tol, callback, None)
    if local.outcome in (Outcome.STOPPED, Outcome.BUDGET):
        return local
    coarse = resolution_levels(n_points - 1)[0] + 1
    waypoints = _propose_waypoints(problem, flat(local.points).to(problem.a), n_points)
    screened: list[tuple[float, int, Tensor]] = []
    for k, waypoint in enumerate(waypoints):
        route = _route_via(problem, waypoint, coarse)
        keep = one_pass_evals(n_points)
        try:
            screen = problem.read(route[1:-1], keep=keep, refine=False)
        except OutOfBudget:
            break
        except NonFiniteError:
            continue  # the model cannot score this route: not a candidate
        screened.append((screen.frames.length, k, route))
    screened.sort(key=lambda item: item[0])
    best, history = local, list(local.history)
    for screen_length, k, route in screened[:ROUTES_POLISHED]:
        if screen_length >= best.readout.length:
            break
        candidate = solve_default(problem, n_points, tol, callback, route)
        history += candidate.history
        if candidate.readout.length < best.readout.length:
            best = replace(candidate, route=f"via waypoint {k + 1} of {len(waypoints)}")
        if candidate.outcome in (Outcome.STOPPED, Outcome.BUDGET):
            break
    return replace(best, score_evals=problem.evals, score_calls=problem.budget.calls, history=history,
                   search_evals=problem.evals - local.score_evals)


def _propose_waypoints(problem: Problem, xf: Tensor, n_points: int) -> list[Tensor]:
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


def _ascend(problem: Problem, points: Tensor, t: Tensor, span: float, xf: Tensor) -> list[Tensor]:
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


def _route_via(problem: Problem, waypoint: Tensor, n_points: int) -> Tensor:
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

