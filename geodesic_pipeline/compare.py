"""Paths compared between the same ends: linear, slerp and the density geodesic (through two or more
keyframes, or a loop), each read out by the same field, with the numbers the demo and the batch tool report."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from .core import core, geometry
from .keyframes import GeodesicSettings, on_common_sphere, plan_keyframes, solve_through_keyframes
from .model import DiffusersModel

PATH_NAMES = ("linear", "slerp", "geodesic")


def encode_pairs(model: DiffusersModel, images: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    """Latents [P, 2, *shape] of the image pairs (indices into ``images``), inverted in one batch."""
    chosen = images[[k for pair in pairs for k in pair]]
    return model.to_latents(chosen).reshape(len(pairs), 2, *model.encode(chosen[:1]).shape[1:])


def against_geodesic(field: core.DensityField, points: Tensor, settings: GeodesicSettings, *,
                     readout_max_evals: int | None = None) -> core.EfficiencyResult:
    """A path (e.g. a clip's frames) [N, *shape] against the density geodesic between its first and last point,
    solved and both read out with ``settings`` (the path's own readout within ``readout_max_evals``, None: no
    cap). The metric is ``settings.alpha``: a strength is calibrated between keyframes, and there are none."""
    if settings.strength is not None:
        raise core.GeodesicInputError("strength: a path is compared with its geodesic at a given alpha; "
                                      f"expected no strength, got {settings.strength!r}")
    return core.geodesic_efficiency(field, points, settings.alpha, sphere=settings.sphere, method=settings.method,
                                    tol=settings.tolerance, quadrature_tol=settings.accuracy, search=settings.search,
                                    max_evals=settings.max_evals, readout_max_evals=readout_max_evals)


def to_common_radius(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Rescale both ends to their mean norm, as the sphere-constrained solver does, so that all three
    paths share exactly the same endpoints and their densities are comparable point by point."""
    start, end = on_common_sphere(torch.stack([a, b]))
    return start, end


def arc_length_mean(points: Tensor, values: Tensor) -> float:
    """Mean of ``values`` along the polyline per unit Euclidean length (trapezoid rule).

    Unlike the mean over frames it does not depend on how the points are spaced: a geodesic solver
    spaces points evenly in the density metric, which puts more of them in low-density stretches."""
    segments = geometry.segment_lengths(geometry.flat(points).double())
    return float((0.5 * (values[1:] + values[:-1]) * segments).sum() / segments.sum())


@dataclass
class Verdict:
    """An independent image classifier's reading of every frame (the demo's plausibility judge)."""

    labels: np.ndarray        # [N] most likely class per frame
    confidence: np.ndarray    # [N] probability of that class
    confident_probability: float  # a frame is "confident" at or above this probability

    @property
    def mean_confidence(self) -> float:
        return float(self.confidence.mean())

    @property
    def fraction_confident(self) -> float:
        return float((self.confidence >= self.confident_probability).mean())


@dataclass
class PathReport:
    name: str
    latents: Tensor              # [N, *shape] points at the noise level
    readout: core.PathReadout    # log densities relative to the shared start point; the length with the
                                 # same alpha as the geodesic
    frames: Tensor | None = None
    verdict: Verdict | None = None
    perceptual: core.PerceptualMetrics | None = None  # LPIPS between adjacent decoded frames

    def numbers(self, geodesic_length: float) -> dict:
        interior = self.readout.log_density[1:-1]
        numbers = {
            "mean_relative_log_density": float(interior.mean()),
            "arc_mean_relative_log_density": arc_length_mean(self.latents, self.readout.log_density),
            "min_relative_log_density": float(interior.min()),
            "density_weighted_length": self.readout.length,
            "geodesic_efficiency": geodesic_length / self.readout.length,
        }
        if self.verdict is not None:
            inner = dataclasses.replace(self.verdict, labels=self.verdict.labels[1:-1],
                                        confidence=self.verdict.confidence[1:-1])
            numbers |= {"mean_confidence": inner.mean_confidence,
                        "fraction_confident": inner.fraction_confident,
                        "largest_step_share": largest_step_share(self),
                        "frame_labels": [int(label) for label in self.verdict.labels]}
        if self.perceptual is not None:
            numbers |= {"ppl": self.perceptual.ppl, "pdv": self.perceptual.pdv}
        return numbers


def read_reports(field: core.DensityField, paths: dict[str, tuple[Tensor, bool]], alpha: float
                 ) -> dict[str, PathReport]:
    """Density and length of every path (points, and whether they are read along great-circle arcs on the
    sphere or along chords), read by the same field (one score evaluation per point)."""
    reports = {}
    for name, (points, sphere) in paths.items():
        reports[name] = PathReport(name, points, core.read_path(field, points, alpha, sphere=sphere))
    return reports


def compare_paths(model: DiffusersModel, start: Tensor, end: Tensor, settings: GeodesicSettings, *, n_points: int = 17,
                  bvp_callback: Callable | None = None) -> tuple[dict[str, PathReport], core.BVPResult]:
    """Linear, slerp and geodesic paths between two latents [*shape], read out by the same field (one score
    evaluation per point), and the solver's result for the geodesic. ``settings.sphere`` keeps the geodesic on
    the sphere through both ends (the paper's default); linear is read along its chords, slerp along its arcs."""
    reports, solves = compare_keyframe_paths(model, torch.stack([start, end]), settings, n_points=n_points,
                                             bvp_callback=bvp_callback)
    return reports, solves[0]


def compare_keyframe_paths(model: DiffusersModel, keyframes: Tensor, settings: GeodesicSettings, *,
                           loop: bool = False, n_points: int = 17, bvp_callback: Callable | None = None
                           ) -> tuple[dict[str, PathReport], list[core.BVPResult]]:
    """``compare_paths`` through K >= 2 keyframes [K, *shape] in order (and back to the first with ``loop``)
    with exactly ``n_points`` points per path: each segment is linear, slerp or its own geodesic
    (keyframes.solve_through_keyframes), with a share of the frames (and of ``settings.max_evals``) by keyframe
    distance; all keyframes are scaled to their mean norm, so that the three paths share their ends."""
    plan = plan_keyframes(keyframes, frames=n_points, settings=settings, loop=loop, common_sphere=True)
    field = model.field
    geodesic = solve_through_keyframes(lambda _: field, plan, settings,
                                       callback_of=None if bvp_callback is None else lambda _k, _budget: bvp_callback)
    pieces: dict[str, list[Tensor]] = {"linear": [], "slerp": []}
    for segment in geodesic.segments:
        ts = torch.linspace(0.0, 1.0, segment.steps + 1, dtype=segment.start.dtype)
        for name, points in (("linear", core.lerp(segment.start, segment.end, ts)),
                             ("slerp", core.slerp(segment.start, segment.end, ts))):
            # the first segment brings its own first point (slerp's rounding of the keyframe)
            pieces[name].append(points if segment.index == 0 else points[1:])
    # a loop's closing copy of the first keyframe is left out, so the frames repeat seamlessly
    paths = {name: torch.cat(parts)[: n_points] for name, parts in pieces.items()} | {"geodesic": geodesic.points}
    return (read_reports(field, {"linear": (paths["linear"], False), "slerp": (paths["slerp"], True),
                                 "geodesic": (paths["geodesic"], settings.sphere)}, geodesic.settings.alpha),
            geodesic.solves)


@dataclass(frozen=True)
class Comparison:
    """A geodesic against the straight-line baseline of the same geometry: like with like."""
    key: str          # "sphere" or "free" (the demo's --compare value)
    baseline: str     # path name of the baseline
    geodesic: str     # path name of the geodesic
    sphere: bool      # the geodesic is held on the sphere through both ends, as slerp is
    geometry: str     # what both paths share, for the console


COMPARISONS = {
    "sphere": Comparison("sphere", "slerp", "sphere geodesic", True,
                         "both keep the latents' norm (the paper's default)"),
    "free": Comparison("free", "linear", "free geodesic", False, "both may cut inside the sphere"),
}


def compare_like_for_like(model: DiffusersModel, start: Tensor, end: Tensor, comparisons: list[Comparison],
                          settings: GeodesicSettings, *, n_points: int = 17, bvp_callback: Callable | None = None
                          ) -> tuple[dict[str, PathReport], dict[str, core.BVPResult]]:
    """For each comparison, its baseline and its geodesic between the same two latents [*shape] (both
    ends at their mean norm, so every path starts and ends at the same points), read out under the
    comparison's own geometry (``settings`` with the comparison's ``sphere``); and the solver's result per
    comparison key. ``bvp_callback(comparison, progress)`` reports solver progress (a geodesic_core
    ``Progress``)."""
    field = model.field
    a, b = to_common_radius(start, end)
    ts = torch.linspace(0.0, 1.0, n_points, dtype=a.dtype)
    reports, solves = {}, {}
    for comparison in comparisons:
        own = dataclasses.replace(settings, sphere=comparison.sphere)
        callback = None if bvp_callback is None else partial(bvp_callback, comparison)
        plan = plan_keyframes(torch.stack([start, end]), frames=n_points, settings=own, common_sphere=True)
        geodesic = solve_through_keyframes(lambda _: field, plan, own,
                                           callback_of=lambda _k, _budget, callback=callback: callback)
        solves[comparison.key] = geodesic.solves[0]
        baseline = (core.slerp if comparison.sphere else core.lerp)(a, b, ts)
        reports |= read_reports(field, {comparison.baseline: (baseline, comparison.sphere),
                                        comparison.geodesic: (geodesic.points, comparison.sphere)},
                                        geodesic.settings.alpha)
    return reports, solves


def rms_distances(a: Tensor, b: Tensor) -> Tensor:
    """[len(a), len(b)] RMS pixel distance (on the [-1, 1] scale) between every frame of a and of b."""
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double()) / a[0].numel() ** 0.5


def frame_steps(report: PathReport) -> Tensor:
    """[N - 1] RMS change between consecutive decoded frames: one large step is a snap, not a morph."""
    return (report.frames[1:] - report.frames[:-1]).flatten(1).double().pow(2).mean(1).sqrt()


def largest_step_share(report: PathReport) -> float:
    """The largest change between adjacent frames as a share of the whole start-to-end change (RMS): near 1
    the path snaps from one image to the other in one step, 1 / (N - 1) would be an even morph."""
    return float(frame_steps(report).max() / rms_distances(report.frames[:1], report.frames[-1:]).squeeze())


def novel_frame_distances(path: PathReport, reference: PathReport) -> Tensor:
    """[N - 2] for each intermediate frame of ``path``, the RMS distance to the nearest frame of
    ``reference`` anywhere along it: small everywhere means ``path`` shows no picture ``reference`` does
    not also show (perhaps at another position)."""
    return rms_distances(path.frames[1:-1], reference.frames).min(1).values

