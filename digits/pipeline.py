"""The full geodesic pipeline on the digits model, shared by the demo (main.py) and the benchmark:
invert two images to the noise level, solve the density geodesic, decode frames, read out density,
distance and the judge's verdict for the linear, slerp and geodesic paths between the same endpoints.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from geodesic_core import BVPResult, DenoiserField, generate, invert, lerp, read_path, slerp, solve_bvp
from geodesic_core.diffusers_adapter import DiffusersDenoiser, denoising_sigmas, sigma_at_noise_level
from geodesic_core.geometry import allocate_steps, flat, segment_lengths, to_sphere
from geodesic_core.lpips import LPIPS, load_lpips
from geodesic_core.perceptual import PerceptualMetrics, interpolate_points, perceptual_metrics, retime

from .judge import Verdict, judge_frames
from .model import load_trained_model
from .settings import ALPHA, NOISE_LEVEL, ODE_STEPS

PATH_NAMES = ("linear", "slerp", "geodesic")
# Re-timing variants compared on every path: (name, method, frames measured as a multiple of the path's N):
# the paper code's rescheduler as it ships (measures on the N frames it re-times), the same rule given our
# measurement budget (2N - 1 frames), and ours (the N frames plus N - 1 bisections of the largest steps).
RETIMINGS = (("official", "official", 1), ("official_2n", "official", 2), ("adaptive", "adaptive", 2))


@dataclass
class DigitsModel:
    """A diffusers denoiser at one noise level with its ODE schedules (any diffusers UNet, not only digits)."""

    denoise: DiffusersDenoiser
    sigma: float            # the noise level the geodesic lives at
    schedule: Tensor        # descending sigmas from `sigma` to 0 (flipped for inversion)
    decode_schedule: Tensor | None = None  # decoding's own step count; None: the same as `schedule`

    @property
    def field(self) -> DenoiserField:
        return DenoiserField(self.denoise, self.sigma)


def diffusion_at_level(denoise: DiffusersDenoiser, scheduler, noise_level: float, invert_steps: int,
                       decode_steps: int | None = None) -> DigitsModel:
    """``denoise`` at a fraction of ``scheduler``'s schedule, with inversion and decoding schedules."""
    sigma = sigma_at_noise_level(scheduler, noise_level)
    decode_schedule = None if decode_steps is None else denoising_sigmas(scheduler, sigma, decode_steps)
    return DigitsModel(denoise, sigma, denoising_sigmas(scheduler, sigma, invert_steps), decode_schedule)


def load_digits_model(noise_level: float = NOISE_LEVEL, ode_steps: int = ODE_STEPS,
                      decode_steps: int | None = None) -> DigitsModel:
    unet, scheduler = load_trained_model()
    return diffusion_at_level(DiffusersDenoiser(unet, scheduler), scheduler, noise_level, ode_steps, decode_steps)


def encode(model: DigitsModel, images: Tensor) -> Tensor:
    """Clean [B, 1, 8, 8] images -> latents at the noise level (deterministic DDIM inversion)."""
    return invert(model.denoise, images, model.schedule.flip(0))


