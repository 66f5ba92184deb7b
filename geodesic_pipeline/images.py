"""Image files -> model images: the one home shared by the demo (digits/main.py) and the batch jobs
(geodesic_batch). Two steps, so the demo can check its files before torch loads: open_image_files (PIL only)
and to_model_images (numpy and torch, imported where they are first needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

LIGHT_BACKGROUND = "dark strokes on a light background; inverted to bright strokes on dark, as the model was trained"


class ImageFileError(ValueError):
    """An image file cannot be used; the message names the file and what was expected."""


def open_image_files(paths: list) -> list[Image.Image]:
    """Image files, opened and loaded; all must be images of the same size. Raises ImageFileError."""
    images = []
    for path in paths:
        try:
            with Image.open(path) as opened:
                opened.load()
                images.append(opened.copy())
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageFileError(f"cannot read {path} as an image ({error})") from error
    if len({image.size for image in images}) > 1:
        listed = ", ".join(f"{image.width}x{image.height} ({path})" for image, path in zip(images, paths, strict=True))
        raise ImageFileError(f"images must have the same size, got {listed}")
    return images


def to_model_images(images: list[Image.Image], names: list, size: tuple[int, int], grey: bool = True,
                    invert_light_background: bool = True) -> tuple[torch.Tensor, list[str]]:
    """PIL images -> ([K, C, H, W] float32 in [-1, 1] at (height, width), box-filtered; notices naming
    ``names``). With ``invert_light_background`` (grey models trained on bright strokes on dark, like
    the digits) an image whose median pixel is above mid-grey is inverted, with a notice: no training
    digit has a light background. Natural-image (RGB) models keep their inputs as they are."""
    import numpy as np
    import torch

    pixels, notices = [], []
    for image, name in zip(images, names, strict=True):
        unit = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
        if invert_light_background and np.median(unit) > 0.5:
            unit = 1.0 - unit
            notices.append(f"{name}: {LIGHT_BACKGROUND}")
        channels = unit[..., None] if grey else unit
        small = [np.asarray(Image.fromarray(channels[..., c]).resize((size[1], size[0]), Image.Resampling.BOX))
                 for c in range(channels.shape[-1])]
        pixels.append(np.stack(small))
    return torch.from_numpy(np.stack(pixels) * 2.0 - 1.0), notices


def read_image_files(paths: list, size: tuple[int, int], grey: bool = True, invert_light_background: bool = True
                     ) -> tuple[torch.Tensor, list[str]]:
    """Image files -> ([K, C, H, W] model images, notices): open_image_files, then to_model_images."""
    return to_model_images(open_image_files(paths), paths, size, grey, invert_light_background)
