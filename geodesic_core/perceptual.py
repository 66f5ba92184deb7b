"""Perceptual evaluation of frame sequences (LPIPS, PPL, PDV) and re-timing frames to be perceptually even.

PPL is the sum of the LPIPS distances between adjacent frames (the perceptual path length the interpolation
papers report); PDV is the standard deviation of those distances (0 = every step looks equally large).

Re-timing works on any path that can be rendered at positions t in [0, 1] (``render(t) -> images``): it
measures per-step LPIPS on a set of rendered frames, places N frames at equal cumulative LPIPS by inverting
the piecewise-linear cumulative distance, and renders those. ``"official"`` is the re-scheduler of the paper's
code (taken from DiffMorpher's AlphaScheduler): it measures on a uniform grid in t. ``"adaptive"`` (ours)
starts from the path's own frames and spends the measurement budget on bisecting the largest perceptual
steps, where the uniform grid cannot see inside a sudden change.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import knot_interval
from .lpips import LPIPS, load_lpips
from .progress import Callback, Progress
from .validation import GeodesicInputError, check_path

MIN_LPIPS_SIDE = 64  # frames smaller than this are upscaled (bilinear) before LPIPS: the nets need room
MAX_UPSCALED_PIXELS = 64 * 4096  # per upscaled frame: aspect ratios up to 1:64 (a 64 x 4096 px strip)
RETIME_METHODS = ("adaptive", "official")
# Positions closer than this are the same frame: a path's own t is float32, a uniform grid float64.
SAME_POSITION = 1e-6


@dataclass
class PerceptualMetrics:
    steps: Tensor  # [N-1] float64 LPIPS between frames i and i+1

    @property
    def ppl(self) -> float:
        return float(self.steps.sum())

    @property
    def pdv(self) -> float:
        return float(self.steps.std(correction=0)) if len(self.steps) else 0.0

    @property
    def cumulative(self) -> Tensor:
        """[N] float64 cumulative LPIPS from the first frame."""
        return torch.cat([self.steps.new_zeros(1), self.steps.cumsum(0)])

    def numbers(self) -> dict:
        return {"ppl": self.ppl, "pdv": self.pdv, "max_step": float(self.steps.max()) if len(self.steps) else 0.0}


def lpips_size(frames: Tensor, name: str = "frames") -> tuple[int, int]:
    """(height, width) the frames [N, 1 or 3 channels, H, W] are measured at: their own, or upscaled so the
    smaller side is MIN_LPIPS_SIDE. Refuses an upscaled frame over MAX_UPSCALED_PIXELS (a 1 px high strip would
    otherwise become a 64 px high one 64 times as wide)."""
    if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[1] not in (1, 3):
        shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise GeodesicInputError(f"{name}: expected frames [N, 1 or 3 channels, height, width], got {shape}")
    height, width = frames.shape[-2:]
    side = min(height, width)
    if side >= MIN_LPIPS_SIDE:
        return height, width
    scale = MIN_LPIPS_SIDE / side
    size = (round(height * scale), round(width * scale))
    if size[0] * size[1] > MAX_UPSCALED_PIXELS:
        raise GeodesicInputError(
            f"{name}: {height}x{width} px frames would be upscaled to {size[0]}x{size[1]} px for LPIPS (the smaller "
            f"side to {MIN_LPIPS_SIDE} px), over the cap of {MAX_UPSCALED_PIXELS:,} px per frame; crop or resize "
            f"them to a less extreme aspect ratio (at most 1:{MAX_UPSCALED_PIXELS // MIN_LPIPS_SIDE ** 2})")
    return size


def lpips_ready(frames: Tensor, name: str = "frames") -> Tensor:
    """[N, C, H, W] frames in [-1, 1] with 1 or 3 channels -> RGB at the size ``lpips_size`` gives."""
    size = lpips_size(frames, name)
    frames = frames.float().expand(-1, 3, -1, -1)
    if tuple(frames.shape[-2:]) != size:
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    return frames


def step_lpips(frames: Tensor, lpips: LPIPS | None = None, *, chunk_size: int | None = None,
               callback: Callback | None = None) -> Tensor:
    """[N-1] float64 LPIPS between adjacent frames of [N, C, H, W] frames in [-1, 1].

    Frames go through the network ``chunk_size`` at a time (default all) and only the last frame's features
    are kept from one chunk to the next, so memory grows with the chunk, not with N; each frame's features
    are computed once. ``callback`` gets a ``Progress`` after every chunk (step: frames done of ``total``,
    points: the chunk); raise in it to cancel."""
    check_path(frames, "frames")
    lpips_size(frames)  # refuse bad frames before any work
    lpips = lpips or load_lpips()
    steps, previous, done = [], None, 0
    for chunk in frames.split(chunk_size or len(frames)):
        features = lpips.features(lpips_ready(chunk))
        if previous is not None:  # the step from the previous chunk's last frame to this chunk's first
            steps.append(lpips.distance_of_features(previous, [f[:1] for f in features]).double().cpu())
        if len(features[0]) > 1:
            steps.append(lpips.distance_of_features([f[:-1] for f in features], [f[1:] for f in features])
                         .double().cpu())
        # A copy, and the chunk's features dropped: a view (or the name) would keep them all alive while the next
        # chunk's are computed.
        previous = [f[-1:].clone() for f in features]
        del features
        done += len(chunk)
        if callback is not None:
            callback(Progress(step=done, total=len(frames), points=chunk))
    return torch.cat(steps)


def perceptual_metrics(frames: Tensor, lpips: LPIPS | None = None, *, chunk_size: int | None = None,
                       callback: Callback | None = None) -> PerceptualMetrics:
    """PPL, PDV and per-step LPIPS of a frame sequence [N, C, H, W] in [-1, 1] (N >= 2); ``callback`` as in
    ``step_lpips``."""
    return PerceptualMetrics(step_lpips(frames, lpips, chunk_size=chunk_size, callback=callback))


def even_positions(t: Tensor, cumulative: Tensor, n: int) -> Tensor:
    """[n] positions where the piecewise-linear cumulative distance through (t, cumulative) reaches n equal
    fractions of its total (the first and last are t[0] and t[-1]). Flat stretches are skipped."""
    t, cumulative = t.double().cpu(), cumulative.double().cpu()
    total = float(cumulative[-1] - cumulative[0])
    if n < 2:
        raise GeodesicInputError(f"frames: expected at least 2, got {n}")
    if not total > 0:
        return torch.linspace(float(t[0]), float(t[-1]), n, dtype=torch.float64)
    targets = cumulative[0] + torch.linspace(0.0, total, n, dtype=torch.float64)
    before, after, fraction = knot_interval(cumulative, targets, right=False)
    positions = t[before] + fraction * (t[after] - t[before])
    positions[0], positions[-1] = t[0], t[-1]
    return positions


def interpolate_points(points: Tensor, t: Tensor, new_t: Tensor) -> Tensor:
    """Points of the polyline through ``points`` [N, *shape] at positions ``t`` [N], read at ``new_t``."""
    before, after, fraction = knot_interval(t.double().cpu(), new_t.double().cpu())
    fraction = fraction.to(points.device, points.dtype).reshape(-1, *([1] * (points.ndim - 1)))
    index_before, index_after = before.to(points.device), after.to(points.device)
    return torch.lerp(points[index_before], points[index_after], fraction)  # exact at both ends


@dataclass
class Retimed:
    t: Tensor                      # [n] positions of the returned frames
    frames: Tensor                 # [n, C, H, W] the re-timed frames
    metrics: PerceptualMetrics     # of the returned frames
    measured_t: Tensor             # [M] positions of the frames the path was measured on
    measured: PerceptualMetrics    # per-step LPIPS of those frames
    renders: int                   # frames this call rendered (measurement + placement; reused ones not counted)
    method: str


def _nearest_known(new_t: Tensor, known_t: Tensor) -> tuple[Tensor, Tensor]:
    """For each of ``new_t``: the index of the nearest of ``known_t`` (ascending), and whether it is the same
    position (within SAME_POSITION), so its frame is reused."""
    after = torch.searchsorted(known_t, new_t).clamp(max=len(known_t) - 1)
    before = (after - 1).clamp(min=0)
    index = torch.where((known_t[before] - new_t).abs() < (known_t[after] - new_t).abs(), before, after)
    return index, (known_t[index] - new_t).abs() <= SAME_POSITION


def _bisection_rounds(extra: int) -> list[int]:
    """Midpoints ``bisect_largest_steps`` renders in each round: up to half the remaining budget, at least 1."""
    rounds = []
    while extra > 0:
        rounds.append(max(1, math.ceil(extra / 2)))
        extra -= rounds[-1]
    return rounds


def render_at(render: Callable[[Tensor], Tensor], new_t: Tensor, known_t: Tensor, known: Tensor
              ) -> tuple[Tensor, int]:
    """Frames at ``new_t``: those already in (known_t, known) reused, the others rendered in one batch."""
    index, reuse = _nearest_known(new_t, known_t)
    out = known.new_empty(len(new_t), *known.shape[1:])
    out[reuse] = known[index[reuse]]
    missing = int((~reuse).sum())
    if missing:
        out[~reuse] = render(new_t[~reuse]).to(known)
    return out, missing


def bisect_largest_steps(render: Callable[[Tensor], Tensor], t: Tensor, frames: Tensor, extra: int, lpips: LPIPS,
                         chunk_size: int | None, callback: Callback | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Spend ``extra`` renders on midpoints of the largest perceptual steps, in rounds of up to half the
    remaining budget (each round one batched render, so a sudden change is narrowed down round by round);
    returns the grown (t, frames, steps)."""
    steps = step_lpips(frames, lpips, chunk_size=chunk_size, callback=callback)
    for midpoints in _bisection_rounds(extra):
        chosen = steps.argsort(descending=True)[:midpoints].sort().values
        mid_t = 0.5 * (t[chosen] + t[chosen + 1])
        t = torch.cat([t, mid_t])
        frames = torch.cat([frames, render(mid_t).to(frames)])
        order = t.argsort()
        t, frames = t[order], frames[order]
        steps = step_lpips(frames, lpips, chunk_size=chunk_size, callback=callback)
    return t, frames, steps


