"""In-process tests of the node pack on a real ComfyUI 0.3.75 (CPU) with the generated SD1.5-layout checkpoint.

The model bridge is checked against direct model calls, LoRA patches against the base model, and every
node's promised behaviour (exact frame counts, loops, extrapolation, readout, decode, errors, cancel)
by calling the nodes' `execute` as ComfyUI does. Images are 64x64 px (8x8 latents) and step counts tiny
to keep CPU time low; the weights are random, so only structure and exact identities are checked,
never image quality.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import inspect
import itertools
import re
import warnings

import pytest
import torch

from devtools import comfy_harness as harness

harness.import_comfy()  # before anything from ComfyUI: puts it on sys.path and forces CPU
pack = harness.import_pack()
import comfy.cli_args  # noqa: E402
import comfy.conds  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.model_sampling  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
import latent_preview  # noqa: E402
import server  # noqa: E402
from comfy_execution.utils import CurrentNodeContext  # noqa: E402
from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete, ModelSamplingSD3  # noqa: E402
from density_geodesics.geodesic_core import (  # noqa: E402
    DenoiserField,
    GeodesicInputError,
    geodesic_efficiency,
    read_path,
)
from density_geodesics.nodes import (  # noqa: E402
    NODES,
    DecodePath,
    DensityReadout,
    EncodeKeyframes,
    JoinKeyframes,
    PathToLatent,
    PerceptualMetricsNode,
    RespacePath,
    SolveBVP,
    SolveIVP,
    comfy_internals,  # noqa: E402
)
from density_geodesics.nodes.bridge import run_with_denoiser  # noqa: E402
from density_geodesics.nodes.model_facts import model_key, noise_kind, sigma_at  # noqa: E402
from density_geodesics.nodes.path import ConditioningSchedule  # noqa: E402

from devtools.comfy_symbols import OBJECT_MEMBERS, pack_symbols  # noqa: E402

NOISE_LEVEL = 0.6
SIZE = 64
# Scores are (D - x) / sigma^2 of float32 model outputs; the bridge and the direct call run the same
# UNet forward on the same inputs, so they agree to float32 rounding of values of order 1 (1e-5 relative).
SCORE_RTOL = 1e-5
FAST_BVP = dict(alpha=0.002, method="default", tolerance=1e-3, max_evals=60, sphere=True, batch_size=4,
                guidance=0.0)


@pytest.fixture(scope="module", autouse=True)
def _inference_mode():
    # ComfyUI executes every node under inference mode; tests do the same.
    with torch.inference_mode():
        yield


@pytest.fixture(scope="module")
def sd():
    model, clip, vae = harness.load_tiny_checkpoint()
    return {"model": model, "clip": clip, "vae": vae,
            "cat": harness.encode_prompt(clip, "a photo of a cat"),
            # 120 words, more than one 77-token window: this conditioning has 154 tokens.
            "dog": harness.encode_prompt(clip, "a dog " * 60),
            "empty": harness.encode_prompt(clip, "")}


@pytest.fixture(scope="module")
def solved(sd, keyframes):
    """A 5-frame solve through the three keyframes, shared by the tests that only read it."""
    return SolveBVP.execute(sd["model"], keyframes, 5, False, "equal", **FAST_BVP)[0]


def _images(n: int, seed: int, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed))


def _encode(sd, images, positive, model=None, noise_level=NOISE_LEVEL):
    return EncodeKeyframes.execute(model or sd["model"], positive, noise_level, 2, 4, image=images,
                                   vae=sd["vae"])[0]


@pytest.fixture(scope="module")
def keyframes(sd):
    """Three keyframes: two with the cat prompt, one with the (154-token) dog prompt."""
    cats = _encode(sd, _images(2, 0), sd["cat"])
    dog = _encode(sd, _images(1, 1), sd["dog"])
    return JoinKeyframes.execute(cats, dog)[0]


def _bridge_scores(model, schedule, x, t, sigma):
    def field_scores(denoise, device):
        return DenoiserField(denoise, sigma, noise_kind(model)).score(x.to(device), t).cpu()

    return run_with_denoiser(model, schedule, field_scores, stage="test", latent_shape=tuple(x.shape[1:]), batch_size=4,
                             largest_batch=len(x), total_evals=len(x), sigma=sigma)


def _direct_denoised(model, x, sigma, cross_attn):
    comfy.model_management.load_models_gpu([model])
    sigmas = torch.full((len(x),), sigma)
    return model.model.apply_model(x, sigmas, c_crossattn=cross_attn.expand(len(x), -1, -1)).float()


def _noisy(seed: int, n: int = 3) -> torch.Tensor:
    return 2.0 * torch.randn(n, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(seed))


def test_bridge_score_equals_tweedie_from_direct_model_call(sd):
    model, sigma = sd["model"], sigma_at(sd["model"], NOISE_LEVEL)
    x = _noisy(0)
    schedule = ConditioningSchedule((0.0,), (sd["cat"],))
    score = _bridge_scores(model, schedule, x, None, sigma)
    expected = (_direct_denoised(model, x, sigma, sd["cat"][0][0]) - x) / sigma**2
    torch.testing.assert_close(score, expected, rtol=SCORE_RTOL, atol=SCORE_RTOL * expected.abs().max().item())


def test_bridge_blends_conditioning_along_t_for_prompts_of_different_length(sd):
    """t=0 and t=1 give exactly each keyframe's prompt; t=0.5 the mean of the token-aligned embeddings."""
    model, sigma = sd["model"], sigma_at(sd["model"], NOISE_LEVEL)
    cat, dog = sd["cat"][0][0], sd["dog"][0][0]
    assert (cat.shape[1], dog.shape[1]) == (77, 154)
    x = _noisy(1)
    schedule = ConditioningSchedule((0.0, 1.0), (sd["cat"], sd["dog"]))
    score = _bridge_scores(model, schedule, x, torch.tensor([0.0, 0.5, 1.0]), sigma)
    midway = 0.5 * (cat.repeat(1, 2, 1) + dog)
    for i, cross_attn in enumerate((cat, midway, dog)):
        expected = (_direct_denoised(model, x[i:i + 1], sigma, cross_attn) - x[i:i + 1]) / sigma**2
        torch.testing.assert_close(score[i:i + 1], expected, rtol=SCORE_RTOL,
                                   atol=SCORE_RTOL * expected.abs().max().item())


