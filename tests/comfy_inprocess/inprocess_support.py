"""What the in-process node tests share: sizes, fast solver settings and small helpers (the fixtures are
in conftest.py beside this file)."""
from __future__ import annotations

import comfy.model_management
import torch
from density_geodesics.geodesic_core import DenoiserField
from density_geodesics.nodes import EncodeKeyframes
from density_geodesics.nodes.bridge import run_with_denoiser
from density_geodesics.nodes.model_facts import noise_kind

NOISE_LEVEL = 0.6
SIZE = 64
# Scores are (D - x) / sigma^2 of float32 model outputs; the bridge and the direct call run the same
# UNet forward on the same inputs, so they agree to float32 rounding of values of order 1 (1e-5 relative).
SCORE_RTOL = 1e-5
FAST_BVP = dict(alpha=0.002, method="default", tolerance=1e-3, max_evals=60, sphere=True, batch_size=4,
                guidance=0.0)


def random_images(n: int, seed: int, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed))


def encode_keyframes(sd, images, positive, model=None, noise_level=NOISE_LEVEL):
    return EncodeKeyframes.execute(model or sd["model"], positive, noise_level, 2, 4, image=images,
                                   vae=sd["vae"])[0]


def bridge_scores(model, schedule, x, t, sigma):
    def field_scores(denoise, device):
        return DenoiserField(denoise, sigma, noise_kind(model)).score(x.to(device), t).cpu()

    return run_with_denoiser(model, schedule, field_scores, stage="test", latent_shape=tuple(x.shape[1:]), batch_size=4,
                             largest_batch=len(x), total_evals=len(x), sigma=sigma)


def direct_denoised(model, x, sigma, cross_attn):
    comfy.model_management.load_models_gpu([model])
    sigmas = torch.full((len(x),), sigma)
    return model.model.apply_model(x, sigmas, c_crossattn=cross_attn.expand(len(x), -1, -1)).float()


def noisy_latents(seed: int, n: int = 3) -> torch.Tensor:
    return 2.0 * torch.randn(n, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(seed))


def batch_recording(model):
    """A clone of ``model`` whose UNet wrapper (a model-option wrapper, as custom nodes install them) records
    the batch size of every call."""
    batches = []

    def record_batch(apply_model, args):
        batches.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])

    wrapped = model.clone()
    wrapped.set_model_unet_function_wrapper(record_batch)
    return wrapped, batches
