"""The embedded MNIST latent model as ComfyUI objects (nodes/embedded_model.py), in-process on a real ComfyUI.

ComfyUI's own KSampler, VAE Encode / Decode and latent previews run on the loader's MODEL and VAE, and their
output is read by the independent judge (digits/judge.py). The equivalence test runs the pack's nodes on that
MODEL and VAE and the ComfyUI-free pipeline on the diffusers model, as the demo does, and asks for the same
keyframes, geodesic, decoded frames and evaluation counts.
"""
from __future__ import annotations

import pytest
import torch

from devtools import comfy_harness as harness

harness.import_comfy()  # before anything from ComfyUI: puts it on sys.path and forces CPU
pack = harness.import_pack()
import comfy.cli_args  # noqa: E402
import latent_preview  # noqa: E402
from density_geodesics.geodesic_core import GeodesicInputError  # noqa: E402
from density_geodesics.nodes import (  # noqa: E402
    DecodePath,
    EncodeKeyframes,
    JoinKeyframes,
    LoadEmbeddedModel,
    MnistTestDigit,
    SolveBVP,
)
from density_geodesics.nodes.model_facts import model_key, noise_kind, ode_sigmas, sigma_at  # noqa: E402
from evaluation_counting import CountingDenoiser  # noqa: E402

import nodes as comfy_nodes  # noqa: E402
from digits.judge import judge_images, load_judge  # noqa: E402
from digits.latent_model import build_scheduler, load_mnist_model  # noqa: E402
from digits.mnist import load_split  # noqa: E402
from digits.settings import MNIST_DEFAULTS, ODE_STEPS  # noqa: E402
from geodesic_core.diffusers_adapter import denoising_sigmas, scheduler_sigmas  # noqa: E402
from geodesic_pipeline.compare import COMPARISONS, compare_like_for_like  # noqa: E402
from geodesic_pipeline.keyframes import GeodesicSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HELD_OUT_PAIR = (0, 1)  # a 7 and a 2
FRAMES = 9
MAX_EVALS = 1500


@pytest.fixture(scope="module")
def embedded():
    model, vae, conditioning = LoadEmbeddedModel.execute().args
    return {"model": model, "vae": vae, "conditioning": conditioning}


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def model_images(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [N, 32, 32, 3] in [0, 1] -> the judge's and the pipeline's [N, 1, 32, 32] in [-1, 1]."""
    return images[..., :1].movedim(-1, 1) * 2.0 - 1.0


def test_the_model_is_sd_epsilon_sampling_on_its_own_schedule(embedded):
    model = embedded["model"]
    sampling = model.get_model_object("model_sampling")
    expected = scheduler_sigmas(build_scheduler())
    torch.testing.assert_close(sampling.sigmas.double(), expected, rtol=1e-6, atol=0)
    assert noise_kind(model) == "ve"
    assert model_key(model).prediction == "EPS"
    # ComfyUI's percent_to_sigma and the pipeline agree on the noise level, and ode_sigmas on every step
    pipeline = load_mnist_model(MNIST_DEFAULTS.noise_level, ODE_STEPS)
    assert sigma_at(model, MNIST_DEFAULTS.noise_level) == pytest.approx(pipeline.sigma, rel=1e-6)
    torch.testing.assert_close(ode_sigmas(model, MNIST_DEFAULTS.noise_level, ODE_STEPS).double(),
                               denoising_sigmas(build_scheduler(), pipeline.sigma, ODE_STEPS), rtol=1e-6, atol=0)
    # the UNet sees the continuous timestep of a sigma between two trained ones, as the diffusers adapter gives it
    between = sampling.sigma(torch.tensor([799.25]))
    assert float(sampling.timestep(between)) == pytest.approx(799.25, abs=1e-3)


def test_mnist_digit_node_gives_held_out_digits_and_refuses_other_indices():
    image, label = MnistTestDigit.execute(0).args
    assert image.shape == (1, 32, 32, 3) and label == 7
    assert torch.equal(image[..., 0], image[..., 2]) and float(image.min()) == 0.0
    images, labels = load_split("held_out")
    torch.testing.assert_close(model_images(image), images[:1])
    with pytest.raises(GeodesicInputError, match=r"index: expected .*0 to 9999, got 10000"):
        MnistTestDigit.execute(10000)


def test_vae_encode_decode_keeps_the_digit(embedded, judge):
    images, labels = load_split("held_out")
    digits = torch.cat([MnistTestDigit.execute(i).args[0] for i in range(16)])
    (latent,) = comfy_nodes.VAEEncode().encode(embedded["vae"], digits)
    assert latent["samples"].shape == (16, 4, 8, 8)
    (decoded,) = comfy_nodes.VAEDecode().decode(embedded["vae"], latent)
    assert decoded.shape == (16, 32, 32, 3) and torch.equal(decoded[..., 0], decoded[..., 1])
    verdict = judge_images(judge, model_images(decoded))
    assert (verdict.labels == labels[:16]).mean() >= 0.9
    with pytest.raises(GeodesicInputError, match=r"pixels: the embedded MNIST VAE encodes 32x32 images .* got 64x64"):
        embedded["vae"].encode(torch.zeros(1, 64, 64, 3))


def test_ksampler_draws_digits_and_previews_show_them(embedded, judge, monkeypatch):
    """ComfyUI's KSampler (euler, normal, 25 steps) from pure noise; VAE Decode; the judge reads digits about as
    confidently as it reads the model's own DDIM samples (mean confidence 0.86 over 500 at training time)."""
    (latent,) = comfy_nodes.EmptyLatentImage().generate(64, 64, 16)
    assert latent["samples"].shape[-2:] == (8, 8)
    (sampled,) = comfy_nodes.KSampler().sample(embedded["model"], 7, 25, 1.0, "euler", "normal",
                                               embedded["conditioning"], embedded["conditioning"], latent)
    (images,) = comfy_nodes.VAEDecode().decode(embedded["vae"], sampled)
    verdict = judge_images(judge, model_images(images))
    assert verdict.mean_confidence > 0.7, verdict.confidence
    assert len(set(verdict.labels.tolist())) >= 4  # not one digit over and over
    # the latent preview (ComfyUI's Latent2RGB previewer on this latent format) is a coarse copy of the digit
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Auto)
    previewer = latent_preview.get_previewer("cpu", embedded["model"].model.latent_format)
    assert isinstance(previewer, latent_preview.Latent2RGBPreviewer)
    scaled = embedded["model"].model.process_latent_in(sampled["samples"])
    preview = torch.nn.functional.linear(scaled.movedim(1, -1), previewer.latent_rgb_factors,
                                         previewer.latent_rgb_factors_bias)[..., 0]
    pooled = torch.nn.functional.avg_pool2d(model_images(images), 4)[:, 0]
    assert float(torch.corrcoef(torch.stack([preview.flatten(), pooled.flatten()]))[0, 1]) > 0.7