def _tiny_lora(model) -> dict:
    """A rank-2 LoRA on one linear layer (the UNet's first time-embedding layer), in kohya key format."""
    weight = model.model.diffusion_model.time_embed[0].weight
    g = torch.Generator().manual_seed(3)
    return {"lora_unet_time_embed_0.lora_up.weight": torch.randn(weight.shape[0], 2, generator=g),
            "lora_unet_time_embed_0.lora_down.weight": torch.randn(2, weight.shape[1], generator=g),
            "lora_unet_time_embed_0.alpha": torch.tensor(2.0)}


def test_lora_patched_clone_changes_the_score_and_leaves_the_base_unchanged(sd):
    base, sigma = sd["model"], sigma_at(sd["model"], NOISE_LEVEL)
    lora_model, _ = comfy.sd.load_lora_for_models(base, None, _tiny_lora(base), 1.0, 0.0)
    x = _noisy(2)
    schedule = ConditioningSchedule((0.0,), (sd["cat"],))
    before = _bridge_scores(base, schedule, x, None, sigma)
    patched = _bridge_scores(lora_model, schedule, x, None, sigma)
    after = _bridge_scores(base, schedule, x, None, sigma)
    # The LoRA adds a random rank-2 term of the layer's own scale: far above float noise.
    assert (patched - before).abs().max() > 1e-3 * before.abs().max()
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_solve_bvp_exact_frames_through_every_keyframe(sd, keyframes):
    for frames in (5, 8):
        path, report = SolveBVP.execute(sd["model"], keyframes, frames, False, "by distance",
                                        **{**FAST_BVP, "sphere": False})
        assert len(path) == frames
        assert report.count("segment") == 2
        # Without the sphere constraint keyframes are kept bit-exact; each appears exactly once.
        hits = [[i for i in range(frames) if torch.equal(path.points[i], k)] for k in keyframes.points]
        assert hits[0] == [0] and len(hits[1]) == 1 and hits[2] == [frames - 1]
        assert torch.isfinite(path.points).all() and path.log_density.shape == (frames,)
        assert torch.all(path.t[1:] > path.t[:-1])
    # With the sphere constraint every frame, keyframes included, lies on one sphere (no jump at keyframes).
    path, _ = SolveBVP.execute(sd["model"], keyframes, 6, False, "by distance", **FAST_BVP)
    norms = path.points.reshape(len(path), -1).norm(dim=-1)
    torch.testing.assert_close(norms, norms.mean().expand(len(path)), rtol=1e-5, atol=0)  # float32 rescale


@pytest.mark.parametrize("sphere", [False, True], ids=["free", "sphere"])
@pytest.mark.parametrize("method", ["default", "paper"])
def test_solve_makes_the_evaluations_it_reports_within_max_evals_counted_at_the_unet(sd, keyframes, method, sphere):
    # Counted where the work is done (every latent through the UNet, by a model wrapper), not parsed from
    # the solver's own count alone: a solve that evaluated more than it reports fails here.
    # 40 (20 per segment): less than the second segment would spend unbounded in every variant.
    wrapped, batches = _batch_recording(sd["model"])
    max_evals = 40
    path, report = SolveBVP.execute(wrapped, keyframes, 5, False, "equal",
                                    **{**FAST_BVP, "method": method, "sphere": sphere, "max_evals": max_evals})
    assert len(path) == 5 and torch.isfinite(path.points).all()
    reported = [int(line.split(", ")[-1].split()[0]) for line in report.splitlines()]
    assert len(reported) == 2  # two segments, each with a frame between its keyframes
    assert sum(batches) == sum(reported), f"the UNet evaluated {sum(batches)} latents, the report says {reported}"
    assert sum(batches) <= max_evals  # max_evals bounds the whole solve, every segment's readout included


