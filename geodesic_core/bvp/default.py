"""The default method: coarse-to-fine Gauss-Newton minimisation of the path energy, with every accept/reject
decision made between two readings on one and the same quadrature layout.

A trial path is read on a layout adapted to it (the current path's layout with well-resolved siblings merged,
then refined to the level's current tolerance), and the current path is read again on exactly that layout
before the two are compared: both readings share their error pattern, so the line search sees the difference a
step makes, and no step can gain by moving a mode switch between nodes. The tolerance starts loose (one leaf on
most segments: cheap readings that are far off in absolute terms, but off by nearly the same amount for nearby
paths) and is tightened, the current path read again at the new one, only when the gain the model predicts or
the last step realised falls below what the layout resolves; the last tolerance is the quadrature's own
(certified). A finer level starts from the coarser path with a frame added where each of its segments is
halved in metric distance, so its frames need no redistributing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..budget import one_pass_evals
from ..geometry import dot, flat, knot_interval, resample_polyline, segment_lengths
from ..path_integrals import coarsen_for_reuse, metric_midpoints
from ..progress import Callback
from ..validation import NonFiniteError
from .gauss_newton import frame_scores_of, gauss_newton_step, path_curvature, secant_curvature
from .problem import BVPResult, Outcome, OutOfBudget, Problem, State, initial_path

DEFAULT_TOL = 1e-3
# The layouts a level iterates on, by their relative error tolerance: the first is loose (one quadrature leaf
# on most segments: a cheap layout reads a path with a large error, but nearby paths with nearly the same
# error, and it is their difference a step is judged by), each later one tighter, the last the quadrature's
# own (certified).
LAYOUT_TOLERANCES = (16.0, 0.25, 1 / 64)
# A layout is kept while the model predicts a relative length gain above this fraction of its tolerance: the
# error of a comparison on one fixed layout is a small fraction of the layout's own error.
COMPARISON_FRACTION = 0.02
# A coarse level only seeds the next: it stops once the model predicts less than this relative length gain.
COARSE_GAIN = 0.03
MAX_ITER = 200
LINE_SEARCH_TRIALS = 4
ARMIJO = 1e-4


def resolution_levels(n_segments: int) -> list[int]:
    """Segment counts from coarse to fine: halving down to no fewer than 8 segments (coarser paths are too
    crude a model of the final one to be worth their evaluations)."""
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


def _layout_tolerances(quadrature_tol: float, final_level: bool) -> list[float]:
    """The layouts' relative tolerances, loosest first; the final level's last one is the quadrature's."""
    loose = [t for t in LAYOUT_TOLERANCES if t > quadrature_tol]
    if not final_level:
        return loose[:1] or [quadrature_tol]
    return [*loose, quadrature_tol]


@dataclass
class _LevelEnd:
    state: State
    iterations: int
    outcome: Outcome


@dataclass
class _Level:
    """What one resolution level iterates towards."""

    index: int
    tolerances: list[float]  # layout tolerances, loosest first
    gain: float              # the relative length gain (predicted or realised) below which the level is done
    keep: int                # evaluations the level must leave unspent
    certify: bool            # the final level: its answer is read on the certified layout


def solve_default(problem: Problem, n_points: int, tol: float, callback: Callback | None,
                  initial: Tensor | None) -> BVPResult:
    history: list[dict] = []
    # A given start path begins at the level of its own resolution (a waypoint route: the coarsest).
    levels = [n for n in resolution_levels(n_points - 1) if initial is None or n >= len(initial) - 1]
    xf = flat(initial).to(problem.a) if initial is not None else initial_path(problem, levels[0] + 1)
    iteration = 0
    end: _LevelEnd | None = None
    for index, n_seg in enumerate(levels):
        final = index == len(levels) - 1
        # A coarse level keeps back the final resolution's first readout, so it cannot spend it.
        keep = 0 if final else one_pass_evals(n_points) - 2
        if end is not None and n_seg == 2 * (len(xf) - 1):
            # The previous level's frames, and a frame where each of its segments is halved in metric distance.
            interior = problem.retract(metric_midpoints(xf, end.state.integrals, problem.alpha,
                                                        sphere=problem.sphere)[1:-1])
        else:
            interior = problem.retract(_resample_in_t(xf, n_seg)) if len(xf) != n_seg + 1 else xf[1:-1]
        level = _Level(index, _layout_tolerances(problem.quadrature_tol, final),
                       tol if final else max(tol, COARSE_GAIN), keep, final)
        try:
            state = problem.evaluate(interior, keep=keep, tol=level.tolerances[0])
        except OutOfBudget:
            break  # only a coarse level can get here: the final level's first pass is kept back
        end = _minimise_level(problem, state, level, callback, history, iteration)
        iteration = end.iterations
        xf = problem.full(end.state.interior)
        if end.outcome == Outcome.STOPPED:
            break
    if end is None or len(end.state.interior) != n_points - 2:
        return _finish_at_resolution(problem, xf, n_points, iteration, history,
                                     end.outcome if end is not None else Outcome.BUDGET)
    state, before = end.state, problem.evals
    if not state.integrals.frames.converged:  # the answer is always read out to tolerance, within the budget
        state = _certify(problem, state, 0, problem.quadrature_tol) or state
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


def _relative_gain(log_energy_drop: float) -> float:
    """The relative decrease of the length sqrt(E) for a decrease of log E (E = sum L_i^2 ~ L^2 / n)."""
    return -math.expm1(-0.5 * log_energy_drop)


