"""The piecewise geodesic through keyframes (and back to the first, for a loop): one solve per segment between
consecutive keyframes, with a share of the frames and of the evaluation budget each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import core, geometry

SPACINGS = ("by distance", "equal")  # how frames are shared between segments

# How a solve ended, in the words a report shows an artist: on a trained model the residual rarely reaches
# the tolerance, and stopping at the floor the model's own error allows is the normal, good outcome.
OUTCOME_WORDS = {
    core.Outcome.CONVERGED: "converged (a geodesic to the tolerance)",
    core.Outcome.FLOOR: "stopped at the best path this model allows (normal for a trained model)",
    core.Outcome.STALLED: "stopped improving (the best path found is kept)",
    core.Outcome.BUDGET: "stopped at max_evals (the best path so far; a larger budget may shorten it)",
    core.Outcome.STOPPED: "stopped early (the best path so far)",
    core.Outcome.SCHEDULE: "ran the paper's schedule to its end",
}


def readout_evals(frames: int, keyframes: int, loop: bool) -> int:
    """The smallest budget of a solve through ``keyframes`` with ``frames`` frames: one readout of every
    segment (``one_pass_evals`` of its points), a loop's closing segment included."""
    segments, steps = (keyframes, frames) if loop else (keyframes - 1, frames - 1)
    return 4 * steps + segments


def on_common_sphere(points: Tensor) -> Tensor:
    """Every point [K, *shape] rescaled to their mean norm: a keyframe shared by two segments must not jump
    between two spheres (the paper scales each pair to its mean)."""
    radius = geometry.flat(points).norm(dim=-1).mean()
    return geometry.to_sphere(geometry.flat(points), radius).reshape(points.shape)


def segment_weights(ends: Tensor, spacing: str) -> list[float]:
    """Each segment's claim on the frames: its Euclidean length ("by distance") or 1 ("equal")."""
    if spacing not in SPACINGS:
        raise core.GeodesicInputError(f"spacing: expected one of {', '.join(SPACINGS)}, got {spacing!r}")
    if spacing == "equal":
        return [1.0] * (len(ends) - 1)
    return geometry.segment_lengths(geometry.flat(ends).double()).tolist()


@dataclass(frozen=True)
class SegmentPlan:
    steps: list[int]            # frame steps of each segment (1: its two keyframes only, nothing solved)
    budgets: list[int | None]   # evaluation budget of each segment: its solve's, or (keyframes only) its
                                # readout's (None: no cap)

    @property
    def points(self) -> int:
        """Points of the whole piecewise path, shared keyframes once (a loop's closing copy included)."""
        return sum(self.steps) + 1


def plan_segments(ends: Tensor, total_steps: int, *, spacing: str = SPACINGS[0], max_evals: int | None = None,
                  purpose: str = "the frames") -> SegmentPlan:
    """Share ``total_steps`` frame steps between the segments through ``ends`` [K, *shape] (at least one each),
    and ``max_evals``: each segment gets its one readout (``one_pass_evals``) plus a share of the rest in
    proportion to its interior frames (a keyframes-only segment, only read out, counts as one). Refuses a
    budget below the readouts' sum."""
    steps = geometry.allocate_steps(segment_weights(ends, spacing), total_steps)
    if max_evals is None:
        return SegmentPlan(steps, [None] * len(steps))
    shares = [max(s - 1, 1) for s in steps]
    needed = [core.one_pass_evals(s + 1) for s in steps]
    core.check_budget(max_evals, sum(needed), purpose)
    spare = max_evals - sum(needed)
    return SegmentPlan(steps, [n + spare * share // sum(shares) for n, share in zip(needed, shares, strict=True)])


@dataclass
class Segment:
    index: int
    start: Tensor
    end: Tensor
    steps: int
    solve: core.BVPResult | None  # None: no frames between the two keyframes

    @property
    def points(self) -> Tensor:
        """[steps + 1, *shape] the segment's path, both keyframes included."""
        return torch.stack([self.start, self.end]) if self.solve is None else self.solve.points


def solve_segments(field_of: Callable[[int], core.DensityField], ends: Tensor, plan: SegmentPlan, *, alpha: float,
                   sphere: bool, method: str = "default", tol: float = 1e-3, quadrature_tol: float = 1e-3,
                   search: str = "local", callback_of: Callable[[int, int | None], core.Callback | None] | None = None
                   ) -> Iterator[Segment]:
    """The geodesic of every segment between consecutive ``ends`` in order, with ``plan``'s frames and budget,
    each in the field ``field_of(k)`` of segment k; ``callback_of(k, budget)`` gives its solver callback."""
    for k, n_steps in enumerate(plan.steps):
        a, b = ends[k], ends[k + 1]
        solve = None
        if n_steps > 1:
            solve = core.solve_bvp(field_of(k), a, b, n_points=n_steps + 1, alpha=alpha, sphere=sphere,
                                   method=method, tol=tol, quadrature_tol=quadrature_tol, search=search,
                                   max_evals=plan.budgets[k],
                                   callback=None if callback_of is None else callback_of(k, plan.budgets[k]))
        yield Segment(k, a, b, n_steps, solve)
