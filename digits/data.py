"""scikit-learn's bundled digits as model images, with a fixed train / held-out split."""

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

IMAGE_SIZE = 8  # native resolution: upsampling adds no information and would cost 4x the compute
SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2
DIGITS_MAX_VALUE = 16.0  # load_digits pixel intensities are integers 0..16


def digits_to_model_images(pixels_8x8: np.ndarray) -> torch.Tensor:
    """[N, 8, 8] intensities 0..16 -> [N, 1, 8, 8] float32 in [-1, 1]."""
    unit = torch.as_tensor(np.asarray(pixels_8x8), dtype=torch.float32).reshape(-1, 1, 8, 8) / DIGITS_MAX_VALUE
    return unit * 2.0 - 1.0


def model_images_to_digits(images: torch.Tensor) -> np.ndarray:
    """[N, 1, 8, 8] model images -> [N, 64] features on load_digits' 0..16 scale (what the judge reads)."""
    unit = (images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0
    return (unit * DIGITS_MAX_VALUE).reshape(len(images), 64).numpy()


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


def pick_pairs(split: str, n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """Distinct pairs of indices into ``split`` showing different digits (so the path has to change
    class), drawn by ``seed``."""
    _, labels = load_split(split)
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n_pairs:
        i, j = (int(k) for k in rng.choice(len(labels), size=2, replace=False))
        if labels[i] != labels[j] and (i, j) not in pairs:
            pairs.append((i, j))
    return pairs


class ImageFileError(ValueError):
    """An image file cannot be used; the message names the file and what was expected."""


def image_to_tensor(image: Image.Image, size: tuple[int, int], grey: bool) -> np.ndarray:
    """A PIL image -> [C, H, W] float32 in [-1, 1] at (height, width), box-filtered (bright = ink for
    the digits, as in load_digits)."""
    image = image.convert("L" if grey else "RGB").resize((size[1], size[0]), Image.Resampling.BOX)
    pixels = np.asarray(image, dtype=np.float32) / 255.0 * 2.0 - 1.0
    return pixels[None] if grey else pixels.transpose(2, 0, 1)


def read_image_files(paths: list, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE), grey: bool = True) -> torch.Tensor:
    """Image files -> [K, C, H, W] model images; all must open as images and have the same size."""
    images, sizes = [], []
    for path in paths:
        try:
            with Image.open(path) as opened:
                opened.load()
                sizes.append(opened.size)
                images.append(image_to_tensor(opened, size, grey))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageFileError(f"cannot read {path} as an image ({error})") from error
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{w}x{h} ({p})" for (w, h), p in zip(sizes, paths, strict=True))
        raise ImageFileError(f"images must have the same size, got {listed}")
    return torch.from_numpy(np.stack(images))
