"""The embedded default model, built like Stable Diffusion at MNIST size: a diffusers ``AutoencoderKL``
(32x32 digit -> 4x8x8 latent, two halvings) and a diffusers ``UNet2DModel`` trained with SD's epsilon
schedule on the autoencoder's scaled latents. Trained by ``python -m digits.train_mnist``; the weights
and what made them live in ``digits/weights/mnist_*``.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from safetensors.torch import load_file

from geodesic_pipeline.model import DiffusersModel, diffusion_at_level

from .latent_files import METADATA_FILE, UNET_FILE, VAE_FILE, load_metadata
from .mnist import MODEL_SIZE
from .settings import MNIST_DEFAULTS, ODE_STEPS

# Stable Diffusion's schedule, so a noise level means the same fraction of the schedule as in the paper (and a
# similar sigma: about 2.2 at 60%, vs about 2.0 for SD).
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}
LATENT_CHANNELS = 4
LATENT_SIZE = MODEL_SIZE // 4
VAE_CONFIG = {
    "in_channels": 1,
    "out_channels": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 64],  # small enough for about 0.4 s per batch of 64 on one CPU core
    "layers_per_block": 1,
    "latent_channels": LATENT_CHANNELS,
    "norm_num_groups": 8,
    "sample_size": MODEL_SIZE,
}
UNET_CONFIG = {
    "sample_size": LATENT_SIZE,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 16,
}


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE_CONFIG)


def build_latent_unet() -> UNet2DModel:
    return UNet2DModel(**UNET_CONFIG)


def build_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


@dataclass
class Autoencoder:
    """The trained AutoencoderKL with SD's latent scaling: encode gives the posterior mean times
    ``scaling_factor`` (so the diffusion model sees latents of unit standard deviation), decode undoes it."""

    vae: AutoencoderKL
    scaling_factor: float

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """[B, 1, 32, 32] images in [-1, 1] -> [B, 4, 8, 8] scaled latents (deterministic)."""
        return torch.cat([self.vae.encode(batch).latent_dist.mode() for batch in images.split(batch_size)]) \
            * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """[B, 4, 8, 8] scaled latents -> [B, 1, 32, 32] images clamped to [-1, 1]."""
        latents = latents.to(torch.float32) / self.scaling_factor
        return torch.cat([self.vae.decode(batch).sample for batch in latents.split(batch_size)]).clamp(-1.0, 1.0)


def _load(module: torch.nn.Module, weights_file: Path) -> torch.nn.Module:
    if not Path(weights_file).is_file():
        raise FileNotFoundError(f"MNIST model weights not found at {weights_file}; train them with: "
                                "python -m digits.train_mnist")
    module.load_state_dict({k: v.float() for k, v in load_file(str(weights_file)).items()})
    return module.eval().requires_grad_(False)


def load_vae(vae_file: Path = VAE_FILE, metadata_file: Path = METADATA_FILE) -> AutoencoderKL:
    """The trained AutoencoderKL with its measured latent scaling in ``config.scaling_factor``, as SD ships it."""
    vae = _load(build_vae(), vae_file)
    vae.register_to_config(scaling_factor=float(load_metadata(metadata_file)["vae"]["scaling_factor"]))
    return vae


def load_autoencoder(vae_file: Path = VAE_FILE, metadata_file: Path = METADATA_FILE) -> Autoencoder:
    vae = load_vae(vae_file, metadata_file)
    return Autoencoder(vae, vae.config.scaling_factor)


def load_latent_unet(unet_file: Path = UNET_FILE) -> UNet2DModel:
    return _load(build_latent_unet(), unet_file)


def load_mnist_model(noise_level: float = MNIST_DEFAULTS.noise_level, ode_steps: int = ODE_STEPS,
                     decode_steps: int | None = None) -> DiffusersModel:
    """The shipped latent model at ``noise_level``: VAE encode, DDIM inversion with ``ode_steps`` steps, and
    back (``decode_steps`` for decoding, when given)."""
    scheduler = build_scheduler()
    return diffusion_at_level(load_latent_unet(), scheduler, noise_level, ode_steps, decode_steps, vae=load_vae())


def in_distribution_limit(metadata_file: Path = METADATA_FILE) -> float:
    """The largest distance to the nearest training digit of the held-out digits measured at training time
    (``evaluate`` stage): inputs further than this are unlike every digit the splits were drawn from."""
    return float(load_metadata(metadata_file)["evaluate"]["in_distribution_limit"])