def test_a_keyframes_only_segment_is_read_out_within_max_evals_counted_at_the_unet(sd, keyframes):
    # 3 keyframes and 4 frames: one segment gets a frame, the other only its two keyframes (read out, not
    # solved); that readout comes out of the same budget (it used to spend up to 64 more: 33 of 20 here).
    wrapped, batches = _batch_recording(sd["model"])
    _, report = SolveBVP.execute(wrapped, keyframes, 4, False, "equal", **{**FAST_BVP, "max_evals": 20})
    assert "keyframes only" in report
    assert sum(batches) <= 20, (sum(batches), report)


def test_global_search_keeps_the_budget_counted_at_the_unet_and_needs_the_default_method(sd, keyframes):
    wrapped, batches = _batch_recording(sd["model"])
    path, report = SolveBVP.execute(wrapped, keyframes, 5, False, "equal",
                                    **{**FAST_BVP, "max_evals": 120}, search="global")
    assert len(path) == 5 and torch.isfinite(path.points).all()
    reported = [int(line.split(", ")[-1].split()[0]) for line in report.splitlines()]
    assert sum(batches) == sum(reported) <= 120, (batches, report)
    refusal = SolveBVP.validate_inputs(frames=5, max_evals=120, method="paper", search="global")
    assert re.match(r"search: .*method 'default'", refusal), refusal


def _batch_recording(model):
    """A clone of ``model`` whose UNet wrapper (a model-option wrapper, as custom nodes install them) records
    the batch size of every call."""
    batches = []

    def record_batch(apply_model, args):
        batches.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])

    wrapped = model.clone()
    wrapped.set_model_unet_function_wrapper(record_batch)
    return wrapped, batches


def test_batch_size_bounds_every_model_call_and_model_wrappers_apply(sd, keyframes):
    wrapped, batches = _batch_recording(sd["model"])
    SolveBVP.execute(wrapped, keyframes, 7, False, "equal", **{**FAST_BVP, "batch_size": 2})
    assert batches and max(batches) == 2


def test_automatic_batch_takes_all_points_that_fit_in_free_memory(sd, keyframes, monkeypatch):
    wrapped, batches = _batch_recording(sd["model"])
    path, _ = SolveBVP.execute(sd["model"], keyframes, 7, False, "equal", **FAST_BVP)
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
    path, _ = SolveBVP.execute(sd["model"], keyframes, 7, False, "equal", **FAST_BVP)
    latent_shape = list(path.points.shape[1:])
    module_room = _room_for(sd["model"], 3, latent_shape)
    monkeypatch.setattr(comfy.model_management, "get_free_memory",
                        lambda dev=None, torch_free_too=False: (module_room,) * 2 if torch_free_too else module_room)
    wrapped, batches = _batch_recording(sd["model"])
    asked = []

    def patcher_free_memory(device):
        asked.append(device)
        return _room_for(sd["model"], 2, latent_shape)

    wrapped.get_free_memory = patcher_free_memory
    DecodePath.execute(wrapped, path, 2, 0)
    assert asked and batches == [2, 2, 2, 1] * 2


def test_comfy_internals_keep_their_shape(sd):
    """The private ComfyUI internals of nodes/comfy_internals.py: fails naming the one that changed."""
    tokens, other = torch.ones(1, 77, 8), torch.zeros(1, 77, 8)
    for cond_type, value, new in ((comfy.conds.CONDRegular, tokens, other),
                                  (comfy_internals.CROSS_ATTN_COND, tokens, other),
                                  (comfy.conds.CONDConstant, 3, 4), (comfy.conds.CONDList, [tokens], [other])):
        copy = comfy_internals.cond_with(cond_type(value), new)
        assert type(copy) is cond_type and copy.cond is new, f"comfy.conds.{cond_type.__name__}._copy_with changed"
    seen = {}

    class InspectingSampler(comfy.samplers.Sampler):
        def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                   disable_pbar=False):
            conds = comfy_internals.sampling_conds(model_wrap)
            seen["names"] = set(conds)
            seen["model_conds"] = conds["positive"][0]["model_conds"]
            x, sigma = torch.randn_like(noise), torch.full((noise.shape[0],), float(sigmas[0]))
            as_given = model_wrap(x, sigma, **extra_args)
            comfy_internals.set_sampling_conds(model_wrap, {"positive": conds["negative"],
                                                            "negative": conds["negative"]})
            swapped = model_wrap(x, sigma, **extra_args)
            comfy_internals.set_sampling_conds(model_wrap, conds)
            seen["swap_changes_the_call"] = not torch.equal(as_given, swapped)
            return torch.zeros_like(noise)

    guider = comfy.samplers.CFGGuider(sd["model"])
    guider.set_conds(sd["cat"], sd["dog"])
    guider.set_cfg(1.0)
    latent = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    guider.sample(latent, latent, InspectingSampler(), torch.tensor([2.0, 0.0]), disable_pbar=True, seed=0)
    assert seen["names"] == {"positive", "negative"}, "CFGGuider.conds: no longer the processed conds by name"
    assert isinstance(seen["model_conds"]["c_crossattn"], comfy_internals.CROSS_ATTN_COND), \
        "CFGGuider.conds entries: 'model_conds' no longer holds comfy.conds objects"
    assert seen["swap_changes_the_call"], "CFGGuider no longer reads .conds at each model call"


