"""Facts about the MODEL a workflow loaded: its identity, noise convention, sigmas and latent space.

Most of the pack needs only these; running work inside ComfyUI's sampler is nodes/bridge.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import comfy.model_sampling
import torch
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError
from .path import GeodesicPath, ModelKey, check_path_matches

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher


def model_sampling(model: ModelPatcher) -> torch.nn.Module:
    """Sampling object with patches (ModelSamplingDiscrete / SD3 nodes) applied."""
    return model.get_model_object("model_sampling")


def prediction_type(model: ModelPatcher) -> str:
    """EPS, V_PREDICTION, CONST (flow), ...: the prediction class mixed into the sampling object."""
    for cls in type(model_sampling(model)).__mro__:
        if cls.__module__ == comfy.model_sampling.__name__ and cls.__name__.replace("_", "").isupper():
            return cls.__name__
    return type(model_sampling(model)).__name__


def model_key(model: ModelPatcher) -> ModelKey:
    return ModelKey(type(model.model).__name__, type(model.get_model_object("latent_format")).__name__,
                    prediction_type(model))


# geodesic_core's noise conventions, by the comfy.model_sampling class whose noise_scaling the model's
# sampling object uses: "ve" x = x0 + sigma n (EPS and its v / x0 / EDM subclasses, V_PREDICTION_DDPM,
# COSMOS_RFLOW), "flow" x = (1 - sigma) x0 + sigma n (CONST at noise_scale 1). Any other noise_scaling
# (img-to-img "flows" that add no noise, a sampling class of another package) is refused, never guessed.
NOISE_KIND_BY_SCALING = {"EPS": "ve", "V_PREDICTION_DDPM": "ve", "COSMOS_RFLOW": "ve", "CONST": "flow"}
# Image-to-image samplings: IMG_TO_IMG keeps EPS's noise_scaling but hands the model its input unscaled, a
# model that maps an image to an image and has no density of noisy latents; IMG_TO_IMG_FLOW adds no noise.
IMAGE_TO_IMAGE_SAMPLINGS = ("IMG_TO_IMG", "IMG_TO_IMG_FLOW")


def noise_kind(model: ModelPatcher) -> str:
    """geodesic_core's noise convention of the model ("ve" or "flow"); a clear error for any other."""
    sampling = model_sampling(model)
    sampling_class = f"{type(sampling).__module__}.{type(sampling).__qualname__}"
    scaling_owner = next((cls for cls in type(sampling).__mro__ if "noise_scaling" in vars(cls)), None)
    kind = None
    if scaling_owner is not None and scaling_owner.__module__ == comfy.model_sampling.__name__:
        kind = NOISE_KIND_BY_SCALING.get(scaling_owner.__name__)
    if prediction_type(model) in IMAGE_TO_IMAGE_SAMPLINGS:
        raise GeodesicInputError(
            f"model: its sampling is {prediction_type(model)} (image to image): the model maps an image to an image "
            f"and has no density of noisy latents to follow; use its eps, v-prediction or flow sampling "
            f"(e.g. ModelSamplingDiscrete with sampling eps)")
    if kind is None:
        owner = "no noise_scaling" if scaling_owner is None else f"noise_scaling of {scaling_owner.__qualname__}"
        raise GeodesicInputError(
            f"model: its sampling class {sampling_class} ({owner}) adds noise in a way the density formulas do not "
            f"cover (x = x0 + sigma n, or (1 - sigma) x0 + sigma n for flow models); use a model whose sampling is "
            f"eps, v-prediction or flow (ModelSamplingDiscrete / ModelSamplingSD3 patches are fine)")
    noise_scale = float(getattr(sampling, "noise_scale", 1.0))
    if kind == "flow" and noise_scale != 1.0:
        raise GeodesicInputError(
            f"model: its sampling class {sampling_class} is a flow model with noise_scale {noise_scale:g}; the flow "
            f"score formula assumes noise_scale 1 (x = (1 - sigma) x0 + sigma n), so this model is not supported")
    return kind


def sigma_at(model: ModelPatcher, noise_level: float) -> float:
    """Sigma at a fraction of the schedule (0.6 = 60% of the way from clean to pure noise)."""
    if not 0.0 < noise_level < 1.0:
        raise GeodesicInputError(
            f"noise_level: expected a fraction strictly between 0 and 1, got {noise_level}")
    return float(model_sampling(model).percent_to_sigma(1.0 - noise_level))


def ode_sigmas(model: ModelPatcher, noise_level: float, steps: int) -> Tensor:
    """Descending sigmas for ``steps`` DDIM steps from the noise level to 0: timesteps evenly spaced from the
    level's down to the smallest trained one, then 0. DDIM's own spacing (ComfyUI's normal scheduler ends the
    same way), and the one geodesic_pipeline's diffusers models take (diffusers_adapter.denoising_sigmas): the
    same model inverts and generates by the same steps in and out of ComfyUI."""
    if steps < 1:
        raise GeodesicInputError(f"steps: expected at least 1, got {steps}")
    if steps == 1:
        return torch.tensor([sigma_at(model, noise_level), 0.0], dtype=torch.float32)
    ms = model_sampling(model)
    levels = [float(ms.percent_to_sigma(1.0 - noise_level * i / (steps - 1))) for i in range(steps - 1, 0, -1)]
    return torch.tensor([*levels, float(ms.sigma_min), 0.0], dtype=torch.float32)


def latent_to_model_space(model: ModelPatcher, samples: Tensor) -> Tensor:
    return model.model.process_latent_in(samples.float())


def latent_from_model_space(model: ModelPatcher, points: Tensor) -> Tensor:
    return model.model.process_latent_out(points.float())


def check_path_for(model: ModelPatcher, path: GeodesicPath, input_name: str) -> None:
    """The path on input ``input_name`` was made with this model family at this model's sigma."""
    check_path_matches(path, model_key(model), sigma_at(model, path.noise_level), input_name)
