"""Geodesics on a loaded model, behind the solve and readout nodes: piecewise BVP through keyframes, IVP
extrapolation, density readout of any path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..geodesic_core import (
    Closure,
    DenoiserField,
    GeodesicInputError,
    Progress,
    geodesic_efficiency,
    one_pass_evals,
    read_path,
    solve_ivp,
)
from ..geodesic_core.fields import Denoiser
from ..geodesic_pipeline.keyframes import check_budget, on_common_sphere, plan_segments, solve_segments
from .bridge import ModelCallSettings, run_with_denoiser, show_progress_text
from .model_facts import check_path_for, noise_kind
from .path import ConditioningSchedule, GeodesicPath, check_conditioning, check_min_points, knot_interval

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher


@dataclass(frozen=True)
class DensitySettings:
    """Which density metric a solve or readout uses (shared by every node that reads the density)."""

    alpha: float
    sphere: bool
    accuracy: float = 1e-3  # relative tolerance of the readout quadrature (geodesic_core.path_integrals)


def _field(kind: str, denoise: Denoiser, sigma: float) -> DenoiserField:
    # No chunk_size: the bridge's denoiser splits every batch into model calls that fit.
    return DenoiserField(denoise, sigma, kind)


def _run_on_model(model: ModelPatcher, schedule: ConditioningSchedule, work, stage: str, path: GeodesicPath,
                  largest_batch: int, total_evals: int, calls: ModelCallSettings):
    """``run_with_denoiser`` for work on latents shaped like ``path``'s, at its sigma."""
    return run_with_denoiser(model, schedule, work, stage=stage, latent_shape=tuple(path.points.shape[1:]),
                             batch_size=calls.batch_size, largest_batch=largest_batch, total_evals=total_evals,
                             sigma=path.sigma, negative=calls.negative, guidance=calls.guidance)


# A keyframes-only segment (no frames between two keyframes) is only read out: one pass and some refinement.
KEYFRAMES_ONLY_BUDGET = 64


def _solve_progress(segment: int, segments: int, tolerance: float, budget: int):
    """solve_bvp callback: the running solve's length and residual as text on the node."""
    def show(progress: Progress) -> None:
        # The paper schedule reads nothing out while it iterates: no length or residual to show then.
        numbers = "" if progress.length is None else (
            f"length {progress.length:.5g}, residual {progress.residual:.3g} (stops below {tolerance:g}), ")
        show_progress_text(f"segment {segment + 1}/{segments}, iteration {progress.step}: {numbers}"
                           f"{progress.score_evals} of {budget} evaluations")
    return show


def _reparametrised(denoise: Denoiser, local: Tensor, target: Tensor) -> Denoiser:
    """``denoise`` seen through a piecewise-linear map of path positions (local knots -> target knots)."""
    local64, target64 = local.double(), target.double()

    def mapped(x: Tensor, sigma: float, t: Tensor | None) -> Tensor:
        if t is None:
            return denoise(x, sigma, target[:1].expand(x.shape[0]))
        before, after, weight = knot_interval(local64, t)
        return denoise(x, sigma, target64[before] + weight * (target64[after] - target64[before]))

    return mapped


def closed_keyframes(keyframes: GeodesicPath) -> tuple[Tensor, ConditioningSchedule]:
    """Keyframe positions and schedule with the first keyframe appended one step after the last."""
    gap = float(keyframes.t[-1] - keyframes.t[0]) / (len(keyframes) - 1)
    end = float(keyframes.t[-1]) + gap
    scale = 1.0 / end
    schedule = keyframes.schedule
    closing_knot = ConditioningSchedule((end,), (schedule.at(float(keyframes.t[0])),))
    schedule = ConditioningSchedule(schedule.knots + closing_knot.knots,
                                    schedule.conditionings + closing_knot.conditionings).shifted(0.0, scale)
    t = torch.cat([keyframes.t, torch.tensor([end])]) * scale
    return t, schedule