def retime(render: Callable[[Tensor], Tensor], n: int, *, method: str = "adaptive", measure: int | None = None,
           initial: tuple[Tensor, Tensor] | None = None, lpips: LPIPS | None = None,
           chunk_size: int | None = None, callback: Callback | None = None) -> Retimed:
    """Exactly ``n`` frames of the path ``render(t [K] float64 in [0, 1]) -> frames [K, C, H, W] in [-1, 1]``,
    equally spaced in LPIPS.

    The path is measured on ``measure`` frames (default 2n - 1), then the n frames are placed at equal
    cumulative LPIPS and rendered. ``"official"`` measures on a uniform grid in t; ``"adaptive"`` measures on
    the ``initial`` frames (default: n uniform) plus midpoints of the largest steps. ``initial`` = (t [K]
    ascending from 0 to 1, frames [K, ...]) are frames already rendered (the plain decode): every frame at a
    position in it is reused, not rendered again. Needs ``measure`` >= the number of initial frames.
    ``callback`` gets every LPIPS pass's progress (``step_lpips``).
    """
    if method not in RETIME_METHODS:
        raise GeodesicInputError(f"method: expected one of {', '.join(RETIME_METHODS)}, got {method!r}")
    if n < 2:
        raise GeodesicInputError(f"frames: expected at least 2, got {n}")
    lpips = lpips or load_lpips()
    measure = 2 * n - 1 if measure is None else measure
    if initial is None:
        start_t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        initial = (start_t, render(start_t))
        renders = n
    else:
        renders = 0
    known_t = initial[0].double().cpu()
    if measure < max(2, len(known_t)):
        raise GeodesicInputError(
            f"measure: expected at least the {len(known_t)} frames the path starts with (and 2), got {measure}")
    if method == "official":
        t = torch.linspace(0.0, 1.0, measure, dtype=torch.float64)
        frames, rendered = render_at(render, t, known_t, initial[1])
        steps = step_lpips(frames, lpips, chunk_size=chunk_size, callback=callback)
    else:
        rendered = measure - len(known_t)
        t, frames, steps = bisect_largest_steps(render, known_t, initial[1], rendered, lpips, chunk_size, callback)
    measured = PerceptualMetrics(steps)
    new_t = even_positions(t, measured.cumulative, n)
    out, placed = render_at(render, new_t, t, frames)
    return Retimed(new_t, out, perceptual_metrics(out, lpips, chunk_size=chunk_size, callback=callback), t, measured,
                   renders + rendered + placed, method)


