"""The model a job runs on: the embedded MNIST latent model (``digits``, the default: the one the nodes and the
demo run, loaded by the demo's loader) or a diffusers latent-diffusion folder.

Both are a diffusers UNet + VAE + scheduler that geodesic_pipeline.model.diffusion_at_level makes the pipeline's
``DiffusersModel`` (the denoiser at the noise level, with its ODE schedules); a latent model adds its VAE
between pixels and latents and, when a prompt is given, the text encoder's conditioning. Each brings its own
defaults (alpha, noise level): the embedded model its calibrated ones, a diffusers folder the paper's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from digits.latent_files import METADATA_FILE, UNET_FILE, VAE_FILE, WEIGHTS_DIR
from digits.latent_model import load_mnist_model
from digits.settings import MNIST_DEFAULTS, MNIST_IMAGE_SIZE
from geodesic_pipeline.defaults import PAPER_DEFAULTS, ModelDefaults
from geodesic_pipeline.model import DiffusersModel, diffusion_at_level

from .settings import Settings

DIGITS = "digits"
# What the embedded model's output keys are derived from: the weights and the record they load with (its latent
# scaling); the judge's weights are the demo's, not the model's.
DIGITS_FILES = (UNET_FILE, VAE_FILE, METADATA_FILE)
LATENT_PARTS = ("unet", "vae", "scheduler", "text_encoder", "tokenizer")


class ModelError(ValueError):
    """The --model cannot be used; the message says what was expected."""


@dataclass
class CallCounter:
    """UNet forward calls and the latents they evaluated (a forward hook: counts every path to the model)."""

    calls: int = 0
    images: int = 0

    def __call__(self, module, args, kwargs, output) -> None:
        self.calls += 1
        self.images += int(args[0].shape[0] if args else kwargs["sample"].shape[0])

    def reset(self) -> None:
        self.calls = self.images = 0


@dataclass
class BatchModel:
    identity: str                  # what output keys are derived from: the weights' content hash
    diffusion: DiffusersModel      # at the noise level with inversion / decoding schedules (and its VAE)
    image_size: tuple[int, int]    # (height, width) images are resized to
    grey: bool
    invert_light_background: bool  # the digits model learned bright strokes on dark (geodesic_pipeline.images)
    device: torch.device
    counter: CallCounter = field(default_factory=CallCounter)

    def encode(self, images: Tensor) -> Tensor:
        """[B, C, H, W] images in [-1, 1] -> latents at the noise level (VAE, then DDIM inversion)."""
        return self.diffusion.to_latents(images.to(self.device))

    def decode(self, latents: Tensor) -> Tensor:
        """Latents at the noise level -> [B, C, H, W] images in [-1, 1] on the CPU."""
        return self.diffusion.to_images(latents).cpu()


def files_hash(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def model_identity(spec: str) -> str:
    """``digits:<hash>`` or ``diffusers:<folder name>:<hash>`` of the weights and configs; checks the folder."""
    if spec == DIGITS:
        return f"digits:{files_hash(list(DIGITS_FILES), WEIGHTS_DIR)}"
    folder = Path(spec)
    missing = [part for part in ("unet", "vae", "scheduler") if not (folder / part).is_dir()]
    if not folder.is_dir() or missing:
        raise ModelError(f"--model: expected 'digits' or a diffusers latent-diffusion folder with unet/, vae/ and "
                         f"scheduler/ (text_encoder/ and tokenizer/ for a prompt); {folder} "
                         f"{'is not a folder' if not folder.is_dir() else 'lacks ' + ', '.join(missing)}")
    files = sorted(p for part in LATENT_PARTS if (folder / part).is_dir() for p in (folder / part).rglob("*")
                   if p.is_file())
    return f"diffusers:{folder.resolve().name}:{files_hash(files, folder)}"


def model_defaults(spec: str) -> ModelDefaults:
    """The model's own alpha and noise level: the embedded model's calibrated ones, or the paper's."""
    return MNIST_DEFAULTS if spec == DIGITS else PAPER_DEFAULTS


def load_model(spec: str, settings: Settings, device: torch.device) -> BatchModel:
    settings = settings.for_model(model_defaults(spec))
    if spec == DIGITS:
        diffusion = load_mnist_model(settings.noise_level, settings.invert_steps, settings.decode_steps)
        diffusion.denoise.unet.to(device)
        diffusion.vae.to(device)
        model = BatchModel(model_identity(spec), diffusion, (MNIST_IMAGE_SIZE, MNIST_IMAGE_SIZE), True, True, device)
    else:
        model = load_latent_diffusion(Path(spec), settings, device)
    model.diffusion.denoise.unet.register_forward_hook(model.counter, with_kwargs=True)
    return model


def load_latent_diffusion(folder: Path, settings: Settings, device: torch.device) -> BatchModel:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    identity = model_identity(str(folder))
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval().requires_grad_(False).to(device)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").eval().requires_grad_(False).to(device)
    # Only the training noise schedule is used (alphas_cumprod), so any diffusers scheduler config loads as DDPM.
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    conditioning = text_conditioning(folder, settings.prompt, unet, device)
    diffusion = diffusion_at_level(unet, scheduler, settings.noise_level, settings.invert_steps,
                                   settings.decode_steps, vae, conditioning=conditioning)
    side = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    return BatchModel(identity, diffusion, (side, side), vae.config.in_channels == 1, False, device)


@torch.no_grad()
def text_conditioning(folder: Path, prompt: str, unet, device: torch.device) -> Tensor:
    """The text encoder's hidden states for ``prompt`` ([1, tokens, dim]); the empty prompt's when none is
    given (as diffusers pipelines condition an unprompted sample); zeros for a folder without a text encoder."""
    has_text = (folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir()
    if not has_text:
        if prompt:
            raise ModelError(f"--prompt: the model folder {folder} has no text_encoder/ and tokenizer/ to read it")
        return torch.zeros(1, 1, unet.config.cross_attention_dim, device=device)
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval().to(device)
    tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt").input_ids.to(device)
    return encoder(tokens).last_hidden_state
