"""The 8x8 pixel-space digits model (scikit-learn's bundled digits): its UNet, with the embedded MNIST model's
DDPM scheduler, and loading its shipped weights (also as the pipeline's model at a noise level). The solver
benchmark's fast real model."""

from pathlib import Path

from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file

from geodesic_pipeline.model import DiffusersModel, diffusion_at_level

from .latent_files import WEIGHTS_DIR
from .latent_model import build_scheduler
from .settings import DEFAULTS_8X8, IMAGE_SIZE_8X8, ODE_STEPS

WEIGHTS_FILE = WEIGHTS_DIR / "digits_unet.safetensors"
METADATA_FILE = WEIGHTS_DIR / "digits_unet.json"

UNET_CONFIG = {
    "sample_size": IMAGE_SIZE_8X8,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
}


def build_unet() -> UNet2DModel:
    return UNet2DModel(**UNET_CONFIG)


def load_trained_model(weights_file: Path = WEIGHTS_FILE) -> tuple[UNet2DModel, DDPMScheduler]:
    """The shipped (or a freshly trained) 8x8 digits model, in eval mode, float32 on CPU."""
    if not Path(weights_file).is_file():
        raise FileNotFoundError(f"digits model weights not found at {weights_file}; "
                                f"train them with: python -m digits.train_8x8")
    unet = build_unet()
    unet.load_state_dict(load_file(str(weights_file)))
    return unet.eval().requires_grad_(False), build_scheduler()


def load_8x8_model(noise_level: float = DEFAULTS_8X8.noise_level, ode_steps: int = ODE_STEPS,
                      decode_steps: int | None = None) -> DiffusersModel:
    """The shipped 8x8 digits model at ``noise_level``, with ``ode_steps`` DDIM steps each way (``decode_steps``
    for decoding, when given)."""
    unet, scheduler = load_trained_model()
    return diffusion_at_level(unet, scheduler, noise_level, ode_steps, decode_steps)
