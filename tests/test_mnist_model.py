"""The embedded MNIST latent model: shipped weights are small, documented and really trained; the round trip
through VAE and noise level returns the digit; the judge is accurate; the solver shortens the path."""

import numpy as np
import pytest
import torch

from digits.judge import JUDGE_FILE, frechet_distance, held_out_statistics, judge_images, load_judge
from digits.latent_model import (
    METADATA_FILE,
    UNET_FILE,
    VAE_FILE,
    build_latent_unet,
    build_scheduler,
    load_autoencoder,
    load_latent_unet,
    load_metadata,
    load_mnist_model,
)
from digits.mnist import WHEEL_SHA256, load_split, pick_pairs
from digits.settings import MNIST_DEFAULTS
from digits.train_mnist import evaluation_loss
from geodesic_pipeline.compare import compare_paths
from geodesic_pipeline.keyframes import GeodesicSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def held_out():
    return load_split("held_out")


def test_weights_are_small_and_say_how_they_were_made():
    assert sum(path.stat().st_size for path in (VAE_FILE, UNET_FILE, JUDGE_FILE)) < 25 * 2**20
    metadata = load_metadata()
    assert metadata["data"]["wheel_sha256"] == WHEEL_SHA256
    for stage in ("judge", "vae", "unet", "evaluate"):
        for key in ("command", "seed", "wall_s", "cpu_s"):
            assert key in metadata[stage], f"{METADATA_FILE} lacks {stage}.{key}"
        assert metadata[stage]["command"].startswith(f"python -m digits.train_mnist --stage {stage}")


def test_latent_unet_denoises_held_out_latents_far_better_than_untrained(held_out):
    codec = load_autoencoder()
    latents = codec.encode(held_out[0][:2000])
    # The encoder's scaling gives the UNet unit-variance latents, as SD's 0.18215 does (within 10%).
    assert float(latents.std()) == pytest.approx(1.0, rel=0.1)
    scheduler = build_scheduler()
    trained = evaluation_loss(load_latent_unet(), scheduler, latents, seed=12345, repeats=4)
    torch.manual_seed(0)
    untrained = evaluation_loss(build_latent_unet().eval(), scheduler, latents, seed=12345, repeats=4)
    # The recorded losses, with the recorded draws: 3% covers BLAS differences between machines.
    record = load_metadata()["unet"]
    assert trained == pytest.approx(record["final_held_out_loss"], rel=0.03)
    assert trained < 0.5 * untrained, (trained, untrained)


def test_vae_reconstructs_held_out_digits(held_out):
    codec = load_autoencoder()
    images = held_out[0][:2000]
    rms = float((codec.decode(codec.encode(images)) - images).pow(2).mean().sqrt())
    record = load_metadata()["vae"]
    assert rms == pytest.approx(record["held_out_reconstruction_rms"], rel=0.03)
    assert rms < 0.25 * record["untrained_reconstruction_rms"]


def test_judge_accuracy_on_held_out_digits(held_out):
    images, labels = held_out
    accuracy = float((judge_images(load_judge(), images).labels == labels).mean())
    assert accuracy == pytest.approx(load_metadata()["judge"]["held_out_accuracy"], abs=1e-4)
    assert accuracy > 0.98


# Invert then decode at the default noise level (0.8): VAE encode, 20 DDIM steps to the level and 20 back, VAE
# decode. Measured on these 32 held-out digits: 0.096 RMS (0.069 at level 0.6, where the VAE's own
# reconstruction error, 0.070, is nearly all of it), 31 of 32 judged the same digit. 0.15 leaves room for BLAS
# differences between machines; a different digit is about 0.8 RMS away.
ROUND_TRIP_RMS = 0.15


def test_invert_then_decode_returns_the_digit(held_out):
    images, labels = held_out[0][:32], held_out[1][:32]
    model = load_mnist_model(ode_steps=20)
    latents = model.to_latents(images)
    back = model.to_images(latents)
    rms = float((back - images).pow(2).mean().sqrt())
    assert rms < ROUND_TRIP_RMS, rms
    assert (judge_images(load_judge(), back).labels == labels).mean() >= 0.9


def test_geodesic_is_no_longer_than_slerp_on_held_out_pairs(held_out):
    """The solver's only promise: in the density metric it finds a path no longer than the one it starts from
    (slerp, on the sphere). Three held-out pairs, a small budget: 1% slack for the readout's quadrature."""
    images, labels = held_out
    model = load_mnist_model(ode_steps=8)
    for i, j in pick_pairs(labels, 3, seed=5):
        latents = model.to_latents(images[[i, j]])
        reports, solve = compare_paths(model, latents[0], latents[1],
                                       GeodesicSettings(MNIST_DEFAULTS.alpha, max_evals=400), n_points=9)
        assert reports["geodesic"].readout.length <= 1.01 * reports["slerp"].readout.length, (i, j, solve.outcome)


def test_frechet_distance_matches_the_closed_form():
    # Features with sample mean m and diagonal sample covariance diag(v): the formula reduces to
    # |m - mu|^2 + sum_k (sqrt(v_k) - sqrt(s_k))^2 against a diagonal reference diag(s).
    base = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) * [2.0, 0.5]
    features = base + [3.0, -1.0]
    v = np.diag(np.cov(features, rowvar=False))
    mu, s = np.array([1.0, 1.0]), np.array([4.0, 9.0])
    expected = ((np.array([3.0, -1.0]) - mu) ** 2).sum() + ((np.sqrt(v) - np.sqrt(s)) ** 2).sum()
    assert frechet_distance(features, mu, np.diag(s)) == pytest.approx(expected, rel=1e-9)
    mean, cov = held_out_statistics()
    images, _ = load_split("held_out")
    # held-out digits against their own statistics: near 0 (a sample of 2,000 of the 10,000)
    own = frechet_distance(judge_images(load_judge(), images[:2000]).features, mean, cov)
    noise = frechet_distance(judge_images(load_judge(), torch.rand(200, 1, 32, 32) * 2 - 1).features, mean, cov)
    assert own < 0.05 * noise, (own, noise)
