"""Progress bars, previews and Cancel, and no memory kept across runs."""
from __future__ import annotations

import gc
import itertools
import math
import re
import warnings

import comfy.cli_args
import comfy.model_management
import comfy.utils
import pytest
import server
import torch
from comfy_execution.utils import CurrentNodeContext
from density_geodesics.geodesic_core import one_pass_evals
from density_geodesics.geodesic_core.lpips import LPIPS
from density_geodesics.geodesic_core.progress import SOLVE_PASSES, estimated_fraction
from density_geodesics.nodes import DecodePath, DensityReadout, EncodeKeyframes, SolveBVP
from inprocess_support import FAST_BVP, NOISE_LEVEL, batch_recording, random_images


class _TextRecorder:
    """Stands in for the PromptServer that an in-process run lacks: records progress texts per node."""

    def __init__(self):
        self.texts = []

    def send_progress_text(self, text, node_id):
        self.texts.append((node_id, text))


def test_progress_bars_end_at_their_totals_and_the_solve_shows_its_residual(sd, keyframes, monkeypatch):
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total)))
    recorder = _TextRecorder()
    monkeypatch.setattr(server.PromptServer, "instance", recorder, raising=False)
    steps = 4
    EncodeKeyframes.execute(sd["model"], sd["cat"], NOISE_LEVEL, steps, 1, image=random_images(2, 11), vae=sd["vae"])
    # Inversion: (steps - 1) model calls per image (the first step starts from the clean latent), exactly. Newer
    # ComfyUI throttles the updates between the first and the last: the bar shows some of the calls, in order.
    calls = (steps - 1) * 2
    assert updates[-1] == (calls, calls) and set(updates) <= {(k, calls) for k in range(1, calls + 1)}
    assert [value for value, _ in updates] == sorted({value for value, _ in updates})
    wrapped, batches = batch_recording(sd["model"])
    for max_evals in (60, 2000):  # a budget that stops the solve (34 spent: no further step fits), and a large one
        updates.clear()
        batches.clear()
        with CurrentNodeContext("prompt", "solve-node"):
            SolveBVP.execute(wrapped, keyframes, 9, False, "equal", **{**FAST_BVP, "max_evals": max_evals})
        totals = {total for _, total in updates}
        assert len(totals) == 1, totals  # one total from the start
        (total,) = totals
        # The bar clamps at its total, so its values alone cannot show an overrun: count the latents at the
        # UNet. The bar never goes back, never passes the total, and fills when done.
        done = list(itertools.accumulate(batches))
        assert done[-1] <= total, (done[-1], total)
        values = [value for value, _ in updates]  # every call's on 0.3.75; a throttled few, in order, on newer
        assert values[-1] == total and values == sorted(values), values
        # The bar shows the estimate for a usual solve of two 5-frame segments (tests/test_server.py and
        # benchmarks/progress_bar.py check how it reads over real solves); this random UNet's solve converges
        # in its first readout, far sooner, so its bar jumps to 100% at the end.
        expected = 2 * SOLVE_PASSES * one_pass_evals(5)
        estimates = {math.floor(estimated_fraction(d, expected, total) * total) for d in done}
        assert set(values) <= {*estimates, total}, (values, done)
    assert recorder.texts and all(node == "solve-node" for node, _ in recorder.texts)
    assert all(re.match(r"segment \d/2, iteration \d+: length [\d.e+-]+, residual [\d.e+-]+ \(stops once it "
                        r"shortens by less than 0.001 per step\), "
                        r"\d+ of \d+ evaluations", text) for _, text in recorder.texts), recorder.texts