def encode_pairs(model: DigitsModel, images: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    """Latents [P, 2, 1, 8, 8] of the image pairs (indices into ``images``), inverted in one batch."""
    return encode(model, images[[k for pair in pairs for k in pair]]).reshape(len(pairs), 2, *images.shape[1:])


def denoise_to_clean(model: DigitsModel, latents: Tensor) -> Tensor:
    """Latents at the noise level -> the clean end of the probability-flow ODE (deterministic generation)."""
    schedule = model.schedule if model.decode_schedule is None else model.decode_schedule
    return generate(model.denoise, latents, schedule)


def decode(model: DigitsModel, latents: Tensor) -> Tensor:
    """Latents at the noise level -> clean images in [-1, 1]."""
    return denoise_to_clean(model, latents).clamp(-1.0, 1.0)


def to_common_radius(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Rescale both ends to their mean norm, as the sphere-constrained solver does, so that all three
    paths share exactly the same endpoints and their densities are comparable point by point."""
    radius = 0.5 * (a.norm() + b.norm())
    return a * (radius / a.norm()), b * (radius / b.norm())


def arc_length_mean(points: Tensor, values: Tensor) -> float:
    """Mean of ``values`` along the polyline per unit Euclidean length (trapezoid rule).

    Unlike the mean over frames it does not depend on how the points are spaced: a geodesic solver
    spaces points evenly in the density metric, which puts more of them in low-density stretches."""
    segments = segment_lengths(flat(points).double())
    return float((0.5 * (values[1:] + values[:-1]) * segments).sum() / segments.sum())


@dataclass
class PathReport:
    name: str
    latents: Tensor        # [N, 1, 8, 8] points at the noise level
    log_density: Tensor    # [N] float64, relative to the shared start point
    log_density_error: Tensor  # [N] the readout's bound on the quadrature error of log_density
    length: float          # density-weighted length with the same alpha as the geodesic
    frames: Tensor | None = None
    verdict: Verdict | None = None
    perceptual: PerceptualMetrics | None = None  # LPIPS between adjacent decoded frames

    def numbers(self, geodesic_length: float) -> dict:
        interior = self.log_density[1:-1]
        numbers = {
            "mean_relative_log_density": float(interior.mean()),
            "arc_mean_relative_log_density": arc_length_mean(self.latents, self.log_density),
            "min_relative_log_density": float(interior.min()),
            "density_weighted_length": self.length,
            "geodesic_efficiency": geodesic_length / self.length,
        }
        if self.verdict is not None:
            inner = Verdict(self.verdict.labels[1:-1], self.verdict.confidence[1:-1])
            numbers |= {"mean_confidence": inner.mean_confidence,
                        "fraction_confident": inner.fraction_confident,
                        "largest_step_share": largest_step_share(self),
                        "frame_labels": [int(label) for label in self.verdict.labels]}
        if self.perceptual is not None:
            numbers |= {"ppl": self.perceptual.ppl, "pdv": self.perceptual.pdv}
        return numbers


def compare_paths(model: DigitsModel, start: Tensor, end: Tensor, *, alpha: float = ALPHA, n_points: int = 17,
                  sphere: bool = True, method: str = "default", tol: float = 1e-3, max_evals: int | None = None,
                  bvp_callback: Callable | None = None) -> tuple[dict[str, PathReport], BVPResult]:
    """Linear, slerp and geodesic paths between two latents [1, 8, 8], read out by the same field
    (one score evaluation per point), and the solver's result for the geodesic. ``sphere`` keeps the
    geodesic on the sphere through both ends (the paper's default); linear and slerp are unchanged."""
    field = model.field
    a, b = to_common_radius(start, end)
    ts = torch.linspace(0.0, 1.0, n_points, dtype=a.dtype)
    geodesic = solve_bvp(field, a, b, n_points=n_points, alpha=alpha, sphere=sphere, method=method, tol=tol,
                         max_evals=max_evals, callback=bvp_callback)
    paths = {"linear": lerp(a, b, ts), "slerp": slerp(a, b, ts), "geodesic": geodesic.points}
    return read_reports(field, paths, alpha, sphere=True), geodesic


def read_reports(field: DenoiserField, paths: dict[str, Tensor], alpha: float, sphere: bool
                 ) -> dict[str, PathReport]:
    """Density and length of every path, read by the same field (one score evaluation per point)."""
    reports = {}
    for name, points in paths.items():
        readout = read_path(field, points, alpha, sphere=sphere)
        reports[name] = PathReport(name, points, readout.log_density, readout.log_density_error, readout.length)
    return reports


def compare_keyframe_paths(model: DigitsModel, keyframes: Tensor, *, loop: bool = False, alpha: float = ALPHA,
                           n_points: int = 17, sphere: bool = True, method: str = "default", tol: float = 1e-3,
                           max_evals: int | None = None) -> tuple[dict[str, PathReport], list[BVPResult]]:
    """``compare_paths`` through K >= 2 keyframes [K, *shape] in order (and back to the first with ``loop``)
    with exactly ``n_points`` points per path: each segment is linear, slerp or its own geodesic, with a
    share of the frames (and of ``max_evals``) by keyframe distance; all keyframes are scaled to their
    mean norm. Two keyframes without a loop give exactly ``compare_paths``."""
    if len(keyframes) == 2 and not loop:
        reports, geodesic = compare_paths(model, keyframes[0], keyframes[1], alpha=alpha, n_points=n_points,
                                          sphere=sphere, method=method, tol=tol, max_evals=max_evals)
        return reports, [geodesic]
    radius = flat(keyframes).norm(dim=-1).mean()
    ends = to_sphere(flat(keyframes), radius).reshape(keyframes.shape)
    if loop:
        ends = torch.cat([ends, ends[:1]])
    steps = allocate_steps(segment_lengths(flat(ends).double()).tolist(), n_points if loop else n_points - 1)
    interior = sum(s - 1 for s in steps)
    pieces: dict[str, list[Tensor]] = {name: [ends[:1]] for name in PATH_NAMES}
    solves = []
    for k, n_steps in enumerate(steps):
        a, b = ends[k], ends[k + 1]
        ts = torch.linspace(0.0, 1.0, n_steps + 1, dtype=a.dtype)
        if n_steps == 1:
            geodesic_points = torch.stack([a, b])
        else:
            budget = None if max_evals is None else max(10, max_evals * (n_steps - 1) // interior)
            solves.append(solve_bvp(model.field, a, b, n_points=n_steps + 1, alpha=alpha, sphere=sphere,
                                    method=method, tol=tol, max_evals=budget))
            geodesic_points = solves[-1].points
        for name, points in (("linear", lerp(a, b, ts)), ("slerp", slerp(a, b, ts)), ("geodesic", geodesic_points)):
            pieces[name].append(points[1:])
    # a loop's closing copy of the first keyframe is left out, so the frames repeat seamlessly
    paths = {name: torch.cat(parts)[: n_points] for name, parts in pieces.items()}
    return read_reports(model.field, paths, alpha, sphere=True), solves


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


def compare_like_for_like(model: DigitsModel, start: Tensor, end: Tensor, comparisons: list[Comparison], *,
                          alpha: float = ALPHA, n_points: int = 17, max_evals: int | None = None,
                          bvp_callback: Callable | None = None
                          ) -> tuple[dict[str, PathReport], dict[str, BVPResult]]:
    """For each comparison, its baseline and its geodesic between the same two latents [1, 8, 8] (both
    ends at their mean norm, so every path starts and ends at the same points), read out under the
    comparison's own geometry; and the solver's result per comparison key.
    ``bvp_callback(comparison, progress)`` reports solver progress (a geodesic_core ``Progress``)."""
    field = model.field
    a, b = to_common_radius(start, end)
    ts = torch.linspace(0.0, 1.0, n_points, dtype=a.dtype)
    reports, solves = {}, {}
    for comparison in comparisons:
        callback = None if bvp_callback is None else partial(bvp_callback, comparison)
        solves[comparison.key] = solve = solve_bvp(
            field, a, b, n_points=n_points, alpha=alpha, sphere=comparison.sphere, method="default",
            max_evals=max_evals, callback=callback)
        baseline = (slerp if comparison.sphere else lerp)(a, b, ts)
        reports |= read_reports(field, {comparison.baseline: baseline, comparison.geodesic: solve.points}, alpha,
                                sphere=comparison.sphere)
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


def decode_and_judge(model: DigitsModel, reports: dict[str, PathReport], judge, lpips: LPIPS | None = None) -> None:
    """Decode every path's points in one batch, let the independent classifier read the frames and measure
    the LPIPS between adjacent frames."""
    latents = torch.cat([report.latents for report in reports.values()])
    frames = decode(model, latents).split([len(report.latents) for report in reports.values()])
    for report, path_frames in zip(reports.values(), frames, strict=True):
        report.frames = path_frames
        report.verdict = judge_frames(judge, path_frames)
        report.perceptual = perceptual_metrics(path_frames, lpips or load_lpips())


def retimed_variants(model: DigitsModel, report: PathReport, judge, lpips: LPIPS) -> dict:
    """PPL, PDV and the judge's confidence of the plain decoded frames and of every re-timing in RETIMINGS,
    with the extra frames each re-timing decoded. Latents between path points are interpolated linearly."""
    n = len(report.latents)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)

    def render(positions: Tensor) -> Tensor:
        return decode(model, interpolate_points(report.latents, t, positions))

    plain = report.perceptual
    numbers = {"plain": {**plain.numbers(), "steps": plain.steps.tolist(), "extra_decodes": 0}}
    for name, method, multiple in RETIMINGS:
        result = retime(render, n, method=method, measure=multiple * n - (multiple - 1), initial=(t, report.frames),
                        lpips=lpips)
        inner = judge_frames(judge, result.frames[1:-1])
        numbers[name] = {**result.metrics.numbers(), "steps": result.metrics.steps.tolist(),
                         "mean_confidence": inner.mean_confidence, "fraction_confident": inner.fraction_confident,
                         "extra_decodes": result.renders, "t": result.t.tolist(), "frames": result.frames}
    return numbers
