"""max_evals and batch sizes, counted where the work is done: at the UNet."""
from __future__ import annotations

import re

import comfy.model_management
import pytest
import torch
from density_geodesics.nodes import DecodePath, SolveBVP
from inprocess_support import FAST_BVP, batch_recording


@pytest.mark.parametrize("sphere", [False, True], ids=["free", "sphere"])
@pytest.mark.parametrize("method", ["default", "paper"])
def test_solve_makes_the_evaluations_it_reports_within_max_evals_counted_at_the_unet(sd, keyframes, method, sphere):
    # Counted where the work is done (every latent through the UNet, by a model wrapper), not parsed from
    # the solver's own count alone: a solve that evaluated more than it reports fails here.
    # 40 (20 per segment): less than the second segment would spend unbounded in every variant.
    wrapped, batches = batch_recording(sd["model"])
    max_evals = 40
    path, report, _ = SolveBVP.execute(wrapped, keyframes, 5, False, "equal",
                                    **{**FAST_BVP, "method": method, "sphere": sphere, "max_evals": max_evals})
    assert len(path) == 5 and torch.isfinite(path.points).all()
    reported = [int(line.split(", ")[-1].split()[0]) for line in report.splitlines()]
    assert len(reported) == 2  # two segments, each with a frame between its keyframes
    assert sum(batches) == sum(reported), f"the UNet evaluated {sum(batches)} latents, the report says {reported}"
    assert sum(batches) <= max_evals  # max_evals bounds the whole solve, every segment's readout included


def test_a_keyframes_only_segment_is_read_out_within_max_evals_counted_at_the_unet(sd, keyframes):
    # 3 keyframes and 4 frames: one segment gets a frame, the other only its two keyframes (read out, not
    # solved); that readout comes out of the same budget, not on top of it.
    wrapped, batches = batch_recording(sd["model"])
    _, report, _ = SolveBVP.execute(wrapped, keyframes, 4, False, "equal", **{**FAST_BVP, "max_evals": 20})
    assert "keyframes only" in report
    assert sum(batches) <= 20, (sum(batches), report)


def test_global_search_keeps_the_budget_counted_at_the_unet_and_needs_the_default_method(sd, keyframes):
    wrapped, batches = batch_recording(sd["model"])
    path, report, _ = SolveBVP.execute(wrapped, keyframes, 5, False, "equal",
                                    **{**FAST_BVP, "max_evals": 120}, search="global")
    assert len(path) == 5 and torch.isfinite(path.points).all()
    reported = [int(line.split(", ")[-1].split()[0]) for line in report.splitlines()]
    assert sum(batches) == sum(reported) <= 120, (batches, report)
    refusal = SolveBVP.validate_inputs(frames=5, max_evals=120, method="paper", search="global")
    assert re.match(r"search: .*method 'default'", refusal), refusal


def test_batch_size_bounds_every_model_call_and_model_wrappers_apply(sd, keyframes):
    wrapped, batches = batch_recording(sd["model"])
    SolveBVP.execute(wrapped, keyframes, 7, False, "equal", **{**FAST_BVP, "batch_size": 2})
    assert batches and max(batches) == 2


def test_automatic_batch_takes_all_points_that_fit_in_free_memory(sd, keyframes, monkeypatch):
    wrapped, batches = batch_recording(sd["model"])
    path, _, _ = SolveBVP.execute(sd["model"], keyframes, 7, False, "equal", **FAST_BVP)
    all_at_once = DecodePath.execute(wrapped, path, 2, 0).args[0]["samples"]
    assert batches == [7, 7]  # plenty of memory: every frame of a step in one call

    # The only mock here: a device with room (by ComfyUI's own estimate, with its 1.5x margin) for 3 latents.
    latent_shape = list(path.points.shape[1:])
    room = 1.5 * sd["model"].memory_required([3, *latent_shape]) + 1
    monkeypatch.setattr(comfy.model_management, "get_free_memory",
                        lambda dev=None, torch_free_too=False: (room, room) if torch_free_too else room)
    batches.clear()
    chunked = DecodePath.execute(wrapped, path, 2, 0).args[0]["samples"]
    assert batches == [3, 3, 1] * 2
    # Other batch shapes change float32 summation order in the UNet's matmuls; the latents come out
    # scaled by 1/0.18215, so rounding differences reach ~2e-5 in absolute terms.
    torch.testing.assert_close(chunked, all_at_once, rtol=1e-4, atol=1e-4)
    batches.clear()
    DecodePath.execute(wrapped, path, 2, 2)  # an explicit cap below the estimate wins
    assert batches == [2, 2, 2, 1] * 2


def _room_for(model, latents: int, latent_shape: list[int]) -> float:
    """Free bytes that fit ``latents`` latents by ComfyUI's own estimate with its 1.5x margin, and no more."""
    return 1.5 * model.memory_required([latents, *latent_shape]) + 1


def test_automatic_batch_asks_the_model_patcher_for_free_memory_when_it_offers_it(sd, keyframes, monkeypatch):
    # Current ComfyUI asks the model patcher (it adds what dynamic VRAM can free); 0.3.75's patcher has no
    # get_free_memory, so one clone offers it here (on any version): room for 2 latents there, for 3 by the
    # module function.
    path, _, _ = SolveBVP.execute(sd["model"], keyframes, 7, False, "equal", **FAST_BVP)
    latent_shape = list(path.points.shape[1:])
    module_room = _room_for(sd["model"], 3, latent_shape)
    monkeypatch.setattr(comfy.model_management, "get_free_memory",
                        lambda dev=None, torch_free_too=False: (module_room,) * 2 if torch_free_too else module_room)
    wrapped, batches = batch_recording(sd["model"])
    asked = []

    def patcher_free_memory(device):
        asked.append(device)
        return _room_for(sd["model"], 2, latent_shape)

    wrapped.get_free_memory = patcher_free_memory
    DecodePath.execute(wrapped, path, 2, 0)
    assert asked and batches == [2, 2, 2, 1] * 2
