"""The model bridge against direct model calls: the score is Tweedie's, conditionings blend along t,
LoRA clones leave the base alone, v-prediction and flow models work, other sampling classes are refused."""
from __future__ import annotations

import comfy.model_sampling
import comfy.sd
import pytest
import torch
from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete, ModelSamplingSD3
from density_geodesics.geodesic_core import GeodesicInputError
from density_geodesics.nodes import DecodePath, JoinKeyframes, SolveBVP
from density_geodesics.nodes.model_facts import model_key, noise_kind, sigma_at
from density_geodesics.nodes.path import ConditioningSchedule
from inprocess_support import (
    FAST_BVP,
    NOISE_LEVEL,
    SCORE_RTOL,
    bridge_scores,
    direct_denoised,
    encode_keyframes,
    noisy_latents,
    random_images,
)


def test_bridge_score_equals_tweedie_from_direct_model_call(sd):
    model, sigma = sd["model"], sigma_at(sd["model"], NOISE_LEVEL)
    x = noisy_latents(0)
    schedule = ConditioningSchedule((0.0,), (sd["cat"],))
    score = bridge_scores(model, schedule, x, None, sigma)
    expected = (direct_denoised(model, x, sigma, sd["cat"][0][0]) - x) / sigma**2
    torch.testing.assert_close(score, expected, rtol=SCORE_RTOL, atol=SCORE_RTOL * expected.abs().max().item())


def test_bridge_blends_conditioning_along_t_for_prompts_of_different_length(sd):
    """t=0 and t=1 give exactly each keyframe's prompt; t=0.5 the mean of the token-aligned embeddings."""
    model, sigma = sd["model"], sigma_at(sd["model"], NOISE_LEVEL)
    cat, dog = sd["cat"][0][0], sd["dog"][0][0]
    assert (cat.shape[1], dog.shape[1]) == (77, 154)
    x = noisy_latents(1)
    schedule = ConditioningSchedule((0.0, 1.0), (sd["cat"], sd["dog"]))
    score = bridge_scores(model, schedule, x, torch.tensor([0.0, 0.5, 1.0]), sigma)
    midway = 0.5 * (cat.repeat(1, 2, 1) + dog)
    for i, cross_attn in enumerate((cat, midway, dog)):
        expected = (direct_denoised(model, x[i:i + 1], sigma, cross_attn) - x[i:i + 1]) / sigma**2
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
    x = noisy_latents(2)
    schedule = ConditioningSchedule((0.0,), (sd["cat"],))
    before = bridge_scores(base, schedule, x, None, sigma)
    patched = bridge_scores(lora_model, schedule, x, None, sigma)
    after = bridge_scores(base, schedule, x, None, sigma)
    # The LoRA adds a random rank-2 term of the layer's own scale: far above float noise.
    assert (patched - before).abs().max() > 1e-3 * before.abs().max()
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_v_prediction_patched_model_runs_end_to_end(sd):
    (v_model,) = ModelSamplingDiscrete().patch(sd["model"], "v_prediction", False)
    assert model_key(v_model).prediction == "V_PREDICTION" and noise_kind(v_model) == "ve"
    keys = JoinKeyframes.execute(encode_keyframes(sd, random_images(1, 4), sd["cat"], v_model),
                                 encode_keyframes(sd, random_images(1, 5), sd["cat"], v_model))[0]
    path, _, _ = SolveBVP.execute(v_model, keys, 4, False, "equal", **FAST_BVP)
    latent = DecodePath.execute(v_model, path, 2, 4).args[0]
    assert torch.isfinite(latent["samples"]).all() and len(path) == 4


def test_flow_patched_model_uses_the_flow_score(sd):
    (flow_model,) = ModelSamplingSD3().patch(sd["model"], 3.0)
    assert noise_kind(flow_model) == "flow"
    sigma = sigma_at(flow_model, NOISE_LEVEL)
    assert 0 < sigma < 1
    x = noisy_latents(6).mul(0.5)
    score = bridge_scores(flow_model, ConditioningSchedule((0.0,), (sd["cat"],)), x, None, sigma)
    expected = ((1 - sigma) * direct_denoised(flow_model, x, sigma, sd["cat"][0][0]) - x) / sigma**2
    torch.testing.assert_close(score, expected, rtol=SCORE_RTOL, atol=SCORE_RTOL * expected.abs().max().item())
    keys = JoinKeyframes.execute(encode_keyframes(sd, random_images(1, 7), sd["cat"], flow_model),
                                 encode_keyframes(sd, random_images(1, 8), sd["cat"], flow_model))[0]
    path, _, _ = SolveBVP.execute(flow_model, keys, 4, False, "equal", **FAST_BVP)
    assert torch.isfinite(path.points).all() and len(path) == 4


class _OtherPackageSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
    """A flow-like sampling class defined outside comfy.model_sampling, with a noise convention of its own."""

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return latent_image + sigma * noise


def test_sampling_the_density_formulas_do_not_cover_is_refused_naming_its_class(sd, keyframes):
    images = random_images(1, 3)
    other = sd["model"].clone()
    other.add_object_patch("model_sampling", _OtherPackageSampling())
    with pytest.raises(GeodesicInputError, match=r"model: its sampling class .*_OtherPackageSampling \(noise_scaling "
                                                 r"of _OtherPackageSampling\) adds noise in a way"):
        encode_keyframes(sd, images, sd["cat"], other)
    (flow_model,) = ModelSamplingSD3().patch(sd["model"], 3.0)
    flow_model.get_model_object("model_sampling").noise_scale = 1.0  # what current ComfyUI sets by default
    assert noise_kind(flow_model) == "flow"
    flow_model.get_model_object("model_sampling").noise_scale = 0.5
    with pytest.raises(GeodesicInputError, match=r"model: its sampling class .*ModelSamplingAdvanced is a flow model "
                                                 r"with noise_scale 0.5"):
        encode_keyframes(sd, images, sd["cat"], flow_model)
    with pytest.raises(GeodesicInputError, match="noise_scale 0.5"):
        noise_kind(flow_model)
