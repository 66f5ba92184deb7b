"""The relative density strength: one number for alpha on every model, scaled to how hard its density pulls.

The metric weight is w = p^-alpha, so a path's normal acceleration is alpha times the score's component across
it (docs: gamma'' = -alpha |v|^2 P s). How large that component is differs by orders of magnitude between
models, resolutions and noise levels, so one absolute alpha bends paths on one model and leaves them straight
on another. ``strength`` fixes the bend instead: alpha = strength / pull, where the pull is how far the
geodesic between the keyframes would leave the path a solve starts from (the great circle with the sphere
constraint, else the straight line), per unit alpha, to first order in alpha: the score across that path at
``PULL_POINTS`` points, integrated twice with the ends held, its largest distance from the path over the
chord between the ends. A strength is therefore that first-order bend: strength 0.1 moves the middle of the
path about a tenth of the keyframes' distance off the great circle on any model. Larger strengths bend less
than linearly (measured in docs/reports/2026-12-07-strength.md). A solve is unchanged when log p is scaled,
since p and p^k pull in proportion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import core, geometry

PULL_POINTS = 9  # per segment, ends included (they need no evaluation): the path's turn is smooth at this scale
NO_PULL = 1e-4  # a score this small a share of itself across the path is float rounding: nothing to scale


@dataclass(frozen=True)
class StrengthCalibration:
    """The alpha a strength gives on one set of keyframes, and what it was read from."""

    strength: float
    pull: float        # first-order bend per unit alpha (mean over segments), in chords between the keyframes
    alpha: float       # strength / pull
    score_evals: int   # of the pull's readout

    def describe(self) -> str:
        return (f"alpha {self.alpha:.4g} = strength {self.strength:g} / pull {self.pull:.4g} (how far the density "
                f"bends the path between the keyframes per unit alpha, read in {self.score_evals} score "
                f"evaluations)")


def strength_evals(segments: int) -> int:
    """The score evaluations of the pull's readout over ``segments`` segments."""
    return segments * (PULL_POINTS - 2)


def check_strength(strength: float | None) -> None:
    if strength is not None and not (math.isfinite(strength) and strength > 0):
        raise core.GeodesicInputError(
            f"strength: expected a positive number (or 0 in the nodes: use alpha as given), got {strength!r}")


def starting_path(a: Tensor, b: Tensor, ts: Tensor, sphere: bool) -> Tensor:
    """The path a solve between ``a`` and ``b`` starts from: the great circle with the sphere constraint, else
    the straight line."""
    return geometry.slerp(a, b, ts) if sphere else geometry.lerp(a, b, ts)


def bend(points: Tensor, *, sphere: bool) -> float:
    """How far a path [N, *shape] bends off the starting path between its ends: the largest distance of a point
    from the plane through the origin and the ends (where the great circle lies) with the sphere constraint,
    else from the line through the ends, over the chord between the ends."""
    flat = geometry.flat(points).double()
    chord = flat[-1] - flat[0]
    if sphere:
        basis, _ = torch.linalg.qr(torch.stack([flat[0], flat[-1]], 1))
        off = flat - (flat @ basis) @ basis.T
    else:
        off = geometry.project_out(flat - flat[0], chord.expand_as(flat))
    return float(off.norm(dim=1).max() / chord.norm())


def _tangents(points: Tensor, a: Tensor, b: Tensor, sphere: bool) -> tuple[Tensor, float]:
    """Tangent directions (any length) of the starting path at flat ``points`` [N, d], and its speed |dx/dt|
    (constant)."""
    if not sphere:
        return (b - a).expand_as(points), float((b - a).norm())
    plane, _ = torch.linalg.qr(torch.stack([a, b], 1))  # the great circle lies in span(a, b)
    coords = points @ plane
    tangents = torch.stack([-coords[:, 1], coords[:, 0]], 1) @ plane.T  # each point turned a right angle in it
    angle = torch.arccos(torch.clamp(a @ b / (a.norm() * b.norm()), -1.0, 1.0))
    return tangents, float(angle * (a.norm() + b.norm()) / 2)


def pull_of_segment(field: core.DensityField, a: Tensor, b: Tensor, *, sphere: bool) -> float:
    """First-order bend per unit alpha of the geodesic from ``a`` to ``b`` off its starting path.

    The deviation d(t) solves d'' = -alpha |v|^2 P s(x(t)) with d(0) = d(1) = 0, where P keeps the score's
    part across the path (and, with the sphere constraint, along the sphere); the largest |d| over |b - a|."""
    ts = torch.linspace(0.0, 1.0, PULL_POINTS, dtype=torch.float64)
    af, bf = a.reshape(-1).double(), b.reshape(-1).double()
    points = geometry.flat(starting_path(af, bf, ts, sphere))[1:-1]
    scores = geometry.flat(field.score(points.to(a.dtype).reshape(len(points), *a.shape),
                                       ts[1:-1].to(a.device))).double()
    tangents, speed = _tangents(points, af, bf, sphere)
    across = geometry.project_out(scores, tangents)
    if sphere:
        across = geometry.project_out(across, points)  # the radial part: the tangent is orthogonal to it
    if not float(across.norm(dim=1).mean()) > NO_PULL * float(scores.norm(dim=1).mean()):
        return 0.0
    n, h = len(points), float(ts[1])
    second_difference = (torch.diag(torch.full((n,), -2.0)) + torch.diag(torch.ones(n - 1), 1)
                         + torch.diag(torch.ones(n - 1), -1)).double() / h ** 2
    deviation = torch.linalg.solve(second_difference.to(across.device), -speed ** 2 * across)
    return float(deviation.norm(dim=1).max() / (bf - af).norm())


def alpha_for_strength(field_of: Callable[[int], core.DensityField], ends: Tensor, strength: float, *,
                       sphere: bool) -> StrengthCalibration:
    """alpha = ``strength`` / pull, the pull being the mean over the segments between consecutive ``ends``
    [K, *shape] (segment k in the field ``field_of(k)``) of ``pull_of_segment`` (``strength_evals`` score
    evaluations). Refuses keyframes whose density does not pull the path off its starting path: every alpha
    gives that path there, so no strength can be turned into one."""
    check_strength(strength)
    # A keyframe repeated in a row is a segment that stays put at any alpha: it has no bend to scale.
    pulls = [pull_of_segment(field_of(k), ends[k], ends[k + 1], sphere=sphere) for k in range(len(ends) - 1)
             if not torch.equal(ends[k], ends[k + 1])]
    pull = sum(pulls) / len(pulls) if pulls else 0.0
    if not (math.isfinite(pull) and pull > 0):
        raise core.GeodesicInputError(
            f"strength: the density does not pull the path between the keyframes off the "
            f"{'great circle' if sphere else 'straight line'} (pull {pull:.3g}), so every alpha gives that path "
            f"and no alpha follows from a strength; set strength to 0 and give alpha directly")
    return StrengthCalibration(strength, pull, strength / pull, strength_evals(len(pulls)))