class CountingUNet:
    """Counts the latents ComfyUI passes to the model (its unet function wrapper, where every call goes)."""

    def __init__(self):
        self.latents = 0

    def __call__(self, apply_model, args):
        self.latents += args["input"].shape[0]
        return apply_model(args["input"], args["timestep"], **args["c"])


def test_comfyui_route_equals_the_pipeline_route(embedded):
    """The nodes on the loader's MODEL and VAE against geodesic_pipeline on the diffusers model (the demo's route),
    at the demo's settings, on a held-out 7 and 2.

    Tolerances: the two routes call the same UNet weights on inputs that differ only by float32 rounding (ComfyUI
    passes sigma as float32, the adapter as float64; the images pass through [0, 1] and back; batches are split
    differently), so one model call agrees to about 1e-6 relative, and 19 inversion steps and the solver's
    iterations compound it. Measured 2026-12-07: keyframes 4.9e-5, geodesic 5.3e-5 (largest difference over the
    latents' RMS), frames 1.8e-4 in [0, 1] pixels. Asked: 2e-4 on the keyframes, 1e-3 on the geodesic (the solver's
    own stopping tolerance), 1e-3 on the frames (a quarter of one 8-bit grey level). The evaluation counts must be
    equal: the same solver taking the same branches on the same scores."""
    noise_level, alpha = MNIST_DEFAULTS.noise_level, MNIST_DEFAULTS.alpha
    counter = CountingUNet()
    model = embedded["model"].clone()
    model.set_model_unet_function_wrapper(counter)
    a, b = (MnistTestDigit.execute(i).args[0] for i in HELD_OUT_PAIR)
    keyframes = []
    for image in (a, b):
        keyframes.append(EncodeKeyframes.execute(model, embedded["conditioning"], noise_level, ODE_STEPS, 0,
                                                 image=image, vae=embedded["vae"]).args[0])
    encode_evals, counter.latents = counter.latents, 0
    joined = JoinKeyframes.execute(*keyframes).args[0]
    path, _, _ = SolveBVP.execute(model, joined, FRAMES, False, "equal", alpha, "default", 1e-3, MAX_EVALS, True,
                               0, 0.0).args
    solve_evals, counter.latents = counter.latents, 0
    frames = DecodePath.execute(model, path, ODE_STEPS, 0, vae=embedded["vae"]).args[1]
    decode_evals = counter.latents

    pipeline = load_mnist_model(noise_level, ODE_STEPS)
    counting = CountingDenoiser(pipeline.denoise)
    pipeline.denoise = counting
    images, _ = load_split("held_out")
    latents = pipeline.to_latents(images[list(HELD_OUT_PAIR)])
    pipeline_encode_evals = counting.take()
    _, solves = compare_like_for_like(pipeline, latents[0], latents[1], [COMPARISONS["sphere"]],
                                      GeodesicSettings(alpha, max_evals=MAX_EVALS), n_points=FRAMES)
    solve = solves["sphere"]
    pipeline_frames = pipeline.to_images(solve.points)

    differences = {"keyframes": scaled_difference(torch.cat([k.points for k in keyframes]), latents),
                   "geodesic": scaled_difference(path.points, solve.points),
                   "frames": float((model_images(frames) - pipeline_frames).abs().max()) / 2.0}
    assert differences["keyframes"] < 2e-4, differences
    assert differences["geodesic"] < 1e-3, differences
    assert differences["frames"] < 1e-3, differences
    assert encode_evals == pipeline_encode_evals == 2 * (ODE_STEPS - 1)
    assert solve_evals == solve.score_evals
    assert decode_evals == FRAMES * ODE_STEPS


def scaled_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest elementwise difference over the RMS of the reference: latents at the noise level have an RMS near
    sigma (about 5 here), so an absolute tolerance alone would mean nothing."""
    return float((a - b).abs().max() / b.pow(2).mean().sqrt())
