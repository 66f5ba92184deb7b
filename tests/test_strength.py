"""The relative density strength (geodesic_pipeline/strength.py): alpha = strength / the density's pull between
the keyframes, checked against the exact first-order bend, against solved geodesics on mixture densities (a
small strength bends them as far as it says) and against the invariance it promises."""

import math

import pytest
import torch
from evaluation_counting import CountingField

from geodesic_core import GaussianMixtureField, GeodesicInputError
from geodesic_pipeline.keyframes import GeodesicSettings, plan_keyframes, readout_evals, solve_through_keyframes
from geodesic_pipeline.strength import alpha_for_strength, bend, pull_of_segment, strength_evals

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


class ConstantScoreField:
    """log p(x) = c . x: the same score ``c`` everywhere, so the pull across any path is known exactly."""

    def __init__(self, c: torch.Tensor):
        self.c = c

    def score(self, x, t=None):
        return self.c.expand_as(x).clone()


def mixture_problem(seed: int = 0) -> tuple[GaussianMixtureField, torch.Tensor]:
    """Three unit-variance Gaussians in 32-D and two keyframes near two of them, on their common sphere: the
    great circle between the keyframes passes a density valley of tens of nats."""
    generator = torch.Generator().manual_seed(seed)
    means = 4.0 * torch.randn(3, DIMS, generator=generator, dtype=torch.float64)
    ends = means[:2] + 0.3 * torch.randn(2, DIMS, generator=generator, dtype=torch.float64)
    ends = ends / ends.norm(dim=1, keepdim=True) * ends.norm(dim=1).mean()
    return GaussianMixtureField(means, 1.0), ends


@pytest.mark.parametrize("sphere", [False, True])
def test_the_pull_is_the_exact_first_order_bend_of_a_constant_score(sphere):
    """A constant score c with a part n across the starting path: the deviation solves d'' = -alpha L^2 n
    (L the path's length, its constant speed), so d(t) = alpha L^2 n t(1 - t) / 2, largest at t = 1/2:
    pull = L^2 |n| / (8 |b - a|). The second difference is exact on that quadratic. The score's part along
    the path, and with the sphere constraint along the radius, does not pull and must not count."""
    generator = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, DIMS, generator=generator, dtype=torch.float64)
    b = b / b.norm() * a.norm()
    plane, _ = torch.linalg.qr(torch.stack([a, b], 1))
    across = torch.randn(DIMS, generator=generator, dtype=torch.float64)
    across = across - plane @ (plane.T @ across)  # across the great circle, and across the line a-b
    if sphere:
        length = float(torch.arccos(a @ b / (a.norm() * b.norm())) * a.norm())
        c = across + plane @ torch.tensor([3.0, -2.0], dtype=torch.float64)  # in-plane parts: along and radial
    else:
        length = float((b - a).norm())
        c = across + 5.0 * (b - a) / (b - a).norm()
    pull = pull_of_segment(ConstantScoreField(c), a, b, sphere=sphere)
    assert pull == pytest.approx(length ** 2 * float(across.norm()) / (8 * float((b - a).norm())), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_small_strength_bends_the_geodesic_as_far_as_it_says(seed):
    """The pull is first order in alpha: at strength 0.01 the solved geodesic leaves the great circle by 0.01
    of the chord, up to the 9-point reading of a pull that changes along a path through a density valley (on
    these mixtures the solved bend over the strength tends to 1.1-1.2 as the strength goes to 0: 25% allowed).
    Larger strengths bend less than linearly: here the bend levels off near 0.05 of the chord."""
    field, ends = mixture_problem(seed)
    settings = GeodesicSettings(alpha=1.0, strength=0.01, tolerance=1e-6, max_evals=4000)
    geodesic = solve_through_keyframes(lambda _: field, plan_keyframes(ends, frames=17, settings=settings),
                                       settings)
    assert bend(geodesic.points, sphere=True) == pytest.approx(0.01, rel=0.25)


def test_the_same_strength_gives_the_same_geodesic_on_any_power_of_the_density():
    """p and p^c have the same geodesics at alphas alpha and alpha / c (w = exp(-alpha log p) is the same
    function): a strength finds that alpha by itself, while one absolute alpha bends the two paths apart."""
    field, ends = mixture_problem()
    power = 7.0
    fields = {"p": field, "p^7": PoweredField(field, power)}

    def solve(settings):
        plan = plan_keyframes(ends, frames=9, settings=settings)
        return {name: solve_through_keyframes(lambda _, f=f: f, plan, settings) for name, f in fields.items()}

    relative = solve(GeodesicSettings(alpha=1.0, strength=0.3, max_evals=3000))
    assert relative["p^7"].settings.alpha * power == pytest.approx(relative["p"].settings.alpha, rel=1e-9)
    displacement = (relative["p^7"].points - relative["p"].points).norm(dim=1).max()
    chord = (ends[1] - ends[0]).norm()
    assert float(displacement / chord) < 1e-6

    absolute = solve(GeodesicSettings(alpha=relative["p"].settings.alpha, max_evals=3000))
    assert float((absolute["p"].points - relative["p"].points).norm(dim=1).max() / chord) < 1e-6
    bent_apart = (absolute["p^7"].points - absolute["p"].points).norm(dim=1).max()
    assert float(bent_apart / chord) > 0.05


def test_the_pull_readout_counts_against_max_evals():
    field, ends = mixture_problem(1)
    counting = CountingField(field)
    frames, max_evals = 9, 300
    settings = GeodesicSettings(alpha=1.0, strength=1.0, max_evals=max_evals)
    geodesic = solve_through_keyframes(lambda _: counting, plan_keyframes(ends, frames=frames, settings=settings),
                                       settings)
    assert counting.points <= max_evals
    assert geodesic.calibration.score_evals == strength_evals(1)
    assert geodesic.report()[0].startswith(f"alpha {geodesic.settings.alpha:.4g} = strength 1")

    smallest = readout_evals(frames, 2, False, strength=True)
    assert smallest == readout_evals(frames, 2, False) + strength_evals(1)
    with pytest.raises(GeodesicInputError, match=r"^max_evals: .*pull for strength"):
        plan_keyframes(ends, frames=frames, settings=GeodesicSettings(alpha=1.0, strength=1.0,
                                                                      max_evals=smallest - 1))


def test_a_density_that_does_not_pull_or_a_bad_strength_is_refused_naming_strength():
    """A flat density, and a Gaussian centred on the origin with the sphere constraint (its score is radial, so
    every great circle is a geodesic at any alpha), leave nothing for a strength to scale."""
    _, ends = mixture_problem()
    centred = GaussianMixtureField(torch.zeros(1, DIMS, dtype=torch.float64), 2.0)
    for field in (FlatField(), centred):
        with pytest.raises(GeodesicInputError, match=r"^strength: the density does not pull the path"):
            alpha_for_strength(lambda _, f=field: f, ends, 1.0, sphere=True)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(GeodesicInputError, match=r"^strength: expected a positive number"):
            GeodesicSettings(alpha=1.0, strength=bad)


def test_a_repeated_keyframe_is_left_out_of_the_pull():
    """A segment between two equal keyframes stays put at any alpha: the pull is the other segments' alone."""
    field, ends = mixture_problem()
    alone = alpha_for_strength(lambda _: field, ends, 0.1, sphere=True)
    repeated = alpha_for_strength(lambda _: field, torch.stack([ends[0], ends[0], ends[1]]), 0.1, sphere=True)
    assert repeated.pull == pytest.approx(alone.pull, rel=1e-12)
    assert repeated.score_evals == strength_evals(1)
