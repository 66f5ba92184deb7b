"""scikit-learn's bundled 8x8 digits (the fixture model's data), with a fixed train / held-out split."""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .settings import IMAGE_SIZE_8X8

SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2
DIGITS_MAX_VALUE = 16.0  # load_digits pixel intensities are integers 0..16


def digits_to_model_images(pixels_8x8: np.ndarray) -> torch.Tensor:
    """[N, 8, 8] intensities 0..16 -> [N, 1, 8, 8] float32 in [-1, 1]."""
    unit = torch.as_tensor(np.asarray(pixels_8x8), dtype=torch.float32) / DIGITS_MAX_VALUE
    unit = unit.reshape(-1, 1, IMAGE_SIZE_8X8, IMAGE_SIZE_8X8)
    return unit * 2.0 - 1.0


def model_images_to_digits(images: torch.Tensor) -> np.ndarray:
    """[N, 1, 8, 8] model images -> [N, 64] features on load_digits' 0..16 scale (what the judge reads)."""
    unit = (images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0
    return (unit * DIGITS_MAX_VALUE).reshape(len(images), IMAGE_SIZE_8X8**2).numpy()


def load_split(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """Model images and labels of the "train" or "held_out" split (stratified, fixed seed)."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    bunch = load_digits()
    train_idx, held_out_idx = train_test_split(
        np.arange(len(bunch.target)), test_size=HELD_OUT_FRACTION, random_state=SPLIT_SEED,
        stratify=bunch.target)
    idx = train_idx if split == "train" else held_out_idx
    return digits_to_model_images(bunch.images[idx]), bunch.target[idx]


def distance_to_training(images: torch.Tensor) -> np.ndarray:
    """[N, 1, 8, 8] model images -> [N] RMS pixel distance (on the [-1, 1] scale) to the nearest training
    digit: how unlike anything the model and the judge were trained on each image is."""
    train, _ = load_split("train")
    a = images.reshape(len(images), -1).double()
    b = train.reshape(len(train), -1).double()
    return (torch.cdist(a, b).min(1).values / a.shape[1] ** 0.5).numpy()


def in_distribution_limit() -> float:
    """The largest nearest-training-digit distance of any held-out digit: inputs further than this are
    unlike every digit the split was drawn from (deterministic, a fraction of a second)."""
    held_out, _ = load_split("held_out")
    return float(distance_to_training(held_out).max())
