"""The embedded MNIST latent model (digits/weights/mnist_*) as native ComfyUI objects: a MODEL, a VAE and the
CONDITIONING its unconditional UNet takes.

Built from the shipped files alone (the weights and the record training wrote beside them: architectures, the
diffusers scheduler config, the latent scaling), so this is the very model the demo runs through diffusers:
- MODEL: a ``comfy.model_base.BaseModel`` over the diffusers UNet, in the patcher ComfyUI gives a loaded
  checkpoint. Its sampling object is SD's epsilon sampling over the model's own scheduler table, and its latent
  format carries the VAE's scaling; KSampler, latent previews, memory management and the pack's nodes take it
  like any checkpoint's MODEL.
- VAE: a ``comfy.sd.VAE`` whose first stage is the diffusers AutoencoderKL: IMAGE (RGB) in, grey digit out as
  RGB, 32x32 pixels <-> 4x8x8 latents, ComfyUI's unscaled LATENT convention.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.sd
import comfy.supported_models_base
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from safetensors.torch import load_file
from torch import Tensor

from ..digits.latent_files import METADATA_FILE, UNET_FILE, VAE_FILE, load_metadata
from ..digits.mnist import SPLIT_SIZES, load_split_uint8, to_model_images
from ..geodesic_pipeline.core import GeodesicInputError
from .comfy_internals import model_patcher_class

IMAGE_SIZE = 32          # a 28x28 MNIST digit padded with 2 background pixels on each side
LATENT_DOWNSCALE = 4     # the autoencoder halves twice: 32x32 pixels -> 8x8 latents
# The diffusers scheduler settings ComfyUI's discrete epsilon sampling reproduces exactly: its own sigma table
# is then replaced by the scheduler's (EmbeddedModelSampling), and any other config is refused, never guessed.
SUPPORTED_SCHEDULE = {"beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


class EmbeddedLatentFormat(comfy.latent_formats.LatentFormat):
    """4x8x8 latents scaled by the VAE's measured factor (as SD's 0.18215), with a grey preview.

    The preview factors are the least-squares fit of the 4x4-pixel means of 4,000 training digits ([-1, 1])
    on their scaled latents (RMS error 0.26 against a pixel spread of 0.41): coarse, but a digit's shape."""

    latent_channels = 4
    spacial_downscale_ratio = LATENT_DOWNSCALE
    latent_rgb_factors = [[weight] * 3 for weight in (-0.0375, 0.2100, 0.0259, -0.1526)]
    latent_rgb_factors_bias = [-0.8001] * 3

    def __init__(self, scale_factor: float):
        self.scale_factor = scale_factor


class EmbeddedModelSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    """SD's epsilon sampling over the model's own diffusers scheduler table.

    The bases in the order ComfyUI's model_base composes its own (schedule, then prediction type): the schedule's
    __init__ is the torch Module's, which some versions' EPS (a Protocol) would not pass on to.

    ``timestep`` interpolates linearly in log sigma, the inverse of ComfyUI's own ``sigma``: the UNet sees the
    continuous timestep of every sigma, as the diffusers adapter gives it (ComfyUI's discrete sampling rounds to
    the nearest trained timestep, which would move the density off the noise level between two timesteps)."""

    def __init__(self, scheduler: DDPMScheduler):
        super().__init__(None)
        alphas = scheduler.alphas_cumprod.double()
        self.set_sigmas(((1.0 - alphas) / alphas).sqrt())

    def timestep(self, sigma: Tensor) -> Tensor:
        log_sigmas = self.log_sigmas.double()
        log_sigma = sigma.double().log().to(log_sigmas.device).clamp(log_sigmas[0], log_sigmas[-1])
        high = torch.searchsorted(log_sigmas, log_sigma.flatten()).clamp(1, len(log_sigmas) - 1)
        low = high - 1
        fraction = (log_sigma.flatten() - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])
        return (low + fraction).view(sigma.shape).float().to(sigma.device)


class EmbeddedUNet(torch.nn.Module):
    """The diffusers UNet2DModel as ComfyUI's diffusion_model: ``forward(x, timesteps, context, ...)`` -> eps.

    Unconditional: the context and ComfyUI's other model kwargs are ignored."""

    def __init__(self, *, device=None, operations=None, **config):
        super().__init__()
        self.unet = UNet2DModel(**config)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor | None = None, **kwargs) -> Tensor:
        return self.unet(x, timesteps).sample


class EmbeddedModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI's description of the model: float32 only (1M parameters; half precision would change the
    density the pack computes for no speed worth having)."""

    unet_extra_config = {}  # BASE's defaults are UNetModel arguments; the diffusers config is complete
    latent_format = comfy.latent_formats.LatentFormat  # replaced per instance by the VAE's scaling
    supported_inference_dtypes = [torch.float32]
    memory_usage_factor = 0.05  # activations of a 4x8x8 latent: a tiny fraction of an SD latent's

    def __init__(self, unet_config: dict, scale_factor: float):
        super().__init__(unet_config)
        self.latent_format = EmbeddedLatentFormat(scale_factor)


class EmbeddedLatentModel(comfy.model_base.BaseModel):
    """The embedded MNIST latent diffusion model as a ComfyUI BaseModel."""

    def __init__(self, config: EmbeddedModelConfig, scheduler: DDPMScheduler, device=None):
        super().__init__(config, comfy.model_base.ModelType.EPS, device=device, unet_model=EmbeddedUNet)
        self.model_sampling = EmbeddedModelSampling(scheduler)


class GreyDigitAutoencoder(torch.nn.Module):
    """The diffusers AutoencoderKL as a ComfyUI first stage: [B, 3, 32, 32] RGB in [-1, 1] -> unscaled [B, 4, 8, 8]
    latents (the posterior mean, deterministic) and back to grey as [B, 3, 32, 32] RGB."""

    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae

    def encode(self, pixels: Tensor) -> Tensor:
        if tuple(pixels.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise GeodesicInputError(
                f"pixels: the embedded MNIST VAE encodes {IMAGE_SIZE}x{IMAGE_SIZE} images (a 28x28 digit padded "
                f"with black, white strokes on black), got {pixels.shape[-1]}x{pixels.shape[-2]}; use the MNIST "
                f"Digit node, or scale the image to {IMAGE_SIZE}x{IMAGE_SIZE} first (Upscale Image)")
        return self.vae.encode(pixels.mean(1, keepdim=True)).latent_dist.mode()

    def decode(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents).sample.clamp(-1.0, 1.0).expand(-1, 3, -1, -1)


@contextmanager
def _without_message(message: str):
    """Drop one known log line: the one ComfyUI's VAE writes when built without weights, as done here on
    purpose (its defaults are set, then the embedded first stage takes the place of the weights it looked for)."""
    root = logging.getLogger()
    drop = _DropMessage(message)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


class _DropMessage(logging.Filter):
    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return self.message not in record.getMessage()


class EmbeddedVAE(comfy.sd.VAE):
    """ComfyUI's VAE over the embedded autoencoder: every VAE method (encode, decode, tiled variants, memory
    estimates, device handling) is ComfyUI's own; only the first stage and its shape facts are this model's."""

    def __init__(self, vae: AutoencoderKL):
        with _without_message("No VAE weights detected"):
            super().__init__(sd={})  # ComfyUI's defaults for every attribute its methods read, in any version
        self.first_stage_model = GreyDigitAutoencoder(vae).eval()
        self.downscale_ratio = self.upscale_ratio = LATENT_DOWNSCALE
        self.latent_channels = vae.config.latent_channels
        self.working_dtypes = [torch.float32]
        self.device = comfy.model_management.vae_device()
        self.vae_dtype = torch.float32
        self.output_device = comfy.model_management.intermediate_device()
        self.patcher = model_patcher_class()(self.first_stage_model, load_device=self.device,
                                             offload_device=comfy.model_management.vae_offload_device())
        self.size = None
        self.model_size()


# The UNet ignores its conditioning, but ComfyUI's samplers and the pack's nodes need one: a single zero token.
def unconditional() -> list:
    return [[torch.zeros(1, 1, 1), {}]]


def _weights(module: torch.nn.Module, weights_file) -> torch.nn.Module:
    if not weights_file.is_file():
        raise GeodesicInputError(f"the embedded MNIST model's weights are missing at {weights_file}; reinstall the "
                                 "node pack (they ship in digits/weights/)")
    module.load_state_dict({k: v.float() for k, v in load_file(str(weights_file)).items()})
    return module.eval().requires_grad_(False)


def _scheduler(record: dict) -> DDPMScheduler:
    config = record["unet"]["scheduler_config"]
    for key, wanted in SUPPORTED_SCHEDULE.items():
        if config.get(key) != wanted:
            raise GeodesicInputError(f"{METADATA_FILE}: scheduler_config.{key} is {config.get(key)!r}; the embedded "
                                     f"model's ComfyUI sampling is written for {wanted!r}")
    return DDPMScheduler(**config)


@lru_cache(maxsize=1)
def load_embedded_model() -> tuple:
    """(MODEL, VAE, CONDITIONING) of the shipped MNIST latent model; built once per process, as ComfyUI keeps one
    loaded copy of a checkpoint."""
    record = load_metadata()
    config = EmbeddedModelConfig(record["unet"]["config"], float(record["vae"]["scaling_factor"]))
    base = EmbeddedLatentModel(config, _scheduler(record))
    _weights(base.diffusion_model.unet, UNET_FILE)
    model = model_patcher_class()(base, load_device=comfy.model_management.get_torch_device(),
                                  offload_device=comfy.model_management.unet_offload_device())
    vae = EmbeddedVAE(_weights(AutoencoderKL(**record["vae"]["config"]), VAE_FILE))
    return model, vae, unconditional()


def mnist_test_digit(index: int) -> tuple[Tensor, int]:
    """Held-out MNIST digit ``index`` (of the 10,000 the model never trained on) as a [1, 32, 32, 3] IMAGE in
    [0, 1] (white strokes on black, padded to the model's size) and its label."""
    if not 0 <= index < SPLIT_SIZES["held_out"]:
        raise GeodesicInputError(f"index: expected 0 to {SPLIT_SIZES['held_out'] - 1} (the held-out MNIST digits), "
                                 f"got {index}")
    pixels, labels = load_split_uint8("held_out")
    image = (to_model_images(pixels[index:index + 1]) + 1.0) / 2.0
    return image.movedim(1, -1).expand(-1, -1, -1, 3).contiguous(), int(labels[index])