@pytest.mark.parametrize("spacing", ["even LPIPS", "even LPIPS (official rescheduler)"])
def test_even_lpips_decode_fills_one_bar_once(sd, solved, monkeypatch, spacing):
    """An even-LPIPS decode decodes the path, measures it with LPIPS, decodes more frames and measures again: one
    bar over all of it (it used to restart at each pass), which never goes back and ends full. Its total is the
    work counted at the UNet (latents) and at LPIPS (frames): the bar reaches its end by the work, not by a jump."""
    updates, lpips_frames = [], []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total)))
    features = LPIPS.features

    def counting_features(self, images):
        lpips_frames.append(len(images))
        return features(self, images)

    monkeypatch.setattr(LPIPS, "features", counting_features)
    wrapped, batches = batch_recording(sd["model"])
    images = DecodePath.execute(wrapped, solved, 2, 4, vae=sd["vae"], spacing=spacing, frames=7).args[1]
    assert len(images) == 7 and sum(lpips_frames) > len(solved) + 7  # measured more than once, then the placed
    totals = {total for _, total in updates}
    assert totals == {sum(batches) + sum(lpips_frames)}, (totals, sum(batches), sum(lpips_frames))
    values = [value for value, _ in updates]
    assert values[-1] == max(totals) and values == sorted(values), values


def test_progress_previews_and_cancel_within_one_model_call_then_the_next_run_works(sd, keyframes,
                                                                                    monkeypatch):
    calls, previews = [], []

    def hook(value, total, preview, node_id=None):
        calls.append(value)
        previews.append(preview)
        if len(calls) == 2:
            comfy.model_management.interrupt_current_processing(True)

    # What `--preview-method auto` selects when no TAESD decoder is installed.
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Latent2RGB)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        SolveBVP.execute(sd["model"], keyframes, 9, False, "equal", **{**FAST_BVP, "max_evals": 400})
    assert len(calls) == 2  # no model call after the one during which Cancel was pressed
    assert calls[0] < calls[1] and all(p[0] == "JPEG" and p[1].size == (8, 8) for p in previews)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    path, _, _ = SolveBVP.execute(sd["model"], keyframes, 5, False, "equal", **FAST_BVP)
    assert len(path) == 5


def test_latent_previews_only_where_the_node_makes_pictures_of_latents(sd, keyframes, monkeypatch):
    """Decode Path and the solve show x0 previews of what they make; Encode Keyframes (its x0 estimates are the
    input pictures, and the node would grow over the one below to show them) and Density Readout (its picture is
    its plot) show none."""
    previews = {}

    def hook(value, total, preview, node_id=None):
        previews.setdefault(current, []).append(preview)

    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Latent2RGB)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    current = "encode"
    EncodeKeyframes.execute(sd["model"], sd["cat"], NOISE_LEVEL, 3, 1, image=random_images(1, 5), vae=sd["vae"])
    current = "solve"
    path = SolveBVP.execute(sd["model"], keyframes, 5, False, "equal", **FAST_BVP).args[0]
    current = "readout"
    DensityReadout.execute(sd["model"], path, True, 0.002, True, "default", 1e-3, 60, 4, 0.0)
    current = "decode"
    DecodePath.execute(sd["model"], path, 2, 4)
    assert set(previews) == {"encode", "solve", "readout", "decode"}
    shown = {node: all(preview is not None and preview[0] == "JPEG" for preview in sent)
             for node, sent in previews.items()}
    none = {node: all(preview is None for preview in sent) for node, sent in previews.items()}
    assert shown["solve"] and shown["decode"] and none["encode"] and none["readout"], previews


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # inspecting torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for obj in gc.get_objects() if torch.is_tensor(obj))


def test_repeated_runs_keep_no_tensors_alive(sd, keyframes):
    """No memory growth over repeated runs: after a warm-up run, further runs leave no extra live tensors."""
    def run():
        path, _, _ = SolveBVP.execute(sd["model"], keyframes, 4, False, "equal", **FAST_BVP)
        DecodePath.execute(sd["model"], path, 1, 4)

    run()
    baseline = _live_tensors()
    for _ in range(2):
        run()
    assert _live_tensors() <= baseline
