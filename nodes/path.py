"""The GEODESIC_PATH value passed between the pack's nodes, and the checks every node applies to it.

A path is a sequence of noisy latents at ONE noise level of ONE model family, in the model's scaled
latent space (after process_latent_in), with a position t in [0, 1] per point and a conditioning
schedule: keyframe conditionings pinned at knots in t, linearly interpolated between knots.
It never holds the model itself (the MODEL input of each node does), only what identifies it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError, knot_interval

PATH_TYPE = "GEODESIC_PATH"
SIGMA_REL_TOL = 1e-4  # sigmas are recomputed from the same schedule code: only float noise differs


@dataclass(frozen=True)
class ModelKey:
    """What must match for a path to be meaningful to a model: family, latent space and prediction type."""

    model_type: str
    latent_format: str
    prediction: str

    def describe(self) -> str:
        return f"{self.model_type} ({self.prediction} prediction, {self.latent_format} latents)"


@dataclass(frozen=True)
class ConditioningSchedule:
    """Keyframe conditionings (ComfyUI CONDITIONING lists) pinned at ascending knots in t."""

    knots: tuple[float, ...]
    conditionings: tuple[list, ...]

    def locate(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For each t: the knot before it, the knot after it and the blend weight of the latter."""
        knots = torch.tensor(self.knots, dtype=torch.float64)
        if len(knots) == 1:
            zeros = torch.zeros(len(t), dtype=torch.long)
            return zeros, zeros, torch.zeros(len(t), dtype=torch.float64)
        return knot_interval(knots, t.detach().to("cpu", torch.float64))

    def shifted(self, offset: float, scale: float) -> ConditioningSchedule:
        return ConditioningSchedule(tuple(offset + scale * k for k in self.knots), self.conditionings)

    def at(self, t: float) -> list:
        """The keyframe conditioning nearest to t (for a constant continuation past the path's end)."""
        before, after, weight = self.locate(torch.tensor([t]))
        return self.conditionings[int(after[0]) if float(weight[0]) >= 0.5 else int(before[0])]


@dataclass(frozen=True)
class GeodesicPath:
    points: Tensor            # [N, C, H, W] noisy latents in the model's scaled latent space, float32, CPU
    t: Tensor                 # [N] ascending positions in [0, 1]
    noise_level: float        # fraction of the schedule (0.6 = the paper's 60%)
    sigma: float              # the model's sigma at that noise level
    model_key: ModelKey
    schedule: ConditioningSchedule
    log_density: Tensor | None = None   # [N] float64 relative to points[0], when a solve or readout knows it
    end_tangent: Tensor | None = None   # [C, H, W] direction at the last point (per frame step), if known

    def __len__(self) -> int:
        return self.points.shape[0]

    def with_points(self, points: Tensor, t: Tensor, *, schedule: ConditioningSchedule | None = None,
                    log_density: Tensor | None = None, end_tangent: Tensor | None = None) -> GeodesicPath:
        """A new path of the same model at the same noise level: other points at positions ``t`` (with this
        path's conditioning schedule unless another is given), knowing only the densities given."""
        return dataclasses.replace(self, points=points, t=t, schedule=self.schedule if schedule is None else schedule,
                                   log_density=log_density, end_tangent=end_tangent)


def check_conditioning(conditioning: list | None, input_name: str) -> list:
    if not conditioning:
        raise GeodesicInputError(
            f"{input_name}: the conditioning is empty; connect the output of a CLIP Text Encode node")
    for entry in conditioning:
        if entry[0] is not None and entry[0].numel() == 0:
            raise GeodesicInputError(f"{input_name}: a conditioning tensor is empty (0 tokens)")
    return conditioning


def check_path_matches(path: GeodesicPath, model_key: ModelKey, sigma_of_level: float,
                       input_name: str) -> None:
    """A path only makes sense for the model family and noise level it was made with."""
    if not isinstance(path, GeodesicPath):
        raise GeodesicInputError(
            f"{input_name}: expected a {PATH_TYPE} from a Density Geodesics node, got {type(path).__name__}")
    if path.model_key != model_key:
        raise GeodesicInputError(
            f"{input_name}: this path was made with {path.model_key.describe()}, but the connected model is "
            f"{model_key.describe()}; encode the keyframes again with this model")
    if not math.isclose(path.sigma, sigma_of_level, rel_tol=SIGMA_REL_TOL):
        raise GeodesicInputError(
            f"{input_name}: this path lies at noise level {path.noise_level:g} (sigma {path.sigma:.5g}), "
            f"but the connected model's sigma at that level is {sigma_of_level:.5g} (a different noise schedule); "
            f"encode the keyframes again with this model")


def check_min_points(path: GeodesicPath, minimum: int, input_name: str, purpose: str) -> None:
    if len(path) < minimum:
        raise GeodesicInputError(
            f"{input_name}: {purpose} needs at least {minimum} points, got {len(path)}; encode more images "
            f"(a batch) or join keyframe sets with DensityGeodesics_JoinKeyframes")


def join_paths(first: GeodesicPath, second: GeodesicPath, names: tuple[str, str]) -> GeodesicPath:
    """Concatenate two paths; the gap between them is one average step of the longer-stepped part."""
    if first.model_key != second.model_key:
        raise GeodesicInputError(
            f"{names[1]}: made with {second.model_key.describe()}, but {names[0]} with "
            f"{first.model_key.describe()}; encode both with the same model (the same checkpoint and the same "
            f"sampling patches)")
    if not math.isclose(first.sigma, second.sigma, rel_tol=SIGMA_REL_TOL):
        raise GeodesicInputError(
            f"{names[1]}: lies at noise level {second.noise_level:g}, but {names[0]} at "
            f"{first.noise_level:g}; encode both with the same noise_level")
    if first.points.shape[1:] != second.points.shape[1:]:
        raise GeodesicInputError(
            f"{names[1]}: latent size {tuple(second.points.shape[1:])} differs from {names[0]}'s "
            f"{tuple(first.points.shape[1:])}; resize the images to the same width and height")
    entries = [{len(conditioning) for conditioning in p.schedule.conditionings} for p in (first, second)]
    if len(entries[0] | entries[1]) > 1:
        first_entries, second_entries = (" or ".join(map(str, sorted(e))) for e in entries)
        raise GeodesicInputError(
            f"{names[1]}: its conditioning has {second_entries} entries, {names[0]}'s {first_entries}; "
            f"frames between them blend the two, which needs the same number (combine or concat the prompts "
            f"the same way for each)")
    steps = [(p.t[-1] - p.t[0]).item() / (len(p) - 1) for p in (first, second) if len(p) > 1]
    gap = max(steps) if steps else 1.0
    second_span = (second.t[-1] - second.t[0]).item()
    start = first.t[-1].item() + gap
    total = start + second_span
    t = torch.cat([first.t, start + (second.t - second.t[0])]) / total
    first_schedule = first.schedule.shifted(0.0, 1.0 / total)
    second_schedule = second.schedule.shifted((start - second.t[0].item()) / total, 1.0 / total)
    schedule = ConditioningSchedule(first_schedule.knots + second_schedule.knots,
                                    first_schedule.conditionings + second_schedule.conditionings)
    return first.with_points(torch.cat([first.points, second.points]), t, schedule=schedule)
