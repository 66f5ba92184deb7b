"""The relative density strength: one number for alpha on every model, scaled to its log density.

The metric weight is w = exp(-alpha * log p), so what bends a path is alpha times how much log p varies near
it, and that variation differs by orders of magnitude between models, resolutions and noise levels (along
the great circle between two digits the embedded 4x8x8 MNIST latent model's log p spans 0.5-4 nats; log p of
a 4x64x64 Stable Diffusion latent sums over 64 times as many values). ``strength`` fixes the
product instead of alpha: alpha = strength / R, with R the log-density range (largest minus smallest value)
along the straight-line path between the keyframes (the great circle with the sphere constraint), read at
``RANGE_POINTS`` points per segment to ``RANGE_ACCURACY`` of the range (one to ``RANGE_PASSES`` readout
passes). The same strength then asks every model for the same trade between density and distance along the
path every solve starts from, and a solve is unchanged when log p is scaled (p and p^k give one geodesic). It
does not fix how far the geodesic bends: that follows the density off that path, which R does not see
(measured in docs/reports/2026-12-07-strength.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import core, geometry

RANGE_POINTS = 9  # per segment: enough to see the range of a smooth curve
RANGE_ACCURACY = 0.05  # of the range: a knob needs no more, and a trained model's curve meets it in one pass
RANGE_PASSES = 4  # the most evaluations per segment, in readout passes: a density whose mixture components
# switch between the points needs 3-4 (measured on 32-D Gaussian mixtures), and the budget is known in advance
RANGE_ALPHA = 1e-9  # the readout's lengths go unused: a near-flat metric keeps them finite over any range


@dataclass(frozen=True)
class StrengthCalibration:
    """The alpha a strength gives on one set of keyframes, and what it was read from."""

    strength: float
    log_density_range: float  # R: nats between the most and least probable of the read points
    range_error: float        # the readout's bound on R's error
    alpha: float              # strength / R
    score_evals: int          # of the range's readout

    def describe(self) -> str:
        return (f"alpha {self.alpha:.4g} = strength {self.strength:g} / log-density range "
                f"{self.log_density_range:.4g} nats between the keyframes ({self.score_evals} score evaluations)")


def range_evals(segments: int) -> int:
    """The most score evaluations of the range's readout over ``segments`` segments."""
    return segments * RANGE_PASSES * core.one_pass_evals(RANGE_POINTS)


def typical_range_evals(segments: int) -> int:
    """What the range's readout usually takes: one pass per segment (a trained model's curve meets
    ``RANGE_ACCURACY`` there)."""
    return segments * core.one_pass_evals(RANGE_POINTS)


def check_strength(strength: float | None) -> None:
    if strength is not None and not (math.isfinite(strength) and strength > 0):
        raise core.GeodesicInputError(
            f"strength: expected a positive number (or 0 in the nodes: use alpha as given), got {strength!r}")


def starting_path(a: Tensor, b: Tensor, ts: Tensor, sphere: bool) -> Tensor:
    """The path a solve between ``a`` and ``b`` starts from: the great circle with the sphere constraint, else
    the straight line."""
    return geometry.slerp(a, b, ts) if sphere else geometry.lerp(a, b, ts)


def alpha_for_strength(field_of: Callable[[int], core.DensityField], ends: Tensor, strength: float, *,
                       sphere: bool) -> StrengthCalibration:
    """alpha = ``strength`` / R, with R the log-density range along the starting paths between consecutive
    ``ends`` [K, *shape] (segment k in the field ``field_of(k)``), read at ``RANGE_POINTS`` points each and
    stitched at the shared ends (within ``range_evals``). Refuses keyframes along which the density does not
    vary beyond the readout's own error: no strength can be turned into an alpha there."""
    check_strength(strength)
    ts = torch.linspace(0.0, 1.0, RANGE_POINTS, dtype=torch.float64)
    values, errors, evals = [torch.zeros(1, dtype=torch.float64)], [torch.zeros(1, dtype=torch.float64)], 0
    for k in range(len(ends) - 1):
        points = starting_path(ends[k], ends[k + 1], ts, sphere)
        readout = core.read_path(field_of(k), points, RANGE_ALPHA, sphere=sphere, tol=RANGE_ACCURACY,
                                 max_evals=range_evals(1))
        evals += readout.score_evals
        values.append(values[-1][-1] + readout.log_density[1:].cpu())
        errors.append(errors[-1][-1] + readout.log_density_error[1:].cpu())
    log_density, error = torch.cat(values), torch.cat(errors)
    spread = float(log_density.max() - log_density.min())
    spread_error = 2 * float(error.max())  # the largest and the smallest value each off by at most that
    if not (math.isfinite(spread) and spread > spread_error):
        raise core.GeodesicInputError(
            f"strength: the log density hardly varies between the keyframes (range {spread:.3g} nats, readout "
            f"error up to {spread_error:.3g}), so no alpha follows from a strength; set strength to 0 and give "
            f"alpha directly")
    return StrengthCalibration(strength, spread, spread_error, strength / spread, evals)