@dataclass(frozen=True)
class RetimeWork:
    """What a ``retime`` will do, counted before it runs (for a progress bar over it)."""

    renders: int       # the most frames it renders: those it measures (exactly) and the n - 2 between the ends
    lpips_frames: int  # frames through LPIPS: every measuring pass, then the n placed frames


def retime_work(n: int, *, method: str, measure: int, known_t: Tensor) -> RetimeWork:
    """The work of ``retime(render, n, method=method, measure=measure, initial=(known_t, frames))``. Its placed
    frames' ends are measured frames, always reused; the others are rendered unless one lands on a measured
    position, so ``renders`` is exact up to such coincidences."""
    known_t = known_t.double().cpu()
    if method == "official":
        measured = int((~_nearest_known(torch.linspace(0.0, 1.0, measure, dtype=torch.float64), known_t)[1]).sum())
        passes = [measure]
    else:
        rounds = _bisection_rounds(measure - len(known_t))
        measured = sum(rounds)
        passes = list(itertools.accumulate(rounds, initial=len(known_t)))
    return RetimeWork(measured + n - 2, sum(passes) + n)


def even_in_distance(points: Tensor, t: Tensor, cumulative_distance: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(positions [n], points [n, *shape]) spaced evenly in a distance already known along the path (e.g. a
    readout's ``cumulative_length``): no rendering, points interpolated linearly between the path's points."""
    check_path(points, "points")
    if len(t) != len(points) or len(cumulative_distance) != len(points):
        raise GeodesicInputError(
            f"t and cumulative_distance: expected one value per point ({len(points)}), got {len(t)} and "
            f"{len(cumulative_distance)}")
    new_t = even_positions(t, cumulative_distance, n)
    return new_t, interpolate_points(points, t, new_t)


__all__ = ["MIN_LPIPS_SIDE", "RETIME_METHODS", "PerceptualMetrics", "Retimed", "even_in_distance", "even_positions",
           "interpolate_points", "lpips_ready", "perceptual_metrics", "retime", "step_lpips"]
