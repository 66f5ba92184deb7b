"""The default method: coarse-to-fine Gauss-Newton minimisation of the path energy with a line search."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..budget import one_pass_evals
from ..geometry import dot, flat, knot_interval, resample_polyline, segment_lengths
from ..progress import Callback
from ..validation import NonFiniteError
from .gauss_newton import frame_scores_of, gauss_newton_step, path_curvature, secant_curvature
from .problem import BVPResult, Outcome, OutOfBudget, Problem, State, initial_path

# Coarse levels only seed the next one: a loose residual and few iterations there save evaluations without
# changing the final length (benchmarks/solvers.py).
COARSE_TOL, COARSE_MAX_ITER, FINAL_MAX_ITER = 0.15, 8, 200
LINE_SEARCH_TRIALS, BACKTRACK = 6, 0.25
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


def resolution_levels(n_segments: int) -> list[int]:
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



@dataclass
class _LevelEnd:
    state: State
    iterations: int
    outcome: Outcome


def solve_default(problem: Problem, n_points: int, tol: float, callback: Callback | None,
                   initial: Tensor | None) -> BVPResult:
    history: list[dict] = []
    # A given start path begins at the level of its own resolution (a waypoint route: the coarsest).
    levels = [n for n in resolution_levels(n_points - 1) if initial is None or n >= len(initial) - 1]
    xf = flat(initial).to(problem.a) if initial is not None else initial_path(problem, levels[0] + 1)
    iteration = 0
    end: _LevelEnd | None = None
    for level, n_seg in enumerate(levels):
        final_level = level == len(levels) - 1
        # A coarse level keeps back the final resolution's first readout, so it cannot spend it.
        keep = 0 if final_level else one_pass_evals(n_points) - 2
        interior = problem.retract(_resample_in_t(xf, n_seg)) if len(xf) != n_seg + 1 else xf[1:-1]
        try:
            state = problem.evaluate(interior, keep=keep, refine=False)
        except OutOfBudget:
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


def _finish_at_resolution(problem: Problem, xf: Tensor, n_points: int, iteration: int, history: list[dict],
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



def _gauss_newton_level(problem: Problem, state: State, settings: _LevelSettings, callback: Callback | None,
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
    curvature = path_curvature(problem.full(state.interior), frame_scores_of(state.integrals))
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
        except OutOfBudget:
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
        curvature = secant_curvature(state, trial, curvature)
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


def _cheap_to_polish(state: State) -> bool:
    n = len(state.interior) + 2
    layout_cost = len(state.integrals.nodes.u) - 2 * (n - 1) + n - 2  # interior nodes and frames per trial
    exploring_cost = n - 2 + (n - 1) * (4 * ITERATION_LEAVES_PER_SEGMENT - 1)
    return layout_cost <= POLISH_COST * exploring_cost


def _line_search(problem: Problem, state: State, d: Tensor, gd: float, keep: int, polishing: bool,
                 reference: float) -> tuple[State | None, float]:
    """Armijo backtracking along ``d``; returns the accepted trial (None if none) and its step. Raises
    OutOfBudget when a trial does not fit the budget."""
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


def _certify(problem: Problem, state: State, keep: int) -> State | None:
    """``state`` with its layout refined to the quadrature tolerance (within the budget: it may stop short,
    with its error bounds saying so); None when not even one more evaluation is left."""
    if not problem.budget.affords(1, keep):
        return None
    return problem.refined(state, keep=keep)

