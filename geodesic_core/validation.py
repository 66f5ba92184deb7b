"""Input checks shared by all solvers: every bad input raises GeodesicInputError naming the argument."""

from __future__ import annotations

import torch
from torch import Tensor


class GeodesicInputError(ValueError):
    """A bad argument to a geodesic_core function; the message names the argument and what was expected."""


class NonFiniteError(GeodesicInputError):
    """A tensor (an input, or a model's output) holds NaN or infinite values."""


def check_finite(x: Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name}: contains NaN or infinite values")


def check_point(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise GeodesicInputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise GeodesicInputError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise GeodesicInputError(f"{name}: is empty")
    check_finite(x, name)


def check_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    check_point(a, names[0])
    check_point(b, names[1])
    if a.shape != b.shape:
        raise GeodesicInputError(
            f"{names[0]} and {names[1]}: expected the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise GeodesicInputError(
            f"{names[0]} and {names[1]}: expected the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise GeodesicInputError(
            f"{names[0]} and {names[1]}: expected the same device, got {a.device} and {b.device}")


def check_positive(value: float, name: str) -> None:
    """A finite number > 0 (bools are not numbers here)."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < float("inf")):
        raise GeodesicInputError(f"{name}: expected a finite positive number, got {value!r}")


def check_alpha(alpha: float, name: str = "alpha") -> None:
    """The density weight of the metric: alpha = 0 would be the flat (Euclidean) metric, not a density one."""
    check_positive(alpha, name)


def check_choice(value: object, options: tuple | list, name: str) -> None:
    if value not in options:
        raise GeodesicInputError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")


def check_path(points: Tensor, name: str = "points", min_points: int = 2) -> None:
    check_point(points, name)
    if points.ndim < 2 or points.shape[0] < min_points:
        raise GeodesicInputError(
            f"{name}: expected [N, *shape] with N >= {min_points} points, got shape {tuple(points.shape)}")
