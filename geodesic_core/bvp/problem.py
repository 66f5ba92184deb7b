"""What every BVP method shares: the problem (fixed ends and their scores, quadrature settings, the evaluation
budget), the state of one path, and the result and outcome types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor

from ..budget import Budget
from ..energy import PathEnergy, path_energy
from ..fields import DensityField, flat_score
from ..geometry import flat, project_out, segment_lengths, slerp, to_sphere
from ..path_integrals import BudgetExceeded, Layout, PathIntegrals, integrate_path, missing_nodes, path_positions
from ..progress import Progress
from ..readout import PathReadout


class Outcome(str, Enum):
    """Why a solve (or one of its resolution levels) ended."""

    CONVERGED = "converged"  # the length stopped falling by more than the tolerance, on the certified layout
    STALLED = "stalled"      # no decrease on a coarse level's layout, or the iteration limit
    BUDGET = "budget"        # max_evals would be exceeded by the next step
    STOPPED = "stopped"      # the callback returned False
    FLOOR = "floor"          # no step decreases the energy read on the certified layout (a learned score's
                             # non-conservative part)
    SCHEDULE = "schedule"    # the paper's fixed schedule ran to its end (it has no convergence test)


@dataclass
class BVPResult:
    points: Tensor            # [n_points, *shape]; endpoints are the inputs (sphere-rescaled if sphere)
    t: Tensor                 # [n_points] path positions in [0, 1]
    readout: PathReadout      # the certified readout of ``points`` (log density, length, their error bounds)
    residual: float           # scale-free Euler-Lagrange residual of the whole path energy (0 = geodesic),
                              # reported, not a stopping test (readout.normal_residual: its normal part alone)
    point_residuals: Tensor   # [n_points]
    score_evals: int          # every evaluation of the solve, its readout included
    readout_evals: int        # of which the final readout's quadrature (paper: not part of its schedule)
    iterations: int
    converged: bool           # the length stopped falling by more than the tolerance, on a certified readout
    outcome: Outcome
    method: str
    alpha: float
    sphere: bool
    history: list[dict] = field(default_factory=list)
    score_calls: int = 0      # the batched score calls that made score_evals
    route: str = "direct"     # the global search's winner: "direct" (the start path's basin) or "via waypoint k"
    search_evals: int = 0     # of score_evals, what the global search spent beyond the local solve

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
class State:
    """One path with everything the quadrature knows about it."""

    interior: Tensor          # [n - 2, d]
    integrals: PathIntegrals
    energy: PathEnergy


class OutOfBudget(Exception):
    pass


class Problem:
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
                 refine: bool = True, tol: float | None = None) -> State:
        """``read``, with the path energy and its derivatives."""
        return self.state_of(interior, self.read(interior, keep=keep, layout=layout, refine=refine, tol=tol))

    def read(self, interior: Tensor, *, keep: int = 0, layout: Layout | None = None, refine: bool = True,
             tol: float | None = None) -> PathIntegrals:
        """Score the frames and the quadrature nodes of a path in one batched call (then refine to the relative
        tolerance ``tol``, default the problem's, if asked), leaving ``keep`` evaluations of the budget unspent;
        raises OutOfBudget when that first call does not fit."""
        n = len(interior) + 2
        xf = self.full(interior)
        frame_scores = torch.zeros_like(xf)
        frame_scores[0], frame_scores[-1] = self.s_a[0], self.s_b[0]
        known = torch.zeros(n, dtype=torch.bool)
        known[0] = known[-1] = True
        try:
            return integrate_path(self.score, xf, self.alpha, frame_scores=frame_scores, known_frames=known,
                                  sphere=self.sphere, t=path_positions(n), tol=tol or self.quadrature_tol,
                                  layout=layout, refine=refine, max_evals=self.budget.left(keep))
        except BudgetExceeded as exc:
            raise OutOfBudget from exc

    def refined(self, state: State, *, keep: int = 0, tol: float | None = None) -> State:
        """The same path with its layout refined to the relative tolerance ``tol`` (default the problem's), with
        the path energy; ``reread``'s budget rules."""
        return self.state_of(state.interior, self.reread(state, keep=keep, tol=tol))

    def reread(self, state: State, *, keep: int = 0, tol: float | None = None, layout: Layout | None = None,
               refine: bool = True) -> PathIntegrals:
        """The same path on its layout (or ``layout``, which may split its leaves or merge siblings) refined to
        the relative tolerance ``tol`` (default the problem's), or, with ``refine`` False, read on ``layout`` as
        it is; only nodes it has no score for yet are evaluated. Raises OutOfBudget when those first ones do
        not fit."""
        xf = self.full(state.interior)
        layout = layout or state.integrals.layout
        if not self.budget.affords(len(missing_nodes(layout, state.integrals.nodes)), keep):
            raise OutOfBudget
        return integrate_path(self.score, xf, self.alpha, sphere=self.sphere, t=path_positions(len(xf)),
                              tol=tol or self.quadrature_tol, layout=layout, nodes=state.integrals.nodes,
                              refine=refine, max_evals=self.budget.left(keep))

    def state_of(self, interior: Tensor, integrals: PathIntegrals) -> State:
        """A path with its reading, the path energy and its derivatives (no score evaluation)."""
        energy = path_energy(self.full(interior), integrals, self.alpha, sphere=self.sphere)
        return State(interior, integrals, energy)

    def result(self, state: State, *, iterations: int, outcome: Outcome, method: str, history: list[dict],
               readout_evals: int = 0) -> BVPResult:
        xf = self.full(state.interior)
        return BVPResult(
            points=xf.reshape(len(xf), *self.shape).to(self.dtype), t=path_positions(len(xf)),
            readout=PathReadout.of(state.integrals, xf, self.alpha, sphere=self.sphere),
            residual=state.energy.residual, point_residuals=state.energy.point_residuals, score_evals=self.evals,
            score_calls=self.budget.calls, readout_evals=readout_evals, iterations=iterations,
            converged=outcome == Outcome.CONVERGED, outcome=outcome, method=method, alpha=self.alpha,
            sphere=self.sphere, history=history)

    def progress(self, state: State, step: int) -> Progress:
        xf = self.full(state.interior)
        return Progress(step=step, total=None, points=xf.reshape(len(xf), *self.shape).to(self.dtype),
                        score_evals=self.evals, length=state.integrals.frames.length, residual=state.energy.residual)




def initial_path(problem: Problem, n_points: int) -> Tensor:
    ts = path_positions(n_points, problem.a.device)
    if problem.sphere:
        return slerp(problem.a[0], problem.b[0], ts)
    return problem.a + ts[:, None].to(problem.a) * (problem.b - problem.a)