def solve_keyframes(model: ModelPatcher, keyframes: GeodesicPath, *, frames: int, loop: bool, spacing: str, method: str,
                    tolerance: float, max_evals: int, density: DensitySettings,
                    calls: ModelCallSettings) -> tuple[GeodesicPath, str]:
    """Piecewise geodesic through every keyframe in order with exactly ``frames`` points.

    Segment k gets a share of the frame steps (by keyframe distance or equally) and of the evaluation
    budget; shared keyframes appear once. With the sphere constraint all keyframes are first scaled to
    their mean norm (the paper scales each pair to its mean). With ``loop`` the last segment returns to the
    first keyframe and the closing copy is left out, so the frames repeat seamlessly. Also returns a
    report with one line per segment.
    """
    check_path_for(model, keyframes, "keyframes")
    kind = noise_kind(model)
    check_min_points(keyframes, 2, "keyframes", "a geodesic between keyframes")
    for i, conditioning in enumerate(keyframes.schedule.conditionings):
        check_conditioning(conditioning, f"keyframes (conditioning of keyframe {i})")
    if frames < 3:
        raise GeodesicInputError(f"frames: expected at least 3 frames, got {frames}")
    t, schedule = closed_keyframes(keyframes) if loop else (keyframes.t, keyframes.schedule)
    n_segments = len(t) - 1
    total_steps = frames if loop else frames - 1
    if total_steps < n_segments:
        raise GeodesicInputError(
            f"frames: {len(keyframes)} keyframes{' in a loop' if loop else ''} need at least "
            f"{n_segments + (0 if loop else 1)} frames, got {frames}")
    ends = on_common_sphere(keyframes.points) if density.sphere else keyframes.points
    if loop:
        ends = torch.cat([ends, ends[:1]])
    plan = plan_segments(ends, total_steps, spacing=spacing, max_evals=max_evals, purpose=f"the {frames} frames")
    steps = plan.steps

    def solve_on_model(denoise, device):
        pieces, densities, report = [ends[:1].to(device)], [torch.zeros(1, dtype=torch.float64)], []
        end_tangent = None

        def field_of(k: int) -> DenoiserField:
            return _field(kind, _reparametrised(denoise, torch.tensor([0.0, 1.0]), t[k:k + 2]), keyframes.sigma)

        for segment in solve_segments(field_of, ends.to(device), plan, alpha=density.alpha, sphere=density.sphere,
                                      method=method, tol=tolerance, quadrature_tol=density.accuracy,
                                      callback_of=lambda k, budget: _solve_progress(k, len(steps), tolerance, budget)):
            result, k = segment.solve, segment.index
            if result is None:
                log_density = read_path(field_of(k), segment.points, density.alpha, sphere=density.sphere,
                                        tol=density.accuracy, max_evals=KEYFRAMES_ONLY_BUDGET).log_density
                report.append(f"segment {k + 1}: keyframes only (no frames in between)")
                end_tangent = None
            else:
                log_density = result.log_density
                end_tangent = result.end_tangent / segment.steps
                report.append(
                    f"segment {k + 1}: {segment.steps + 1} frames, length {result.length:.5g}, residual "
                    f"{result.residual:.3g}, {'converged' if result.converged else 'not converged'} after "
                    f"{result.iterations} iterations, {result.score_evals} score evaluations")
            pieces.append(segment.points[1:])
            densities.append(densities[-1][-1] + log_density[1:].cpu())
        return torch.cat(pieces).float().cpu(), torch.cat(densities), end_tangent, report

    # Every solve keeps within its budget, its readout included; a keyframes-only segment reads out its ends.
    most_evals = sum(budget if s > 1 else KEYFRAMES_ONLY_BUDGET for budget, s in zip(plan.budgets, steps, strict=True))
    path_points, log_density, end_tangent, lines = _run_on_model(model, schedule, solve_on_model, "solve", keyframes,
                                                                 max(steps) + 1, most_evals, calls)
    path_t = torch.cat([t[:1]] + [torch.linspace(float(t[k]), float(t[k + 1]), s + 1)[1:]
                                  for k, s in enumerate(steps)])
    if loop:
        path_points, path_t, log_density, end_tangent = path_points[:-1], path_t[:-1], log_density[:-1], None
    path = GeodesicPath(path_points, path_t, keyframes.noise_level, keyframes.sigma, keyframes.model_key,
                        schedule, log_density=log_density,
                        end_tangent=None if end_tangent is None else end_tangent.float().cpu())
    return path, "\n".join(lines)


