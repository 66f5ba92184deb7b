"""The digits UNet + DDPM scheduler: architecture, denoising loss, and loading the shipped weights (also as the
pipeline's model at a noise level)."""

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file

from geodesic_core.diffusers_adapter import DiffusersDenoiser
from geodesic_pipeline.model import DiffusersModel, diffusion_at_level

from .latent_files import WEIGHTS_DIR
from .settings import DEFAULTS, IMAGE_SIZE, ODE_STEPS

WEIGHTS_FILE = WEIGHTS_DIR / "digits_unet.safetensors"
METADATA_FILE = WEIGHTS_DIR / "digits_unet.json"

UNET_CONFIG = {
    "sample_size": IMAGE_SIZE,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
}
# Stable Diffusion's schedule, so "noise level 0.6" means the same fraction of the schedule (and a
# similar sigma, about 2.2 here vs about 2.0 for SD at 60%) as in the paper.
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}


def build_unet() -> UNet2DModel:
    return UNet2DModel(**UNET_CONFIG)


def build_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


def denoising_loss(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Mean squared epsilon error at uniformly drawn timesteps (the DDPM training objective)."""
    noise = torch.randn(images.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(images),), generator=generator)
    noisy = scheduler.add_noise(images, noise, timesteps)
    return torch.nn.functional.mse_loss(unet(noisy, timesteps).sample, noise)


@torch.no_grad()
def evaluation_loss(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor, *,
                    seed: int, repeats: int, batch_size: int = 256) -> float:
    """Denoising loss averaged over `repeats` seeded noise / timestep draws per image (comparable
    across models: the same seed gives the same draws)."""
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(repeats):
        for batch in images.split(batch_size):
            total += float(denoising_loss(unet, scheduler, batch, generator)) * len(batch)
            count += len(batch)
    return total / count


def load_trained_model(weights_file: Path = WEIGHTS_FILE) -> tuple[UNet2DModel, DDPMScheduler]:
    """The shipped (or a freshly trained) digits model, in eval mode, float32 on CPU."""
    if not Path(weights_file).is_file():
        raise FileNotFoundError(f"digits model weights not found at {weights_file}; "
                                f"train them with: python -m digits.train")
    unet = build_unet()
    unet.load_state_dict(load_file(str(weights_file)))
    return unet.eval().requires_grad_(False), build_scheduler()


def load_metadata(metadata_file: Path = METADATA_FILE) -> dict:
    return json.loads(Path(metadata_file).read_text())


def load_digits_model(noise_level: float = DEFAULTS.noise_level, ode_steps: int = ODE_STEPS,
                      decode_steps: int | None = None) -> DiffusersModel:
    """The shipped digits model at ``noise_level``, with ``ode_steps`` DDIM steps each way (``decode_steps``
    for decoding, when given)."""
    unet, scheduler = load_trained_model()
    return diffusion_at_level(DiffusersDenoiser(unet, scheduler), scheduler, noise_level, ode_steps, decode_steps)
