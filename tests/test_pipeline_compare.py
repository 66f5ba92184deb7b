"""geodesic_pipeline.compare.against_geodesic: a path against the geodesic between its ends, with the one
settings value, on an exact mixture density."""

import pytest
import torch

from geodesic_core import GaussianMixtureField, GeodesicInputError, geodesic_efficiency, lerp
from geodesic_pipeline.compare import against_geodesic
from geodesic_pipeline.keyframes import GeodesicSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_modes() -> tuple[GaussianMixtureField, torch.Tensor]:
    """Two 2-D Gaussians and the straight path between them, which crosses the valley between the modes."""
    field = GaussianMixtureField(torch.tensor([[-1.0, 0.0], [1.0, 0.3]], dtype=torch.float64), 0.5)
    points = lerp(torch.tensor([-1.2, 0.1], dtype=torch.float64), torch.tensor([1.1, 0.4], dtype=torch.float64),
                  torch.linspace(0.0, 1.0, 9, dtype=torch.float64))
    return field, points


def test_every_setting_reaches_the_solve_and_both_readouts():
    field, points = two_modes()
    settings = GeodesicSettings(alpha=1.0, sphere=False, method="paper", tolerance=1e-2, accuracy=1e-4,
                                max_evals=3000)
    result = against_geodesic(field, points, settings, readout_max_evals=200)
    expected = geodesic_efficiency(field, points, 1.0, sphere=False, method="paper", tol=1e-2, quadrature_tol=1e-4,
                                   max_evals=3000, readout_max_evals=200)
    assert result.geodesic.method == "paper" and not result.geodesic.sphere
    assert result.efficiency == expected.efficiency < 1.0  # the straight path crosses the valley: not a geodesic
    assert result.path.score_evals == expected.path.score_evals <= 200
    assert torch.equal(result.geodesic.points, expected.geodesic.points)


def test_a_strength_is_refused_naming_it():
    field, points = two_modes()
    with pytest.raises(GeodesicInputError, match=r"^strength: "):
        against_geodesic(field, points, GeodesicSettings(alpha=1.0, strength=1.0))
