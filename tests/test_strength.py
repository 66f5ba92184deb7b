"""The relative density strength (geodesic_pipeline/strength.py): alpha = strength / the log-density range
between the keyframes, checked against exact mixture densities and against the one invariance it promises."""

import math

import pytest
import torch
from evaluation_counting import CountingField

from devtools.mixture_oracle import exact_log_density
from geodesic_core import GaussianMixtureField, GeodesicInputError, slerp
from geodesic_pipeline.keyframes import GeodesicSettings, plan_keyframes, readout_evals, solve_through_keyframes
from geodesic_pipeline.strength import RANGE_ACCURACY, RANGE_POINTS, alpha_for_strength, range_evals

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIMS = 32


class PoweredField:
    """The density p^c of ``field``'s p: the score times c (c log p varies c times as much along any path)."""

    def __init__(self, field, power: float):
        self.field, self.power = field, power

    def score(self, x, t=None):
        return self.power * self.field.score(x, t)


class FlatField:
    def score(self, x, t=None):
        return torch.zeros_like(x)


def mixture_problem(seed: int = 0) -> tuple[GaussianMixtureField, torch.Tensor]:
    """Three unit-variance Gaussians in 32-D and two keyframes near two of them, on their common sphere: the
    great circle between the keyframes passes a density valley of tens of nats."""
    generator = torch.Generator().manual_seed(seed)
    means = 4.0 * torch.randn(3, DIMS, generator=generator, dtype=torch.float64)
    ends = means[:2] + 0.3 * torch.randn(2, DIMS, generator=generator, dtype=torch.float64)
    ends = ends / ends.norm(dim=1, keepdim=True) * ends.norm(dim=1).mean()
    return GaussianMixtureField(means, 1.0), ends


def test_the_range_is_the_exact_range_along_the_great_circle():
    field, ends = mixture_problem()
    calibration = alpha_for_strength(lambda _: field, ends, 2.0, sphere=True)
    exact = exact_log_density(field, slerp(ends[0], ends[1], torch.linspace(0.0, 1.0, RANGE_POINTS)))
    exact_range = float(exact.max() - exact.min())
    assert exact_range > 10.0  # a real valley, not a rounding-level range
    # the readout's own bound holds, and meets the accuracy asked of it
    assert abs(calibration.log_density_range - exact_range) <= calibration.range_error + 1e-9
    assert calibration.range_error <= RANGE_ACCURACY * exact_range
    assert calibration.alpha == pytest.approx(2.0 / calibration.log_density_range, rel=1e-12)
    assert calibration.score_evals <= range_evals(1)


def test_the_same_strength_gives_the_same_geodesic_on_any_power_of_the_density():
    """p and p^c have the same geodesics at alphas alpha and alpha / c (w = exp(-alpha log p) is the same
    function): a strength finds that alpha by itself, while one absolute alpha bends the two paths apart."""
    field, ends = mixture_problem()
    power = 7.0
    fields = {"p": field, "p^7": PoweredField(field, power)}

    def solve(settings):
        plan = plan_keyframes(ends, frames=9, settings=settings)
        return {name: solve_through_keyframes(lambda _, f=f: f, plan, settings) for name, f in fields.items()}

    relative = solve(GeodesicSettings(alpha=1.0, strength=1.5, max_evals=3000))
    assert relative["p^7"].settings.alpha * power == pytest.approx(relative["p"].settings.alpha, rel=1e-9)
    displacement = (relative["p^7"].points - relative["p"].points).norm(dim=1).max()
    chord = (ends[1] - ends[0]).norm()
    assert float(displacement / chord) < 1e-6

    absolute = solve(GeodesicSettings(alpha=relative["p"].settings.alpha, max_evals=3000))
    assert float((absolute["p"].points - relative["p"].points).norm(dim=1).max() / chord) < 1e-6
    bent_apart = (absolute["p^7"].points - absolute["p"].points).norm(dim=1).max()
    assert float(bent_apart / chord) > 0.05


def test_the_range_readout_counts_against_max_evals():
    field, ends = mixture_problem(1)
    counting = CountingField(field)
    frames, max_evals = 9, 300
    settings = GeodesicSettings(alpha=1.0, strength=1.0, max_evals=max_evals)
    geodesic = solve_through_keyframes(lambda _: counting, plan_keyframes(ends, frames=frames, settings=settings),
                                       settings)
    assert counting.points <= max_evals
    assert geodesic.calibration.score_evals <= range_evals(1)
    assert geodesic.report()[0].startswith(f"alpha {geodesic.settings.alpha:.4g} = strength 1")

    smallest = readout_evals(frames, 2, False, strength=True)
    assert smallest == readout_evals(frames, 2, False) + range_evals(1)
    with pytest.raises(GeodesicInputError, match=r"^max_evals: .*log-density range for strength"):
        plan_keyframes(ends, frames=frames, settings=GeodesicSettings(alpha=1.0, strength=1.0,
                                                                      max_evals=smallest - 1))


def test_a_flat_density_or_a_bad_strength_is_refused_naming_strength():
    _, ends = mixture_problem()
    with pytest.raises(GeodesicInputError, match=r"^strength: the log density hardly varies"):
        alpha_for_strength(lambda _: FlatField(), ends, 1.0, sphere=True)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(GeodesicInputError, match=r"^strength: expected a positive number"):
            GeodesicSettings(alpha=1.0, strength=bad)
