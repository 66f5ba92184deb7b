"""The piecewise geodesic through keyframes (and back to the first, for a loop): one solve per segment between
consecutive keyframes, with a share of the frames and of the evaluation budget each.

Every front end goes through `plan_keyframes` (checks, the keyframes on their common sphere, a loop's
closing segment, the shares of frames and budget; no model needed) and `solve_through_keyframes` (the
solves, stitched into one path), with one `GeodesicSettings` value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import core, geometry
from .strength import StrengthCalibration, alpha_for_strength, check_strength, strength_evals

SPACINGS = ("by distance", "equal")  # how frames are shared between segments

# How a solve ended, in the words a report shows an artist: on a trained model the residual rarely reaches
# the tolerance, and stopping at the floor the model's own error allows is the normal, good outcome.
OUTCOME_WORDS = {
    core.Outcome.CONVERGED: "converged (the length stopped falling by more than the tolerance)",
    core.Outcome.FLOOR: "stopped at the best path this model allows (normal for a trained model)",
    core.Outcome.STALLED: "stopped improving (the best path found is kept)",
    core.Outcome.BUDGET: "stopped at max_evals (the best path so far; a larger budget may shorten it)",
    core.Outcome.STOPPED: "stopped early (the best path so far)",
    core.Outcome.SCHEDULE: "ran the paper's schedule to its end",
}


@dataclass(frozen=True)
class GeodesicSettings:
    """How a geodesic is solved and read out, one value for every front end: the density metric (``alpha``, or
    with ``strength`` alpha = strength / the density's pull between the keyframes (strength.py); ``sphere``;
    the readout quadrature's relative ``accuracy``) and the solver (``method``, the relative length gain
    ``tolerance`` it stops below, ``search``, the evaluation budget ``max_evals``, None: no cap)."""

    alpha: float
    sphere: bool = True
    method: str = "default"
    tolerance: float = 1e-3
    accuracy: float = 1e-3
    search: str = "local"
    max_evals: int | None = None
    strength: float | None = None

    def __post_init__(self) -> None:
        check_strength(self.strength)


def readout_evals(frames: int, keyframes: int, loop: bool, *, strength: bool = False) -> int:
    """The smallest budget of a solve through ``keyframes`` with ``frames`` frames: one readout of every
    segment (``one_pass_evals`` of its points), a loop's closing segment included, and with a ``strength``
    the readout of the pull."""
    segments, steps = (keyframes, frames) if loop else (keyframes - 1, frames - 1)
    return 4 * steps + segments + (strength_evals(segments) if strength else 0)


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


def solve_segments(field_of: Callable[[int], core.DensityField], ends: Tensor, plan: SegmentPlan,
                   settings: GeodesicSettings, *,
                   callback_of: Callable[[int, int | None], core.Callback | None] | None = None) -> Iterator[Segment]:
    """The geodesic of every segment between consecutive ``ends`` in order, with ``plan``'s frames and budget
    (not ``settings.max_evals``, which the plan has shared out), each in the field ``field_of(k)`` of segment k;
    ``callback_of(k, budget)`` gives its solver callback."""
    for k, n_steps in enumerate(plan.steps):
        a, b = ends[k], ends[k + 1]
        solve = None
        if n_steps > 1:
            solve = core.solve_bvp(field_of(k), a, b, n_points=n_steps + 1, alpha=settings.alpha,
                                   sphere=settings.sphere, method=settings.method, tol=settings.tolerance,
                                   quadrature_tol=settings.accuracy, search=settings.search,
                                   max_evals=plan.budgets[k],
                                   callback=None if callback_of is None else callback_of(k, plan.budgets[k]))
        yield Segment(k, a, b, n_steps, solve)


@dataclass(frozen=True)
class KeyframePlan:
    """The ends every segment is solved between (a loop's first keyframe again at the end) and their shares."""

    ends: Tensor        # [segments + 1, *shape]
    segments: SegmentPlan
    frames: int
    loop: bool


def plan_keyframes(keyframes: Tensor, *, frames: int, settings: GeodesicSettings, loop: bool = False,
                   spacing: str = SPACINGS[0], common_sphere: bool | None = None) -> KeyframePlan:
    """Check and plan the path through ``keyframes`` [K, *shape] with exactly ``frames`` points.

    The keyframes go on their common sphere (their mean norm) with ``common_sphere``, by default with the
    sphere constraint: a keyframe shared by two segments must not jump between two spheres (the paper
    scales each pair to its mean). With ``loop`` a last segment returns to the first keyframe."""
    if frames < 3:
        raise core.GeodesicInputError(f"frames: expected at least 3 frames, got {frames}")
    total_steps = frames if loop else frames - 1
    n_segments = len(keyframes) - (0 if loop else 1)
    if total_steps < n_segments:
        raise core.GeodesicInputError(
            f"frames: {len(keyframes)} keyframes{' in a loop' if loop else ''} need at least "
            f"{n_segments + (0 if loop else 1)} frames, got {frames}")
    ends = on_common_sphere(keyframes) if (settings.sphere if common_sphere is None else common_sphere) else keyframes
    if loop:
        ends = torch.cat([ends, ends[:1]])
    max_evals = settings.max_evals
    if settings.strength is not None and max_evals is not None:
        # The pull is read before anything is solved: its evaluations come off the top of the budget.
        core.check_budget(max_evals, readout_evals(frames, len(keyframes), loop, strength=True),
                          f"the {frames} frames and the pull for strength")
        max_evals -= strength_evals(n_segments)
    plan = plan_segments(ends, total_steps, spacing=spacing, max_evals=max_evals, purpose=f"the {frames} frames")
    return KeyframePlan(ends, plan, frames, loop)


@dataclass
class KeyframeGeodesic:
    """The solved segments of a `KeyframePlan`, and the one path they make."""

    plan: KeyframePlan
    segments: list[Segment]
    settings: GeodesicSettings                  # as solved: alpha is strength's where a strength was given
    calibration: StrengthCalibration | None = None

    @property
    def points(self) -> Tensor:
        """[frames, *shape]: shared keyframes once, a loop's closing copy of the first keyframe left out (so the
        frames repeat seamlessly)."""
        pieces = [s.points if s.index == 0 else s.points[1:] for s in self.segments]
        return torch.cat(pieces)[: self.plan.frames]

    def positions(self, knots: Tensor) -> Tensor:
        """[frames] each frame's position, evenly spaced within each segment between its keyframes' ``knots``
        [segments + 1]."""
        t = torch.cat([knots[:1]] + [torch.linspace(float(knots[k]), float(knots[k + 1]), s + 1)[1:]
                                     for k, s in enumerate(self.plan.segments.steps)])
        return t[: self.plan.frames]

    @property
    def solves(self) -> list[core.BVPResult]:
        return [s.solve for s in self.segments if s.solve is not None]

    @property
    def end_tangent(self) -> Tensor | None:
        """The geodesic's velocity per frame step at the last frame (None for a loop, or where the last
        segment is its two keyframes only)."""
        last = self.segments[-1]
        return None if self.plan.loop or last.solve is None else last.solve.end_tangent / last.steps

    def log_density(self, field_of: Callable[[int], core.DensityField]) -> Tensor:
        """[frames] float64 log density relative to the first frame, each segment's readout stitched on at its
        first keyframe (a keyframes-only segment is read out within its budget)."""
        densities = [torch.zeros(1, dtype=torch.float64)]
        settings = self.settings
        for segment in self.segments:
            if segment.solve is None:
                log_density = core.read_path(field_of(segment.index), segment.points, settings.alpha,
                                             sphere=settings.sphere, tol=settings.accuracy,
                                             max_evals=self.plan.segments.budgets[segment.index]).log_density
            else:
                log_density = segment.solve.readout.log_density
            densities.append(densities[-1][-1] + log_density[1:].cpu())
        return torch.cat(densities)[: self.plan.frames]

    def report(self) -> list[str]:
        """One line per segment: its frames, length, residual, convergence and evaluations; first, with a
        strength, the alpha it gave."""
        lines = [] if self.calibration is None else [self.calibration.describe()]
        for segment in self.segments:
            result, k = segment.solve, segment.index
            if result is None:
                lines.append(f"segment {k + 1}: keyframes only (no frames in between)")
                continue
            lines.append(
                f"segment {k + 1}: {segment.steps + 1} frames, length {result.readout.length:.4g}, residual "
                f"{result.residual:.2g} (0 = geodesic), {OUTCOME_WORDS[result.outcome]} after {result.iterations} "
                f"iteration{'s' * (result.iterations != 1)}, {result.score_evals} score evaluations in "
                f"{result.score_calls} batched calls"
                + ("" if result.route == "direct" else f"; global search: {result.route}"))
        return lines


def with_strength_alpha(field_of: Callable[[int], core.DensityField], ends: Tensor, settings: GeodesicSettings
                        ) -> tuple[GeodesicSettings, StrengthCalibration | None]:
    """``settings`` with the alpha its strength gives between consecutive ``ends`` [K, *shape] (segment k in the
    field ``field_of(k)``; ``strength_evals(K - 1)`` evaluations), and that calibration; as given without a strength."""
    if settings.strength is None:
        return settings, None
    calibration = alpha_for_strength(field_of, ends, settings.strength, sphere=settings.sphere)
    return dataclasses.replace(settings, alpha=calibration.alpha), calibration


def solve_through_keyframes(field_of: Callable[[int], core.DensityField], plan: KeyframePlan,
                            settings: GeodesicSettings, *,
                            callback_of: Callable[[int, int | None], core.Callback | None] | None = None,
                            device: torch.device | str | None = None) -> KeyframeGeodesic:
    """The geodesic of every segment of ``plan`` in order, segment k in the field ``field_of(k)``, with its
    share of the frames and of ``settings.max_evals``; ``callback_of(k, budget)`` gives its solver callback.
    With ``settings.strength`` the pull between the keyframes is read first and sets alpha."""
    ends = plan.ends if device is None else plan.ends.to(device)
    settings, calibration = with_strength_alpha(field_of, ends, settings)
    segments = list(solve_segments(field_of, ends, plan.segments, settings, callback_of=callback_of))
    return KeyframeGeodesic(plan, segments, settings, calibration)