def _minimise_level(problem: Problem, state: State, level: _Level, callback: Callback | None,
                    history: list[dict], iteration: int) -> _LevelEnd:
    """Gauss-Newton iterations with an Armijo line search on the path energy, from ``state``.

    Each trial is compared with the current path read on the trial's own layout (``_line_search``). The level
    moves to its next layout tolerance (the current path read again at it) when the model predicts, or the last
    step realised, less gain than the current one resolves, or when no step along the model's direction
    decreases the energy as read on it.
    Done (converged) on the last layout once the relative length gain, predicted by the model or realised by
    the last step, is below ``level.gain``; ``Outcome.FLOOR`` when even the last layout shows no decrease along
    the model's direction (a learned score's non-conservative part)."""
    stage = 0
    eta = 1.0
    curvature = path_curvature(problem.full(state.interior), frame_scores_of(state.integrals))
    for _ in range(MAX_ITER):
        last = stage == len(level.tolerances) - 1
        x = state.interior
        d = gauss_newton_step(problem.full(x), state.energy, problem.sphere, problem.alpha * curvature)
        g = state.energy.grad[1:-1]
        gd = dot(g, d)
        if gd >= 0:  # the model is not positive definite along d: steepest descent, capped like any step
            d, gd = -g, -dot(g, g)
        predicted = _relative_gain(-gd / 2)  # the model's decrease of log E is -gd / 2
        if predicted >= _stage_gain(level, stage):
            try:
                trial, eta = _line_search(problem, state, d, gd, level.keep, min(1.0, 2 * eta),
                                          level.tolerances[stage])
            except OutOfBudget:
                return _LevelEnd(state, iteration, Outcome.BUDGET)
            if trial is None:
                eta = 1.0
                if last:
                    return _LevelEnd(state, iteration, Outcome.FLOOR if level.certify else Outcome.STALLED)
            else:
                realised = _relative_gain(state.integrals.log_energy - trial.integrals.log_energy)
                curvature = secant_curvature(state, trial, curvature)
                state = trial
                iteration += 1
                history.append({"iteration": iteration, "level": level.index, "points": len(x) + 2,
                                "score_evals": problem.evals, "score_calls": problem.budget.calls,
                                "length": state.integrals.frames.length, "residual": state.energy.residual,
                                "step": eta, "layout_tol": level.tolerances[stage], "predicted_gain": predicted,
                                "gain": realised})
                if callback is not None and callback(problem.progress(state, iteration)) is False:
                    return _LevelEnd(state, iteration, Outcome.STOPPED)
                if realised >= _stage_gain(level, stage):
                    continue
        # The layout resolves no more gain (predicted or realised), or shows no decrease along the model's
        # direction: done on the last one (for a learned score, which is not a gradient, what it allows), else
        # on to the next.
        if last:
            return _LevelEnd(state, iteration, Outcome.CONVERGED)
        tighter = _certify(problem, state, level.keep, level.tolerances[stage + 1])
        if tighter is None:
            return _LevelEnd(state, iteration, Outcome.BUDGET)
        stage, state = stage + 1, tighter
        # A host shows progress at every stage, not only after accepted steps (a stage can take no step).
        if callback is not None and callback(problem.progress(state, iteration)) is False:
            return _LevelEnd(state, iteration, Outcome.STOPPED)
    return _LevelEnd(state, iteration, Outcome.STALLED)


def _stage_gain(level: _Level, stage: int) -> float:
    """The predicted relative length gain below which the level leaves layout ``stage`` (or, on its last, is
    done)."""
    if stage == len(level.tolerances) - 1:
        return level.gain
    return max(level.gain, COMPARISON_FRACTION * level.tolerances[stage])


def _line_search(problem: Problem, state: State, d: Tensor, gd: float, keep: int, first_step: float,
                 tol: float) -> tuple[State | None, float]:
    """Backtracking along ``d`` from ``first_step`` to a step with Armijo's sufficient decrease, every trial read
    to ``tol`` on a layout adapted to it and compared with ``state`` read on that same layout; returns the
    accepted trial (None if none) and its step. A rejected step is shortened to the minimum of the parabola
    through the reading at the current path, the slope ``gd`` and the trial's reading (kept within a tenth and
    a half of it). Raises OutOfBudget when a trial does not fit the budget."""
    x = state.interior
    # Never move a point further than the path's longest segment in one step.
    seg_max = float(segment_lengths(problem.full(x)).max())
    step_max = float(d.norm(dim=-1).max())
    eta = min(first_step, seg_max / step_max) if step_max > 0 else first_step
    for _ in range(LINE_SEARCH_TRIALS):
        point = problem.retract(x + eta * d)
        try:
            # The trial on a layout adapted to it (the current one with well-resolved siblings merged, then
            # refined to the level's current tolerance), and the current path read again on that same layout.
            candidate = problem.read(point, keep=keep, layout=coarsen_for_reuse(state.integrals), tol=tol)
            reference = problem.reread(state, keep=keep, layout=candidate.layout, refine=False).log_energy
        except NonFiniteError:
            # A learned model can overflow far from its data: a trial it cannot score is a rejected trial
            # (its evaluations were made and stay counted).
            eta *= 0.25
            continue
        rise = candidate.log_energy - reference
        if rise <= ARMIJO * eta * gd:
            return problem.state_of(point, candidate), eta  # the energy's derivatives for the accepted one only
        curvature = rise - gd * eta
        eta *= min(0.5, max(0.1, -gd * eta / (2 * curvature))) if curvature > 0 else 0.5
    return None, 0.0


def _certify(problem: Problem, state: State, keep: int, tol: float) -> State | None:
    """``state`` with its layout refined to the relative tolerance ``tol`` (within the budget: it may stop short,
    with its error bounds saying so); None when not even one more evaluation is left."""
    if not problem.budget.affords(1, keep):
        return None
    return problem.refined(state, keep=keep, tol=tol)
