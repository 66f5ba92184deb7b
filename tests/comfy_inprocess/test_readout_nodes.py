"""Density Readout and Perceptual Metrics: the core's numbers on the same field, within the budget."""
from __future__ import annotations

import functools

import pytest
import torch
from density_geodesics.geodesic_core import DenoiserField, GeodesicInputError, geodesic_efficiency, read_path
from density_geodesics.geodesic_core.perceptual import interpolate_points
from density_geodesics.nodes import DecodePath, DensityReadout, PerceptualMetricsNode
from density_geodesics.nodes.bridge import run_with_denoiser
from density_geodesics.nodes.model_facts import noise_kind
from inprocess_support import SIZE, batch_recording

from devtools.markdown_tables import markdown_tables


def _table_numbers(table: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Density Readout's tables: its per-frame columns by name, and its summary numbers by name."""
    frames, summary = markdown_tables(table)
    # "-": the last frame's LPIPS to the next
    columns = {name: [float("nan" if row[name] == "-" else row[name]) for row in frames] for name in frames[0]}
    return columns, {row["number"]: float(row["value"]) for row in summary}


@pytest.mark.parametrize("compare_geodesic", [False, True], ids=["path only", "with geodesic"])
def test_density_readout_reports_the_cores_numbers_on_the_same_field_within_its_budget(sd, solved,
                                                                                       compare_geodesic):
    """The node's outputs and table against geodesic_core run on the same model through the same bridge,
    and its evaluations counted at the UNet."""
    model, max_evals = sd["model"], 24
    path = solved
    wrapped, batches = batch_recording(model)
    _, table, length, efficiency, min_log_density = DensityReadout.execute(
        wrapped, path, compare_geodesic, 0.002, True, "default", 1e-3, max_evals, 4, 0.0).args
    node_evals = sum(batches)
    batches.clear()

    def core(denoise, device):
        # "equal" spacing through evenly spaced keyframes: the path's positions are the readout's own.
        assert torch.allclose(path.t, torch.linspace(0, 1, len(path)))
        field = DenoiserField(denoise, path.sigma, noise_kind(model))
        if compare_geodesic:
            result = geodesic_efficiency(field, path.points.to(device), 0.002, sphere=True, method="default",
                                         tol=1e-3, quadrature_tol=1e-3, max_evals=max_evals,
                                         readout_max_evals=max_evals)
            return result.path, result
        return read_path(field, path.points.to(device), 0.002, sphere=True, tol=1e-3, max_evals=max_evals), None

    readout, compared = run_with_denoiser(wrapped, path.schedule, core, stage="test",
                                          latent_shape=tuple(path.points.shape[1:]), batch_size=4,
                                          largest_batch=len(path), total_evals=2 * max_evals, sigma=path.sigma)
    columns, summary = _table_numbers(table)
    # Same model calls on the same latents: equal to float32 rounding, and the table to its printed digits (4).
    assert length == pytest.approx(readout.length, rel=1e-5)
    assert min_log_density == pytest.approx(float(readout.log_density.min()), rel=1e-5, abs=1e-6)
    assert columns["log_p"] == pytest.approx(readout.log_density.tolist(), rel=5e-4, abs=1e-6)
    assert columns["distance"] == pytest.approx(readout.cumulative_length.tolist(), rel=5e-4, abs=1e-6)
    # the largest error bound, printed to 1 significant digit
    assert summary["log_p error"] == pytest.approx(float(readout.log_density_error.max()), rel=0.5, abs=1e-12)
    assert summary["length"] == pytest.approx(readout.length, rel=5e-4)
    assert summary["evaluations"] == readout.score_evals <= max_evals
    # Preview as Text shows a float output as str(): rounded, while the value stays exact
    assert str(length) == f"{readout.length:.4g}" and float(str(efficiency)) == pytest.approx(efficiency, rel=1e-3)
    if compare_geodesic:
        assert efficiency == pytest.approx(compared.efficiency, rel=1e-5)
        assert summary["efficiency"] == pytest.approx(compared.efficiency, abs=0.005)
        assert summary["geodesic"] == pytest.approx(compared.geodesic.readout.length, rel=5e-4)
        assert summary["closure gap"] == pytest.approx(compared.closure.gap, rel=0.05, abs=1e-4)
        assert compared.geodesic.score_evals <= max_evals
        expected_evals = readout.score_evals + compared.geodesic.score_evals
    else:
        assert efficiency == -1.0
        expected_evals = readout.score_evals
    # Counted at the UNet: the node made exactly the evaluations the core reports for the same work.
    assert node_evals == sum(batches) == expected_evals, (node_evals, sum(batches), expected_evals)


def test_perceptual_metrics_and_even_lpips_decode(sd, solved):
    model, vae = sd["model"], sd["vae"]
    path = solved
    plain = DecodePath.execute(model, path, 2, 4, vae=vae).args[1]
    plot, table, ppl, pdv = PerceptualMetricsNode.execute(plain, "alex").args
    assert plot.shape[0] == 1 and plot.shape[-1] == 3
    steps, summary = markdown_tables(table)
    assert len(steps) == 4 and ppl > 0 and pdv >= 0 and float(summary[0]["value"]) == pytest.approx(ppl, rel=1e-2)
    assert PerceptualMetricsNode.execute(plain[:1].expand(3, -1, -1, -1), "vgg").args[2] == 0.0
    with pytest.raises(GeodesicInputError, match="images: perceptual metrics need at least 2 frames"):
        PerceptualMetricsNode.execute(plain[:1], "alex")

    latent, images, report, frames_path = DecodePath.execute(model, path, 2, 4, vae=vae, spacing="even LPIPS",
                                                             frames=6).args
    assert latent["samples"].shape[0] == 6 and images.shape == (6, SIZE, SIZE, 3)
    numbers = dict(row.split("\t", 1) for row in report.splitlines())
    assert float(numbers["pdv_after"]) < float(numbers["pdv_before"])
    # the returned frames are the ones measured: their PDV is the node's own metric of them
    assert abs(PerceptualMetricsNode.execute(images, "alex").args[3] - float(numbers["pdv_after"])) < 1e-5
    with pytest.raises(GeodesicInputError, match="vae: even LPIPS spacing"):
        DecodePath.execute(model, path, 2, 4, spacing="even LPIPS")

    table = DensityReadout.execute(model, path, False, 0.002, True, "default", 1e-3, 24, 4, 0.0,
                                   images=plain).args[1]
    frames, summary = markdown_tables(table)
    assert "lpips" in frames[0] and {row["number"]: row["value"] for row in summary}["ppl"] == f"{ppl:.3g}"

    # The even frames lie at the positions the report gives, decoded from the path's latents there.
    positions = [float(v) for v in numbers["t"].split()]
    assert frames_path.t.tolist() == pytest.approx(positions, abs=1e-4) and len(frames_path) == 6
    assert torch.allclose(frames_path.points, interpolate_points(path.points, path.t, frames_path.t), atol=1e-6)
    readout = DensityReadout.execute(model, frames_path, False, 0.002, True, "default", 1e-3, 24, 4, 0.0,
                                     images=images).args[1]
    columns, _ = _table_numbers(readout)
    assert columns["t"] == pytest.approx(frames_path.t.tolist(), abs=1e-4)


def test_density_readout_pairs_decoded_frames_with_the_points_they_show(sd, solved):
    """Frames Decode Path made are read out at their own points: an even LPIPS decode of as many frames as the
    path has points is refused against the path itself (same count, other points), as are another path's frames;
    frames of unknown origin are paired by count."""
    model, vae, path = sd["model"], sd["vae"], solved
    readout = functools.partial(DensityReadout.execute, model, compare_geodesic=False, alpha=0.002, sphere=True,
                                method="default", tolerance=1e-3, max_evals=24, batch_size=4, guidance=0.0)
    _, even, _, even_path = DecodePath.execute(model, path, 2, 4, vae=vae, spacing="even LPIPS").args
    assert len(even) == len(path) and not torch.equal(even_path.t, path.t)
    with pytest.raises(GeodesicInputError, match="images: these 5 frames were decoded from other points than "
                                                 "this path's 5 .* connect the frames_path output"):
        readout(path=path, images=even)
    assert len(readout(path=even_path, images=even).args[1].splitlines()) > len(path)
    plain = DecodePath.execute(model, path, 2, 4, vae=vae).args[1]
    with pytest.raises(GeodesicInputError, match="images: these 5 frames were decoded from other points"):
        readout(path=even_path, images=plain)
    # A copy is a batch Decode Path did not make: the count rule, which also refuses a wrong count.
    readout(path=even_path, images=plain.clone())
    with pytest.raises(GeodesicInputError, match="images: expected the 5 decoded frames of this path, got 4"):
        readout(path=path, images=plain[:4].clone())