def test_solve_bvp_loop_closes_back_to_the_first_keyframe(sd, keyframes):
    path, _ = SolveBVP.execute(sd["model"], keyframes, 7, True, "equal", **{**FAST_BVP, "sphere": False})
    assert len(path) == 7
    assert torch.equal(path.points[0], keyframes.points[0])
    assert not torch.equal(path.points[-1], keyframes.points[0])  # the closing copy is left out
    for k in keyframes.points[1:]:
        assert sum(torch.equal(p, k) for p in path.points) == 1
    # The closing segment blends back to the first keyframe's (cat) conditioning.
    assert path.schedule.conditionings[-1] is sd["cat"]


def test_ivp_readout_decode_on_a_solved_path(sd, solved):
    model = sd["model"]
    path = solved
    assert path.end_tangent is not None
    onward = SolveIVP.execute(model, path, 2, "end tangent", "forward", 0.002, True, 4, 0.0)[0]
    backward = SolveIVP.execute(model, path, 1, "last two frames", "backward", 0.002, True, 4, 0.0)[0]
    assert len(onward) == 2 and len(backward) == 1
    assert torch.isfinite(onward.points).all() and torch.isfinite(backward.points).all()
    # The first extrapolated frame is about one frame step beyond the last frame.
    step = (path.points[-1] - path.points[-2]).norm()
    assert 0.5 * step < (onward.points[0] - path.points[-1]).norm() < 2.0 * step

    plot, table = DensityReadout.execute(model, path, True, 0.002, True, "default", 1e-3, 24, 4, 0.0).args[:2]
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.min() >= 0.0 and plot.max() <= 1.0
    assert len([row for row in table.splitlines() if row[:1].isdigit()]) == len(path)

    latent, images, report = DecodePath.execute(model, path, 2, 4, vae=sd["vae"]).args
    assert latent["samples"].shape == (5, 4, SIZE // 8, SIZE // 8)
    assert images.shape == (5, SIZE, SIZE, 3)
    _, preview, _ = DecodePath.execute(model, path, 2, 4).args
    assert preview.shape == (5, SIZE, SIZE, 3)
    noisy, level = PathToLatent.execute(model, path).args
    assert level == NOISE_LEVEL and noisy["samples"].shape == (5, 4, SIZE // 8, SIZE // 8)


def _table_numbers(table: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Density Readout's table: its per-frame columns by name, and its summary rows."""
    rows = [row.split("\t") for row in table.splitlines()]
    header, frames = rows[0], [row for row in rows[1:] if row[0].isdigit()]
    columns = {name: [float(row[i]) for row in frames] for i, name in enumerate(header)}
    summary = {row[0]: float(row[1]) for row in rows[1:] if not row[0].isdigit() and len(row) == 2}
    return columns, summary


@pytest.mark.parametrize("compare_geodesic", [False, True], ids=["path only", "with geodesic"])
def test_density_readout_reports_the_cores_numbers_on_the_same_field_within_its_budget(sd, solved,
                                                                                       compare_geodesic):
    """The node's outputs and table against geodesic_core run on the same model through the same bridge,
    and its evaluations counted at the UNet."""
    model, max_evals = sd["model"], 24
    path = solved
    wrapped, batches = _batch_recording(model)
    _, table, length, efficiency, min_log_density = DensityReadout.execute(
        wrapped, path, compare_geodesic, 0.002, True, "default", 1e-3, max_evals, 4, 0.0).args
    node_evals = sum(batches)
    batches.clear()

    def core(denoise, device):
        # "equal" spacing through evenly spaced keyframes: the path's positions are the readout's own.
        assert torch.allclose(path.t, torch.linspace(0, 1, len(path)))
        field = DenoiserField(denoise, path.sigma, noise_kind(model))
        if compare_geodesic:
            result = geodesic_efficiency(field, path.points.to(device), 0.002, sphere=True, method="default",
                                         tol=1e-3, quadrature_tol=1e-3, max_evals=max_evals,
                                         readout_max_evals=max_evals)
            return result.path, result
        return read_path(field, path.points.to(device), 0.002, sphere=True, tol=1e-3, max_evals=max_evals), None

    readout, compared = run_with_denoiser(wrapped, path.schedule, core, stage="test",
                                          latent_shape=tuple(path.points.shape[1:]), batch_size=4,
                                          largest_batch=len(path), total_evals=2 * max_evals, sigma=path.sigma)
    columns, summary = _table_numbers(table)
    # Same model calls on the same latents: equal to float32 rounding, and the table to its printed digits.
    assert length == pytest.approx(readout.length, rel=1e-5)
    assert min_log_density == pytest.approx(float(readout.log_density.min()), rel=1e-5, abs=1e-6)
    assert columns["relative_log_density"] == pytest.approx(readout.log_density.tolist(), rel=1e-5, abs=1e-6)
    assert columns["geodesic_distance"] == pytest.approx(readout.cumulative_length.tolist(), rel=1e-5, abs=1e-6)
    # error_bound is printed to 2 significant digits
    assert columns["error_bound"] == pytest.approx(readout.log_density_error.tolist(), rel=0.05, abs=1e-12)
    assert summary["geodesic_length_error_bound"] == pytest.approx(readout.length_error, rel=0.05)
    assert summary["readout_score_evaluations"] == readout.score_evals <= max_evals
    if compare_geodesic:
        assert efficiency == pytest.approx(compared.efficiency, rel=1e-5)
        assert summary["geodesic_between_ends_length"] == pytest.approx(compared.geodesic.length, rel=1e-5)
        assert summary["closure_gap_at_end_vs_geodesic"] == pytest.approx(compared.closure.gap, rel=1e-3, abs=1e-4)
        assert compared.geodesic.score_evals <= max_evals
        expected_evals = readout.score_evals + compared.geodesic.score_evals
    else:
        assert efficiency == -1.0
        expected_evals = readout.score_evals
    # Counted at the UNet: the node made exactly the evaluations the core reports for the same work.
    assert node_evals == sum(batches) == expected_evals, (node_evals, sum(batches), expected_evals)


def test_perceptual_metrics_and_even_lpips_decode(sd, solved):
    model, vae = sd["model"], sd["vae"]
    path = solved
    plain = DecodePath.execute(model, path, 2, 4, vae=vae).args[1]
    plot, table, ppl, pdv = PerceptualMetricsNode.execute(plain, "alex").args
    assert plot.shape[0] == 1 and plot.shape[-1] == 3
    assert len([row for row in table.splitlines() if row[:1].isdigit()]) == 4 and ppl > 0 and pdv >= 0
    assert PerceptualMetricsNode.execute(plain[:1].expand(3, -1, -1, -1), "vgg").args[2] == 0.0
    with pytest.raises(GeodesicInputError, match="images: perceptual metrics need at least 2 frames"):
        PerceptualMetricsNode.execute(plain[:1], "alex")

    latent, images, report = DecodePath.execute(model, path, 2, 4, vae=vae, spacing="even LPIPS", frames=6).args
    assert latent["samples"].shape[0] == 6 and images.shape == (6, SIZE, SIZE, 3)
    numbers = dict(row.split("\t", 1) for row in report.splitlines())
    assert float(numbers["pdv_after"]) < float(numbers["pdv_before"])
    # the returned frames are the ones measured: their PDV is the node's own metric of them
    assert abs(PerceptualMetricsNode.execute(images, "alex").args[3] - float(numbers["pdv_after"])) < 1e-5
    with pytest.raises(GeodesicInputError, match="vae: even LPIPS spacing"):
        DecodePath.execute(model, path, 2, 4, spacing="even LPIPS")

    table = DensityReadout.execute(model, path, False, 0.002, True, "default", 1e-3, 24, 4, 0.0,
                                   images=plain).args[1]
    assert "lpips_to_next" in table.splitlines()[0] and f"ppl\t{ppl:.6g}" in table


def test_respace_path_evenly_in_geodesic_distance(sd, solved):
    model = sd["model"]
    path = solved
    uneven = dataclasses.replace(path, points=path.points[[0, 1, 4]], t=path.t[[0, 1, 4]])
    (respaced,) = RespacePath.execute(model, uneven, 7, 0.002, True, 4, 0.0).args
    assert len(respaced) == 7 and respaced.t[0] == 0 and respaced.t[-1] == 1
    assert torch.equal(respaced.points[[0, -1]], uneven.points[[0, -1]])
    def step_ratio(some_path):
        table = DensityReadout.execute(model, some_path, False, 0.002, True, "default", 1e-3, 24, 4, 0.0).args[1]
        column = table.splitlines()[0].split("\t").index("geodesic_distance")
        distances = torch.tensor([float(row.split("\t")[column]) for row in table.splitlines() if row[:1].isdigit()])
        return float(distances.diff().max() / distances.diff().min())

    # Re-read on the new polyline (which cuts the uneven path's corner) the steps are not exactly equal,
    # but far more even than the 3:1 steps of the uneven path.
    assert step_ratio(uneven) > 2.5 and step_ratio(respaced) < 1.5


def test_v_prediction_patched_model_runs_end_to_end(sd):
    (v_model,) = ModelSamplingDiscrete().patch(sd["model"], "v_prediction", False)
    assert model_key(v_model).prediction == "V_PREDICTION" and noise_kind(v_model) == "ve"
    keys = JoinKeyframes.execute(_encode(sd, _images(1, 4), sd["cat"], v_model),
                                 _encode(sd, _images(1, 5), sd["cat"], v_model))[0]
    path, _ = SolveBVP.execute(v_model, keys, 4, False, "equal", **FAST_BVP)
    latent, _, _ = DecodePath.execute(v_model, path, 2, 4).args
    assert torch.isfinite(latent["samples"]).all() and len(path) == 4


def test_flow_patched_model_uses_the_flow_score(sd):
    (flow_model,) = ModelSamplingSD3().patch(sd["model"], 3.0)
    assert noise_kind(flow_model) == "flow"
    sigma = sigma_at(flow_model, NOISE_LEVEL)
    assert 0 < sigma < 1
    x = _noisy(6).mul(0.5)
    score = _bridge_scores(flow_model, ConditioningSchedule((0.0,), (sd["cat"],)), x, None, sigma)
    expected = ((1 - sigma) * _direct_denoised(flow_model, x, sigma, sd["cat"][0][0]) - x) / sigma**2
    torch.testing.assert_close(score, expected, rtol=SCORE_RTOL, atol=SCORE_RTOL * expected.abs().max().item())
    keys = JoinKeyframes.execute(_encode(sd, _images(1, 7), sd["cat"], flow_model),
                                 _encode(sd, _images(1, 8), sd["cat"], flow_model))[0]
    path, _ = SolveBVP.execute(flow_model, keys, 4, False, "equal", **FAST_BVP)
    assert torch.isfinite(path.points).all() and len(path) == 4


class _OtherPackageSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
    """A flow-like sampling class defined outside comfy.model_sampling, with a noise convention of its own."""

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return latent_image + sigma * noise


def test_sampling_the_density_formulas_do_not_cover_is_refused_naming_its_class(sd, keyframes):
    images = _images(1, 3)
    other = sd["model"].clone()
    other.add_object_patch("model_sampling", _OtherPackageSampling())
    with pytest.raises(GeodesicInputError, match=r"model: its sampling class .*_OtherPackageSampling \(noise_scaling "
                                                 r"of _OtherPackageSampling\) adds noise in a way"):
        _encode(sd, images, sd["cat"], other)
    (flow_model,) = ModelSamplingSD3().patch(sd["model"], 3.0)
    flow_model.get_model_object("model_sampling").noise_scale = 1.0  # what current ComfyUI sets by default
    assert noise_kind(flow_model) == "flow"
    flow_model.get_model_object("model_sampling").noise_scale = 0.5
    with pytest.raises(GeodesicInputError, match=r"model: its sampling class .*ModelSamplingAdvanced is a flow model "
                                                 r"with noise_scale 0.5"):
        _encode(sd, images, sd["cat"], flow_model)
    with pytest.raises(GeodesicInputError, match="noise_scale 0.5"):
        noise_kind(flow_model)


def test_every_comfy_name_the_pack_uses_exists_in_this_comfyui(sd):
    """devtools/comfy_symbols.py's list, checked against the installed ComfyUI (0.3.75 in CI)."""
    missing = [name for name in pack_symbols() if not _resolves(name)]
    assert not missing, f"names the pack uses but this ComfyUI lacks: {missing}"
    model = sd["model"]
    objects = {"ModelPatcher": model, "BaseModel": model.model,
               "model_sampling": model.get_model_object("model_sampling"),
               "LatentFormat": model.get_model_object("latent_format"), "VAE": sd["vae"],
               "CFGGuider": comfy.samplers.CFGGuider(model), "Sampler": comfy.samplers.Sampler,
               "CONDRegular": comfy.conds.CONDRegular(torch.zeros(1)),
               "Latent2RGBPreviewer": latent_preview.Latent2RGBPreviewer, "PromptServer": server.PromptServer}
    # Attributes a running server sets on itself exist only on an instance: read them from __init__'s source.
    init_source = inspect.getsource(server.PromptServer.__init__)

    def has(owner: str, member: str) -> bool:
        name = member.split()[0]
        return f".{name} = " in init_source if "set in __init__" in member else hasattr(objects[owner], name)

    absent = [f"{owner}.{member}" for owner, member, _ in OBJECT_MEMBERS
              if not has(owner, member) and "while sampling" not in member]
    assert not absent, f"members the pack uses but this ComfyUI's objects lack: {absent}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                value = getattr(value, attr)
        except AttributeError:
            return False
        return True
    return False


def test_clear_errors_for_bad_inputs(sd, keyframes):
    model = sd["model"]
    with pytest.raises(GeodesicInputError, match="positive: the conditioning is empty"):
        EncodeKeyframes.execute(model, [], NOISE_LEVEL, 2, 4, image=_images(1, 0), vae=sd["vae"])
    one = _encode(sd, _images(1, 9), sd["cat"])
    with pytest.raises(GeodesicInputError, match="keyframes: a geodesic between keyframes needs at least 2"):
        SolveBVP.execute(model, one, 5, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match="frames: expected a number from 3 to 4096, got 2"):
        SolveBVP.execute(model, keyframes, 2, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match="batch_size: expected a number from 0 to 256, got -1"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "batch_size": -1})
    four = JoinKeyframes.execute(keyframes, one)[0]
    with pytest.raises(GeodesicInputError, match="frames: 4 keyframes need at least 4 frames, got 3"):
        SolveBVP.execute(model, four, 3, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match=r"latent: expected \[batch, 4, height, width\]"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent={"samples": torch.zeros(1, 16, 8, 8)})
    with pytest.raises(GeodesicInputError, match="image: connect an image .* or a latent"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4)
    with pytest.raises(GeodesicInputError, match="steps: the inversion needs at least 2 steps"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 1, 4, image=_images(1, 0), vae=sd["vae"])
    wide = EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4,
                                   latent={"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 4)})[0]
    with pytest.raises(GeodesicInputError, match="second: latent size"):
        JoinKeyframes.execute(one, wide)
    other_level = _encode(sd, _images(1, 9), sd["cat"], noise_level=0.5)
    with pytest.raises(GeodesicInputError, match="second: lies at noise level 0.5"):
        JoinKeyframes.execute(one, other_level)
    (v_model,) = ModelSamplingDiscrete().patch(model, "v_prediction", False)
    with pytest.raises(GeodesicInputError, match="keyframes: this path was made with .*EPS prediction"):
        SolveBVP.execute(v_model, keyframes, 5, False, "equal", **FAST_BVP)
    (zsnr_model,) = ModelSamplingDiscrete().patch(model, "eps", True)  # same family, other noise schedule
    with pytest.raises(GeodesicInputError, match="path: this path lies at noise level 0.6"):
        DecodePath.execute(zsnr_model, keyframes, 2, 4)
    with pytest.raises(GeodesicInputError, match="negative: guidance > 0 needs a negative conditioning"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "guidance": 2.0})
    with pytest.raises(GeodesicInputError, match="negative: the conditioning is empty"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "guidance": 2.0}, negative=[])


BVP_WIDGETS = dict(frames=17, spacing="by distance", alpha=0.002, method="default", tolerance=1e-3, max_evals=2000,
                   guidance=0.0)
NEGATIVE_CONNECTED = {"negative": None}  # how ComfyUI passes a connected input at queue time (unconnected: absent)
# (node, changed widgets, other inputs, start of the message ComfyUI shows when the prompt is queued)
QUEUE_TIME_ERRORS = [
    (SolveBVP, {"guidance": 2.0}, {}, "negative: guidance > 0 needs a negative conditioning"),
    (SolveBVP, {"guidance": float("nan")}, NEGATIVE_CONNECTED, "guidance: expected a number from 0 to 30, got nan"),
    (SolveBVP, {"tolerance": float("nan")}, {}, "tolerance: expected a number from 1e-06 to 1, got nan"),
    (SolveBVP, {"alpha": float("inf")}, {}, "alpha: expected a number from 1e-06 to 10, got inf"),
    (SolveBVP, {"alpha": "abc"}, {}, "alpha: expected a number from 1e-06 to 10, got 'abc'"),
    (SolveBVP, {"spacing": "evenly"}, {}, "spacing: expected one of 'by distance', 'equal', got 'evenly'"),
    (SolveBVP, {"method": "adam"}, {}, "method: expected one of 'default', 'paper', got 'adam'"),
    (SolveBVP, {"frames": 2}, {}, "frames: expected a number from 3 to 4096, got 2"),
    (SolveBVP, {"max_evals": 16}, {},
     "max_evals: a budget of 16 score evaluations cannot read out the 17 frames even once (65"),
    (SolveBVP, {"accuracy": float("nan")}, {}, "accuracy: expected a number from 1e-05 to 0.5, got nan"),
]


@pytest.mark.parametrize("node, changes, others, message", QUEUE_TIME_ERRORS,
                         ids=[f"{next(iter(c))}={next(iter(c.values()))}" for _, c, _, _ in QUEUE_TIME_ERRORS])
def test_validate_inputs_names_the_widget(node, changes, others, message):
    refusal = node.validate_inputs(**{**BVP_WIDGETS, **changes}, **others)
    assert isinstance(refusal, str) and refusal.startswith(message), refusal


def test_validate_inputs_accepts_defaults_connected_negatives_and_links():
    assert SolveBVP.validate_inputs(**BVP_WIDGETS) is True
    assert SolveBVP.validate_inputs(**{**BVP_WIDGETS, "guidance": 2.0}, **NEGATIVE_CONNECTED) is True
    # Connected widgets arrive as None at queue time: they are checked when the node runs.
    assert SolveBVP.validate_inputs(**{**BVP_WIDGETS, "guidance": None, "frames": None}) is True
    ivp = dict(velocity_from="end tangent", direction="forward", alpha=0.002, guidance=0.0)
    assert SolveIVP.validate_inputs(**ivp) is True
    for changes, message in [({"direction": "sideways"}, "direction: expected one of 'forward', 'backward', got"),
                             ({"velocity_from": "velocity"}, "velocity_from: expected one of")]:
        assert SolveIVP.validate_inputs(**{**ivp, **changes}).startswith(message)
    readout = dict(alpha=0.002, method="default", tolerance=1e-3, guidance=0.0)
    for changes, message in [({"tolerance": float("nan")}, "tolerance:"), ({"accuracy": 0.9}, "accuracy:"),
                             ({"guidance": 1.0}, "negative: guidance > 0"), ({"method": "x"}, "method:")]:
        assert DensityReadout.validate_inputs(**{**readout, **changes}).startswith(message)
    assert EncodeKeyframes.validate_inputs(noise_level=float("nan"), steps=2, image=None, vae=None).startswith(
        "noise_level: expected a number from 0.05")


def test_noisy_latent_fed_back_into_encode_is_refused(sd, keyframes):
    model = sd["model"]
    noisy = EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, image=_images(1, 7), vae=sd["vae"]).args[1]
    with pytest.raises(GeodesicInputError, match="latent: these latents are already noisy .* noise level 0.6"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=noisy)
    path_latent = PathToLatent.execute(model, keyframes).args[0]
    with pytest.raises(GeodesicInputError, match="latent: these latents are already noisy"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=path_latent)
    # A KSampler copies the LATENT dict and puts its new (clean) samples in: those encode normally.
    sampled = {**noisy, "samples": noisy["samples"] * 0.5}
    assert len(EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=sampled)[0]) == 1


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
    EncodeKeyframes.execute(sd["model"], sd["cat"], NOISE_LEVEL, steps, 1, image=_images(2, 11), vae=sd["vae"])
    # Inversion: (steps - 1) model calls per image (the first step starts from the clean latent), exactly. Newer
    # ComfyUI throttles the updates between the first and the last: the bar shows some of the calls, in order.
    calls = (steps - 1) * 2
    assert updates[-1] == (calls, calls) and set(updates) <= {(k, calls) for k in range(1, calls + 1)}
    assert [value for value, _ in updates] == sorted({value for value, _ in updates})
    wrapped, batches = _batch_recording(sd["model"])
    for max_evals in (60, 2000):  # a budget the solve spends, and one it does not
        updates.clear()
        batches.clear()
        with CurrentNodeContext("prompt", "solve-node"):
            SolveBVP.execute(wrapped, keyframes, 9, False, "equal", **{**FAST_BVP, "max_evals": max_evals})
        totals = {total for _, total in updates}
        assert len(totals) == 1, totals  # one total from the start
        (total,) = totals
        # The bar clamps at its total, so its values alone cannot show an overrun: count the latents at the
        # UNet. The bar advances by every model call's latents, never past the total, and fills when done.
        done = list(itertools.accumulate(batches))
        assert done[-1] <= total, (done[-1], total)
        values = [value for value, _ in updates]  # every call's on 0.3.75; a throttled few, in order, on newer
        assert values[-1] == total and values == sorted(set(values)) and set(values) <= {*done, total}, values
    assert recorder.texts and all(node == "solve-node" for node, _ in recorder.texts)
    assert all(re.match(r"segment \d/2, iteration \d+: length [\d.e+-]+, residual [\d.e+-]+ \(stops below 0.001\), "
                        r"\d+ of \d+ evaluations", text) for _, text in recorder.texts), recorder.texts


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
    path, _ = SolveBVP.execute(sd["model"], keyframes, 5, False, "equal", **FAST_BVP)
    assert len(path) == 5


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # inspecting torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for obj in gc.get_objects() if torch.is_tensor(obj))


def test_repeated_runs_keep_no_tensors_alive(sd, keyframes):
    """No memory growth over repeated runs: after a warm-up run, further runs leave no extra live tensors."""
    def run():
        path, _ = SolveBVP.execute(sd["model"], keyframes, 4, False, "equal", **FAST_BVP)
        DecodePath.execute(sd["model"], path, 1, 4)

    run()
    baseline = _live_tensors()
    for _ in range(2):
        run()
    assert _live_tensors() <= baseline


def test_entrypoint_lists_prefixed_nodes_with_tooltips_everywhere():
    extension = asyncio.run(pack.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    assert nodes == NODES
    for node in nodes:
        schema = node.define_schema()
        schema.validate()
        assert schema.node_id.startswith("DensityGeodesics_") and schema.category == "density_geodesics"
        for item in [*schema.inputs, *schema.outputs]:
            assert item.tooltip, f"{schema.node_id}.{item.id} has no tooltip"
