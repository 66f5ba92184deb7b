"""The 8x8 digits model (the fast fixture of the batch tool and solver tests): shipped weights are a real
learned model, the diffusers adapter agrees with diffusers' own scheduler. The demo (on the MNIST latent model,
tests/test_mnist_model.py) runs end to end and fails cleanly on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from PIL import Image

from digits.data_8x8 import distance_to_training, in_distribution_limit, load_split
from digits.demo import held_out_endpoints
from digits.latent_files import load_metadata
from digits.latent_model import SCHEDULER_CONFIG, load_mnist_model
from digits.main import main
from digits.model_8x8 import METADATA_FILE, WEIGHTS_FILE, build_unet, load_8x8_model, load_trained_model
from digits.settings import MNIST_DEFAULTS
from digits.train_mnist import evaluation_loss
from geodesic_core import geodesic_efficiency, lerp, read_path, slerp
from geodesic_core.diffusers_adapter import (
    DiffusersDenoiser,
    denoising_sigmas,
    scheduler_sigmas,
    sigma_at_noise_level,
)
from geodesic_pipeline.compare import to_common_radius
from geodesic_pipeline.images import to_model_images

ROOT = Path(__file__).resolve().parents[1]
# The demo at test size: 5 points per path, 4 DDIM steps, a small solver budget (seconds, not minutes).
SMALL = ["--frames", "5", "--ode-steps", "4", "--max-evals", "60"]
OUTPUTS = ("strip.png", "density.png", "animation.webp", "results.json")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    return load_trained_model()


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """The held-out 8x8 digits, [N, 1, 8, 8] in [-1, 1]."""
    return load_split("held_out")[0]


def test_shipped_weights_are_small_and_documented():
    assert WEIGHTS_FILE.stat().st_size < 10 * 2**20
    metadata = load_metadata(METADATA_FILE)
    for key in ("command", "seed", "final_train_loss", "final_held_out_loss", "train_wall_s", "train_cpu_s"):
        assert key in metadata, f"{METADATA_FILE} lacks {key}"


def test_shipped_weights_denoise_held_out_digits_far_better_than_untrained(trained, held_out):
    unet, scheduler = trained
    torch.manual_seed(0)
    untrained = build_unet().eval()
    # Same seeded noise and timesteps for both models. An untrained UNet scores about 1.3 (it predicts
    # noise no better than a constant); the shipped one about 0.1. Half the untrained loss is a bound a
    # placeholder or a broken load cannot meet, with a wide margin for numerical differences.
    trained_loss = evaluation_loss(unet, scheduler, held_out, seed=7, repeats=1)
    untrained_loss = evaluation_loss(untrained, scheduler, held_out, seed=7, repeats=1)
    assert trained_loss < 0.5 * untrained_loss, (trained_loss, untrained_loss)
    # The recorded held-out loss is reproduced with the recorded evaluation draws: 3% covers BLAS
    # differences between machines, not a different model (a retrained seed differs by more).
    metadata = load_metadata(METADATA_FILE)
    recorded = evaluation_loss(unet, scheduler, held_out, seed=12345, repeats=8)
    assert recorded == pytest.approx(metadata["final_held_out_loss"], rel=0.03)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_adapter_x0_matches_diffusers_scheduler(trained, prediction_type, held_out):
    """Our VE-form x0 equals diffusers' own pred_original_sample at a training timestep, whatever the
    UNet output is taken to mean (the shipped UNet's output is reinterpreted for v / sample)."""
    unet, _ = trained
    # clip_sample off: diffusers would clamp x0 to [-1, 1] for sampling; a score needs the raw estimate.
    scheduler = DDPMScheduler(**(SCHEDULER_CONFIG | {"prediction_type": prediction_type, "clip_sample": False}))
    denoise = DiffusersDenoiser(unet, scheduler)
    x0 = held_out[:6]
    generator = torch.Generator().manual_seed(0)
    for timestep in (50, 599, 900):
        alpha = scheduler.alphas_cumprod[timestep]
        x_vp = alpha.sqrt() * x0 + (1 - alpha).sqrt() * torch.randn(x0.shape, generator=generator)
        sigma = float(((1 - alpha) / alpha).sqrt())
        with torch.no_grad():
            expected = scheduler.step(unet(x_vp, timestep).sample, timestep, x_vp).pred_original_sample
        ours = denoise(x_vp * (1 + sigma**2) ** 0.5, sigma)
        # float32 arithmetic along two different formulas: 1e-4 absolute on values of order 1-10
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_noise_level_and_schedule():
    scheduler = DDPMScheduler(**SCHEDULER_CONFIG)
    sigmas = scheduler_sigmas(scheduler)
    sigma = sigma_at_noise_level(scheduler, 0.6)
    # timestep 0.6 * 999 = 599.4 lies between the tabulated sigmas of 599 and 600
    assert float(sigmas[599]) < sigma < float(sigmas[600])
    schedule = denoising_sigmas(scheduler, sigma, 10)
    assert len(schedule) == 11 and float(schedule[0]) == sigma and float(schedule[-1]) == 0.0
    assert bool((schedule[1:] < schedule[:-1]).all())
    assert float(schedule[-2]) == pytest.approx(float(sigmas[0]))


def test_invert_then_decode_reconstructs_held_out_digits(held_out):
    model = load_8x8_model(ode_steps=20)
    images = held_out[:8]
    latents = model.to_latents(images)
    # The latents are noisy: far from the images (sigma ~2.3 per pixel would give ~2.3 RMS for fresh noise).
    assert float((latents - images).pow(2).mean().sqrt()) > 1.0
    # Deterministic DDIM inversion and generation retrace the same ODE, so the digits come back. 0.15
    # RMS on a [-1, 1] scale is a clearly recognisable digit (a wrong class differs by ~0.8 RMS); the
    # ODE discretisation with 20 steps keeps it from being exact.
    rms = float((model.to_images(latents) - images).pow(2).mean().sqrt())
    assert rms < 0.15, rms


def test_main_command_compares_like_with_like(tmp_path):
    out = tmp_path / "demo"
    completed = subprocess.run([sys.executable, "-m", "digits.main", "--out", str(out), *SMALL], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    results = json.loads((out / "results.json").read_text())
    # Each geodesic is compared with the baseline of its own geometry.
    assert results["comparisons"].keys() == {"sphere", "free"}
    assert {(c["baseline"], c["geodesic"], c["sphere"]) for c in results["comparisons"].values()} == {
        ("slerp", "sphere geodesic", True), ("linear", "free geodesic", False)}
    paths = results["paths"]
    assert set(paths) == {"slerp", "sphere geodesic", "linear", "free geodesic"}
    # The baseline's efficiency against geodesic_core's own geodesic_efficiency on the same model and ends,
    # recomputed here from the images (not from the demo's JSON) with the demo's solve settings.
    model = load_mnist_model(MNIST_DEFAULTS.noise_level, 4)
    images, _ = held_out_endpoints(0)
    a, b = to_common_radius(*model.to_latents(images))
    ts = torch.linspace(0.0, 1.0, 5, dtype=a.dtype)
    for comparison in results["comparisons"].values():
        baseline, geodesic = paths[comparison["baseline"]], paths[comparison["geodesic"]]
        sphere = comparison["sphere"]
        expected = geodesic_efficiency(model.field, (slerp if sphere else lerp)(a, b, ts), MNIST_DEFAULTS.alpha,
                                       sphere=sphere, method="default", max_evals=60)
        # The same points read by the same field: equal up to float32 rounding between the two processes.
        assert baseline["density_weighted_length"] == pytest.approx(expected.path.length, rel=1e-4), comparison
        again = read_path(model.field, expected.geodesic.points, MNIST_DEFAULTS.alpha, sphere=sphere)
        assert geodesic["density_weighted_length"] == pytest.approx(again.length, rel=1e-4), comparison
        # The demo divides by its re-read of the geodesic, geodesic_efficiency by the solve's own readout:
        # two quadratures of one length, each within its reported bound.
        bound = expected.efficiency * sum(r.length_error / r.length for r in (expected.path, expected.geodesic.readout,
                                                                               again))
        assert abs(baseline["geodesic_efficiency"] - expected.efficiency) <= bound, (comparison, bound)
        assert comparison["baseline_length_over_geodesic"] == pytest.approx(1 / baseline["geodesic_efficiency"])
        assert comparison["visibly_different"] == (comparison["novel_frame_distance_max"] >= 0.15)
    for numbers in paths.values():
        assert all(np.isfinite(numbers[key]) for key in ("mean_relative_log_density",
                                                          "min_relative_log_density", "geodesic_efficiency"))
        assert 0.0 <= numbers["min_confidence"] <= numbers["mean_confidence"] <= 1.0
        assert len(numbers["frame_labels"]) == 5 and numbers["frechet_distance"] > 0
        assert numbers["largest_step_share"] > 0.0
        assert numbers["ppl"] > 0 and 0 <= numbers["pdv"] < numbers["ppl"]
    assert all(len(values) == 5 for values in results["log_density"].values())
    assert results["settings"]["image_size"] == 32 and "NON-STANDARD" in results["notes"]
    # Held-out digits are in distribution by construction: the judge is trusted and nothing is inverted.
    assert results["judge_reliable"] and results["inputs"]["notices"] == []
    with Image.open(out / "strip.png") as strip:
        assert strip.width > 1000 and strip.height > 400  # four rows of frames with their density plots
    with Image.open(out / "animation.webp") as animation:
        assert animation.n_frames == 2 * 5 - 2  # there and back
    # The console says which path is compared with which, what efficiency means and what differs.
    assert "sphere geodesic vs slerp" in completed.stdout and "free geodesic vs linear" in completed.stdout
    assert "efficiency = geodesic length / path length" in completed.stdout
    assert completed.stdout.count("Where it differs: log density") == 2
    assert "[digits]" in completed.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no staging folder left behind


# Each case is a bad argument the demo must reject before it loads torch, diffusers, scikit-learn or
# matplotlib, so that the error comes back at once (measured well under a second, see the closing note).
FAST_ERRORS = [
    (["--frames", "2"], "--frames: expected at least 3 points"),
    (["--alpha", "-1"], "--alpha: expected a finite positive number"),
    (["--alpha", "nan"], "--alpha: expected a finite positive number"),
    (["--noise-level", "1.5"], "--noise-level: expected a fraction"),
    (["--max-evals", "0"], "--max-evals: expected a positive number"),
    (["--threads", "0"], "--threads: expected a positive number"),
    (["--ode-steps", "0"], "--ode-steps: expected a positive number"),
    (["--images", "a.png"], "--images: expected exactly 2 image files"),
    (["--images", "missing.png", "missing2.png"], "--images: cannot read missing.png"),
]
FAST_ERROR_SCRIPT = """
import contextlib, io, json, sys
from digits.main import main
results = []
for args, _ in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    results.append([code, err.getvalue()])
heavy = sorted(m for m in ("torch", "sklearn", "diffusers", "matplotlib", "numpy") if m in sys.modules)
print(json.dumps({"results": results, "heavy": heavy}))
"""


def test_argument_errors_come_before_heavy_imports(tmp_path):
    completed = subprocess.run([sys.executable, "-c", FAST_ERROR_SCRIPT, json.dumps(FAST_ERRORS)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120,
                               env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    for (args, message), (code, stderr) in zip(FAST_ERRORS, report["results"], strict=True):
        assert code == 2 and message in stderr, (args, code, stderr)
    assert report["heavy"] == [], f"loaded before the arguments were checked: {report['heavy']}"


def dark_on_light_png(digit: torch.Tensor, path: Path, scale: int = 4) -> Path:
    """A model image [1, 8, 8] drawn the other way round (dark ink on white), scale x larger."""
    unit = ((digit[0].numpy() + 1.0) / 2.0).repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(np.round(255 * (1.0 - unit)).astype(np.uint8)).save(path)
    return path


def test_light_background_is_inverted_with_a_notice(tmp_path, held_out):
    digits = held_out[:2]
    files = [dark_on_light_png(digit, tmp_path / f"dark_{k}.png") for k, digit in enumerate(digits)]
    with Image.open(files[0]) as first, Image.open(files[1]) as second:
        images, notices = to_model_images([first.convert("L"), second.convert("L")], files, (8, 8))
    # Inverted and shrunk back, each is the original digit up to 8-bit rounding (one load_digits step is
    # 2/16 on this scale; 8-bit rounding is 1/255).
    torch.testing.assert_close(images, digits, atol=2 / 255, rtol=0)
    assert len(notices) == 2 and all("inverted" in notice and str(f) in notice for notice, f in zip(notices, files))
    bright = tmp_path / "bright.png"
    Image.fromarray(np.round(255 * (digits[0, 0].numpy() + 1) / 2).astype(np.uint8)).save(bright)
    with Image.open(bright) as image:
        same, none = to_model_images([image.convert("L")] * 2, [bright] * 2, (8, 8))
    torch.testing.assert_close(same, digits[[0, 0]], atol=2 / 255, rtol=0)
    assert none == []


def test_distance_to_training_separates_digits_from_other_inputs(held_out):
    limit = in_distribution_limit()
    assert (distance_to_training(held_out) <= limit).all()
    # Dark-on-light digits read without inversion, and plain noise, are far outside.
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand((8, 1, 8, 8), generator=generator) * 2 - 1
    assert (distance_to_training(-held_out[:50]) > 2 * limit).all()
    assert (distance_to_training(noise) > 1.5 * limit).all()
    # A training digit is at distance 0 from itself (up to the rounding of torch.cdist).
    train, _ = load_split("train")
    assert distance_to_training(train[:3]).max() < 1e-6


def write_digit_png(path: Path, size: tuple[int, int]) -> Path:
    pixels = np.zeros(size[::-1], dtype=np.uint8)
    pixels[size[1] // 4: 3 * size[1] // 4, size[0] // 2] = 255  # a "1"
    Image.fromarray(pixels).save(path)
    return path


def run_and_expect_error(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out), *SMALL, *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_unreadable_image_file(tmp_path, capsys):
    good = write_digit_png(tmp_path / "one.png", (8, 8))
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    run_and_expect_error(tmp_path, capsys, ["--images", str(good), str(fake)], f"cannot read {fake}")
    run_and_expect_error(tmp_path, capsys, ["--images", str(good), str(tmp_path / "missing.png")],
                         "cannot read")


@pytest.mark.parametrize("count", [1, 3])
def test_wrong_image_count(tmp_path, capsys, count):
    files = [str(write_digit_png(tmp_path / f"d{k}.png", (8, 8))) for k in range(count)]
    run_and_expect_error(tmp_path, capsys, ["--images", *files], "expected exactly 2 image files")


def test_images_of_different_sizes(tmp_path, capsys):
    a = write_digit_png(tmp_path / "a.png", (8, 8))
    b = write_digit_png(tmp_path / "b.png", (16, 16))
    run_and_expect_error(tmp_path, capsys, ["--images", str(a), str(b)], "must have the same size")


def test_failure_after_loading_leaves_no_output(tmp_path, capsys, monkeypatch):
    # A failure while the results are written (a full disk, say: impossible to cause for real here)
    # must leave neither a complete-looking output folder nor the staging folder.
    def disk_full(*_args):
        raise OSError("No space left on device")

    monkeypatch.setattr("digits.render.save_animation", disk_full)
    with pytest.raises(OSError, match="No space left"):
        main(["--out", str(tmp_path / "out"), *SMALL, "--compare", "sphere"])
    assert list(tmp_path.iterdir()) == []


def test_own_images_run_and_replace_an_earlier_result(tmp_path):
    """Off-distribution inputs (uniform noise, 50x50, nothing like a training digit) run, are reported, and
    the judge's verdict is marked unreliable; --no-sphere compares only free vs linear."""
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path in (a, b):
        Image.fromarray(rng.integers(0, 256, (50, 50), dtype=np.uint8)).save(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    completed = subprocess.run([sys.executable, "-m", "digits.main", "--out", str(out), *SMALL, "--no-sphere",
                                "--images", str(a), str(b)], cwd=ROOT, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    results = json.loads((out / "results.json").read_text())
    assert results["inputs"]["source"] == "image files"
    assert set(results["paths"]) == {"linear", "free geodesic"} and set(results["comparisons"]) == {"free"}
    assert not results["judge_reliable"]
    assert min(results["inputs"]["distance_to_nearest_training_digit"]) > results["inputs"]["in_distribution_limit"]
    assert "unlike the training digits" in completed.stderr and "judge: UNRELIABLE" in completed.stdout
