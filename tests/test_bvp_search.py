"""The default BVP solver's outcomes and its global search, against exact answers (fast marching in 2-D)."""

import pytest
import torch
from exact_answers import RING, fast_marching_distance

from geodesic_core import DenoiserField, GaussianMixtureField, GeodesicInputError, Outcome, read_path, solve_bvp

# Start and end on two opposite modes of the ring: the straight line through the empty centre is a geodesic
# of the mirror-symmetric problem (the score has no component across it), so a local solve started on it
# can never leave it, while the shortest path goes round the ring.
RING_FIELD = GaussianMixtureField(RING.double(), 0.5)
RING_START, RING_END = torch.tensor([2.0, 0.0]).double(), torch.tensor([-2.0, 0.0]).double()


def test_global_search_finds_the_detour_the_local_solve_misses():
    local = solve_bvp(RING_FIELD, RING_START, RING_END, n_points=65, alpha=1.0)
    found = solve_bvp(RING_FIELD, RING_START, RING_END, n_points=65, alpha=1.0, search="global")
    reference = fast_marching_distance(RING_FIELD, RING_START, RING_END, 1.0)
    assert local.route == "direct" and local.search_evals == 0
    assert float(local.points[:, 1].abs().max()) < 1e-9  # stuck on the symmetric straight path
    assert local.readout.length > 5 * reference
    assert found.route.startswith("via waypoint")
    # 1.5%: as in test_core's fast-marching comparison (65 points, FMM accurate to ~0.2% here)
    assert abs(found.readout.length - reference) / reference < 0.015, (found.readout.length, reference)
    assert float(found.points[:, 1].abs().max()) > 1.0  # round the ring, not across it
    # Its length is the certified readout of its own frames.
    again = read_path(RING_FIELD, found.points, 1.0)
    assert abs(again.length - found.readout.length) <= again.length_error + found.readout.length_error
    assert found.search_evals == found.score_evals - local.score_evals > 0


@pytest.mark.parametrize("search", ["local", "global"])
def test_search_keeps_the_budget(search):
    calls = []

    class Counting:
        def score(self, x, t=None):
            calls.append(len(x))
            return RING_FIELD.score(x, t)

    res = solve_bvp(Counting(), RING_START, RING_END + 0.1, n_points=17, alpha=1.0, search=search, max_evals=400)
    assert sum(calls) == res.score_evals <= 400


def test_converged_means_the_tolerance_was_met():
    field = GaussianMixtureField(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]).double(), 0.5)
    a, b = torch.tensor([-1.5, 0.3]).double(), torch.tensor([1.5, 0.3]).double()
    res = solve_bvp(field, a, b, n_points=33, alpha=0.5, tol=1e-3)
    assert res.outcome == Outcome.CONVERGED and res.converged
    assert res.residual <= 1e-3
    # An unreachable tolerance: the solver stops at the floor, or on its budget, and says it did not converge.
    tight = solve_bvp(field, a, b, n_points=33, alpha=0.5, tol=1e-12, max_evals=3000)
    assert not tight.converged and tight.residual > 1e-12
    assert tight.outcome in (Outcome.FLOOR, Outcome.BUDGET, Outcome.STALLED)


@pytest.mark.parametrize("args,name", [
    ({"method": "paper", "search": "global"}, "method"),
    ({"method": "paper", "initial": torch.zeros(17, 2).double()}, "method"),
    ({"search": "everywhere"}, "search"),
    ({"search": "global", "initial": torch.zeros(17, 2).double()}, "initial"),
])
def test_options_a_method_does_not_support_are_refused(args, name):
    with pytest.raises(GeodesicInputError, match=rf"^{name}:"):
        solve_bvp(RING_FIELD, RING_START, RING_END, **args)


def test_ring_straight_path_is_a_critical_path():
    """The premise of the detour test: on the straight line the score has no component across it."""
    xs = torch.linspace(-2, 2, 41).double()
    pts = torch.stack([xs, torch.zeros_like(xs)], 1)
    assert float(RING_FIELD.score(pts)[:, 1].abs().max()) < 1e-12


def test_a_trial_the_model_cannot_score_is_a_rejected_trial():
    """A learned model can overflow far from its data: the solve backtracks past such a trial (its
    evaluations still counted) instead of failing."""
    field = GaussianMixtureField(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]).double(), 0.5)
    sigma, calls = 0.1, []

    def denoise(x, s, t=None):
        calls.append(len(x))
        out = x + s**2 * field.score(x)
        return torch.full_like(out, float("nan")) if len(calls) == 4 else out  # one trial path overflows

    a, b = torch.tensor([-1.5, 0.3]).double(), torch.tensor([1.5, 0.3]).double()
    res = solve_bvp(DenoiserField(denoise, sigma), a, b, n_points=17, alpha=0.5)
    clean = solve_bvp(DenoiserField(lambda x, s, t=None: x + s**2 * field.score(x), sigma), a, b, n_points=17,
                      alpha=0.5)
    assert len(calls) > 4 and sum(calls) == res.score_evals
    assert torch.isfinite(res.points).all()
    assert abs(res.readout.length - clean.readout.length) <= 1e-3 * clean.readout.length
