"""The demo (digits/main.py, on the embedded MNIST latent model; the model itself is tests/test_mnist_model.py):
it runs end to end and compares like with like, reads image files as the model learned them, and fails
cleanly on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digits.demo import held_out_endpoints
from digits.latent_model import load_mnist_model
from digits.main import main
from digits.mnist import load_split
from digits.settings import MNIST_DEFAULTS, MNIST_IMAGE_SIZE
from geodesic_core import geodesic_efficiency, lerp, read_path, slerp
from geodesic_pipeline.compare import to_common_radius
from geodesic_pipeline.images import to_model_images

ROOT = Path(__file__).resolve().parents[1]
# The demo at test size: 5 points per path, 4 DDIM steps, a small solver budget (seconds, not minutes).
SMALL = ["--frames", "5", "--ode-steps", "4", "--max-evals", "60"]
OUTPUTS = ("strip.png", "density.png", "animation.webp", "results.json")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    """A model image [1, H, W] drawn the other way round (dark ink on white), scale x larger."""
    unit = ((digit[0].numpy() + 1.0) / 2.0).repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(np.round(255 * (1.0 - unit)).astype(np.uint8)).save(path)
    return path


def test_light_background_is_inverted_with_a_notice(tmp_path):
    digits = load_split("held_out")[0][:2]
    size = (MNIST_IMAGE_SIZE, MNIST_IMAGE_SIZE)
    files = [dark_on_light_png(digit, tmp_path / f"dark_{k}.png") for k, digit in enumerate(digits)]
    with Image.open(files[0]) as first, Image.open(files[1]) as second:
        images, notices = to_model_images([first.convert("L"), second.convert("L")], files, size)
    # Inverted and shrunk back (a box of equal pixels), each is the original digit: MNIST pixels are 8-bit, so
    # only float rounding is left.
    torch.testing.assert_close(images, digits, atol=1e-5, rtol=0)
    assert len(notices) == 2 and all("inverted" in notice and str(f) in notice for notice, f in zip(notices, files))
    bright = tmp_path / "bright.png"
    Image.fromarray(np.round(255 * (digits[0, 0].numpy() + 1) / 2).astype(np.uint8)).save(bright)
    with Image.open(bright) as image:
        same, none = to_model_images([image.convert("L")] * 2, [bright] * 2, size)
    torch.testing.assert_close(same, digits[[0, 0]], atol=1e-5, rtol=0)
    assert none == []


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
