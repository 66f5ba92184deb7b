"""The Heun option of the probability-flow ODE (order=2) against the closed-form Gaussian flow."""

import pytest
import torch
from exact_answers import MU, TAU, gaussian_denoiser, gaussian_flow_map

from geodesic_core import GeodesicInputError, generate, invert


def _errors(kind: str, steps: int, order: int) -> tuple[float, float]:
    x0 = MU + TAU * torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    top = 0.6 if kind == "flow" else 2.0
    den = gaussian_denoiser(kind)
    exact = gaussian_flow_map(x0, top, kind)
    sigmas = torch.linspace(0, top, steps + 1, dtype=torch.float64)
    noisy = invert(den, x0, sigmas, kind=kind, order=order)
    clean = generate(den, exact, sigmas.flip(0), kind=kind, order=order)
    return float((noisy - exact).norm() / exact.norm()), float((clean - x0).norm() / x0.norm())


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_heun_is_second_order_and_beats_ddim_at_equal_evaluations(kind):
    coarse, fine = _errors(kind, 20, 2), _errors(kind, 40, 2)
    ddim = _errors(kind, 40, 1)  # the same 40 model evaluations per direction as 20 Heun steps
    for direction in (0, 1):
        # Second order: doubling the steps quarters the error (the Euler first / last step is O(h^2) once).
        assert 3.0 < coarse[direction] / fine[direction] < 5.0, (coarse, fine)
        assert coarse[direction] < 0.5 * ddim[direction], (coarse, ddim)


def test_order_is_checked():
    with pytest.raises(GeodesicInputError, match=r"^order:"):
        invert(gaussian_denoiser("ve"), torch.zeros(1, 2), torch.tensor([0.0, 0.5]), order=3)