def extrapolate(model: ModelPatcher, path: GeodesicPath, *, frames: int, use_tangent: bool, backward: bool,
                density: DensitySettings, calls: ModelCallSettings) -> GeodesicPath:
    """``frames`` new points shot along the geodesic from the path's end (or start), one frame step apart.

    The step is the path's end tangent per frame (a solved BVP knows it) or its last frame difference;
    the new frames keep the conditioning of the keyframe nearest the end they continue.
    """
    check_path_for(model, path, "path")
    kind = noise_kind(model)
    check_min_points(path, 2, "path", "extrapolation (a direction from two frames)")
    if frames < 1:
        raise GeodesicInputError(f"frames: expected at least 1 new frame, got {frames}")
    points = path.points.flip(0) if backward else path.points
    step = points[-1] - points[-2]
    if use_tangent and path.end_tangent is not None and not backward:
        step = path.end_tangent
    end_t = float(path.t[0] if backward else path.t[-1])
    schedule = ConditioningSchedule((0.0,), (path.schedule.at(end_t),))

    def shoot_frames(denoise, device):
        field = _field(kind, denoise, path.sigma)
        result = solve_ivp(field, points[-1].to(device), step.to(device) * frames, n_steps=frames,
                           alpha=density.alpha, sphere=density.sphere, quadrature_tol=density.accuracy)
        return result.points[1:].float().cpu(), result.log_density[1:].cpu()

    # RK4: four score evaluations per step, then the density readout: the last point and at least 3
    # quadrature points per step (more where the density changes fast).
    new_points, log_density = _run_on_model(model, schedule, shoot_frames, "extrapolation", path, 1,
                                            4 * frames + 1 + 3 * frames, calls)
    if backward:
        new_points, log_density = new_points.flip(0), log_density.flip(0)
    return GeodesicPath(new_points, torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1),
                        path.noise_level, path.sigma, path.model_key, schedule,
                        log_density=log_density - log_density[0])


@dataclass
class DensityReadoutResult:
    """What the Density Readout node reports about a path (formatted by nodes/plot.py)."""

    t: Tensor
    log_density: Tensor          # [N] float64, relative to the first frame
    log_density_error: Tensor    # [N] the quadrature's error bound on log_density
    cumulative_distance: Tensor  # [N] float64, geodesic distance from the first frame
    length: float
    length_error: float
    euclidean_length: float
    residual: float
    score_evals: int             # of the readout itself (frames and quadrature points)
    efficiency: float            # -1 when the geodesic between the ends was not solved
    geodesic_length: float
    closure: Closure | None      # the path and the geodesic end at the same point: how far their ends disagree

    @property
    def min_log_density(self) -> float:
        return float(self.log_density.min())


def read_out(model: ModelPatcher, path: GeodesicPath, *, compare_geodesic: bool, method: str, tolerance: float,
             max_evals: int, density: DensitySettings, calls: ModelCallSettings) -> DensityReadoutResult:
    """Density and distance along any path; optionally its efficiency against the geodesic between its
    ends."""
    check_path_for(model, path, "path")
    kind = noise_kind(model)
    check_min_points(path, 2, "path", "a density readout")
    if compare_geodesic:
        check_budget(max_evals, one_pass_evals(len(path)), "the geodesic between the path's ends")
    # The path's own readout may refine within the same budget (at least one pass over its frames).
    readout_budget = max(max_evals, one_pass_evals(len(path)))
    local = torch.linspace(0.0, 1.0, len(path))

    def read_path_on_model(denoise, device):
        field = _field(kind, _reparametrised(denoise, local, path.t), path.sigma)
        points = path.points.to(device)
        if compare_geodesic:
            result = geodesic_efficiency(field, points, density.alpha, sphere=density.sphere, method=method,
                                         tol=tolerance, quadrature_tol=density.accuracy, max_evals=max_evals,
                                         readout_max_evals=readout_budget)
            readout, efficiency, geodesic_length = result.path, result.efficiency, result.geodesic.length
            gap = result.closure
        else:
            readout = read_path(field, points, density.alpha, sphere=density.sphere, t=local, tol=density.accuracy,
                                max_evals=readout_budget)
            efficiency, geodesic_length, gap = -1.0, -1.0, None
        return DensityReadoutResult(path.t.clone(), readout.log_density.cpu(), readout.log_density_error.cpu(),
                                    readout.cumulative_length.cpu(), readout.length, readout.length_error,
                                    readout.euclidean_length, readout.residual, readout.score_evals, efficiency,
                                    geodesic_length, gap)

    return _run_on_model(model, path.schedule, read_path_on_model, "readout", path, len(path),
                         readout_budget + (max_evals if compare_geodesic else 0), calls)
