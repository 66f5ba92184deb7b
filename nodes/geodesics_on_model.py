"""Geodesics on a loaded model, behind the solve and readout nodes: piecewise BVP through keyframes, IVP
extrapolation, density readout of any path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..geodesic_pipeline.compare import against_geodesic
from ..geodesic_pipeline.core import (
    READOUT_PASSES,
    SOLVE_PASSES,
    Denoiser,
    DenoiserField,
    EfficiencyResult,
    GeodesicInputError,
    PathReadout,
    Progress,
    check_budget,
    knot_interval,
    one_pass_evals,
    read_path,
    solve_ivp,
)
from ..geodesic_pipeline.keyframes import (
    GeodesicSettings,
    on_common_sphere,
    plan_keyframes,
    solve_through_keyframes,
    with_strength_alpha,
)
from ..geodesic_pipeline.strength import StrengthCalibration, strength_evals
from .bridge import ModelCallSettings, NodeBar, run_with_denoiser, show_progress_text
from .model_facts import check_path_for, noise_kind
from .path import ConditioningSchedule, GeodesicPath, check_conditioning, check_min_points

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher


def _field(kind: str, denoise: Denoiser, sigma: float) -> DenoiserField:
    # No chunk_size: the bridge's denoiser splits every batch into model calls that fit.
    return DenoiserField(denoise, sigma, kind)


def _run_on_model(model: ModelPatcher, schedule: ConditioningSchedule, work, stage: str, path: GeodesicPath,
                  largest_batch: int, total_evals: int, calls: ModelCallSettings, expected_evals: int | None = None,
                  bar: NodeBar | None = None):
    """``run_with_denoiser`` for work on latents shaped like ``path``'s, at its sigma. A readout shows no latent
    preview: the node's picture is its plot, which a preview of noisy x0 estimates would replace."""
    return run_with_denoiser(model, schedule, work, stage=stage, latent_shape=tuple(path.points.shape[1:]),
                             batch_size=calls.batch_size, largest_batch=largest_batch, total_evals=total_evals,
                             sigma=path.sigma, negative=calls.negative, guidance=calls.guidance,
                             expected_evals=expected_evals, preview=stage != "readout", bar=bar)


def _expected_solve_evals(n_points: list[int], settings: GeodesicSettings) -> int | None:
    """What solves of ``n_points`` frames each usually spend (the bar's estimate; a pair of keyframes is only
    read out). None for the paper's schedule: its 400 steps (about 2600 evaluations) outlast a default budget;
    the global search solves about twice."""
    if settings.method == "paper":
        return None
    passes = SOLVE_PASSES * (2 if settings.search == "global" else 1)
    return sum(one_pass_evals(n) * (passes if n > 2 else 1) for n in n_points)



def _solve_progress(segment: int, segments: int, tolerance: float, budget: int):
    """solve_bvp callback: the running solve's length and residual as text on the node."""
    def show(progress: Progress) -> None:
        # The paper schedule reads nothing out while it iterates: no length or residual to show then.
        numbers = "" if progress.length is None else (
            f"length {progress.length:.5g}, residual {progress.residual:.3g} (stops once it shortens by less than "
            f"{tolerance:g} per step), ")
        show_progress_text(f"segment {segment + 1}/{segments}, iteration {progress.step}: {numbers}"
                           f"{progress.score_evals} of {budget} evaluations")
    return show


def _shooting_progress(progress: Progress) -> None:
    """solve_ivp callback: the new frame under the node's title (the density readout of the frames follows)."""
    show_progress_text(f"frame {progress.step} of {progress.total}, {progress.score_evals} evaluations")


def _reparametrised(denoise: Denoiser, local: Tensor, target: Tensor) -> Denoiser:
    """``denoise`` seen through a piecewise-linear map of path positions (local knots -> target knots)."""
    local64, target64 = local.double(), target.double()

    def mapped(x: Tensor, sigma: float, t: Tensor | None) -> Tensor:
        if t is None:
            return denoise(x, sigma, target[:1].expand(x.shape[0]))
        before, after, weight = knot_interval(local64, t.detach().to("cpu", torch.float64))
        return denoise(x, sigma, target64[before] + weight * (target64[after] - target64[before]))

    return mapped


def _strength_budget(settings: GeodesicSettings, segments: int = 1) -> int:
    """The evaluations of a strength's pull readout over ``segments`` (0 without a strength)."""
    return 0 if settings.strength is None else strength_evals(segments)


def _with_path_strength(kind: str, denoise: Denoiser, path: GeodesicPath, settings: GeodesicSettings, device
                        ) -> tuple[GeodesicSettings, StrengthCalibration | None]:
    """``settings`` with the alpha its strength gives between the path's first and last points (read in the
    conditioning the work runs with at their positions; with the sphere constraint on their common sphere, as
    Geodesic Interpolation reads keyframes), shown on the node; as given without a strength."""
    ends_t = path.t[[0, -1]]
    ends = on_common_sphere(path.points[[0, -1]]) if settings.sphere else path.points[[0, -1]]

    def field_of(_segment: int) -> DenoiserField:
        return _field(kind, _reparametrised(denoise, torch.tensor([0.0, 1.0]), ends_t), path.sigma)

    settings, calibration = with_strength_alpha(field_of, ends.to(device), settings)
    if calibration is not None:
        show_progress_text(calibration.describe())
    return settings, calibration


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


def solve_keyframes(model: ModelPatcher, keyframes: GeodesicPath, *, frames: int, loop: bool, spacing: str,
                    settings: GeodesicSettings, calls: ModelCallSettings) -> tuple[GeodesicPath, str, float]:
    """Piecewise geodesic through every keyframe in order with exactly ``frames`` points
    (geodesic_pipeline.keyframes: each segment's share of the frames and budget, the common sphere, a loop's
    closing segment), solved on the model with each keyframe's conditioning; a report with one line per
    segment; and the alpha it was solved with (strength's, or as given)."""
    check_path_for(model, keyframes, "keyframes")
    kind = noise_kind(model)
    check_min_points(keyframes, 2, "keyframes", "a geodesic between keyframes")
    for i, conditioning in enumerate(keyframes.schedule.conditionings):
        check_conditioning(conditioning, f"keyframes (conditioning of keyframe {i})")
    plan = plan_keyframes(keyframes.points, frames=frames, settings=settings, loop=loop, spacing=spacing)
    t, schedule = closed_keyframes(keyframes) if loop else (keyframes.t, keyframes.schedule)
    steps = plan.segments.steps

    def solve_on_model(denoise, device):
        def field_of(k: int) -> DenoiserField:
            return _field(kind, _reparametrised(denoise, torch.tensor([0.0, 1.0]), t[k:k + 2]), keyframes.sigma)

        geodesic = solve_through_keyframes(
            field_of, plan, settings, device=device,
            callback_of=lambda k, budget: _solve_progress(k, len(steps), settings.tolerance, budget))
        return geodesic, geodesic.points.float().cpu(), geodesic.log_density(field_of)

    # Every solve keeps within its budget, its readout included, and a keyframes-only segment's readout within its;
    # a strength's pull readout comes first, within what plan_keyframes kept for it.
    expected = _expected_solve_evals([s + 1 for s in steps], settings)
    if expected is not None:
        expected += _strength_budget(settings, len(steps))
    geodesic, points, log_density = _run_on_model(model, schedule, solve_on_model, "solve", keyframes,
                                                  max(steps) + 1,
                                                  sum(plan.segments.budgets) + _strength_budget(settings, len(steps)),
                                                  calls, expected)
    end_tangent = geodesic.end_tangent
    path = keyframes.with_points(points, geodesic.positions(t), schedule=schedule, log_density=log_density,
                                 end_tangent=None if end_tangent is None else end_tangent.float().cpu())
    return path, "\n".join(geodesic.report()), geodesic.settings.alpha


def extrapolate(model: ModelPatcher, path: GeodesicPath, *, frames: int, use_tangent: bool, backward: bool,
                settings: GeodesicSettings, calls: ModelCallSettings) -> tuple[GeodesicPath, float]:
    """``frames`` new points shot along the geodesic from the path's end (or start), one frame step apart, and
    the alpha they were shot with (with ``settings.strength``: strength / the pull between the
    path's first and last points).

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
        solved, _ = _with_path_strength(kind, denoise, path, settings, device)
        field = _field(kind, denoise, path.sigma)
        result = solve_ivp(field, points[-1].to(device), step.to(device) * frames, n_steps=frames,
                           alpha=solved.alpha, sphere=solved.sphere, quadrature_tol=solved.accuracy,
                           callback=_shooting_progress)
        return result.points[1:].float().cpu(), result.readout.log_density[1:].cpu(), solved.alpha

    # RK4: four score evaluations per step, then the density readout: the last point and at least 3
    # quadrature points per step (more where the density changes fast); first a strength's pull.
    new_points, log_density, alpha = _run_on_model(model, schedule, shoot_frames, "extrapolation", path, 1,
                                                   4 * frames + 1 + 3 * frames + _strength_budget(settings), calls)
    if backward:
        new_points, log_density = new_points.flip(0), log_density.flip(0)
    new_path = path.with_points(new_points, torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1),
                                schedule=schedule, log_density=log_density - log_density[0])
    return new_path, alpha


@dataclass(frozen=True)
class DensityReadoutResult:
    """What the Density Readout node reports about a path (formatted by nodes/plot.py)."""

    t: Tensor
    readout: PathReadout                   # the path's own, on the CPU (score_evals: of this readout alone)
    alpha: float                           # the metric's, as given or from the strength
    compared: EfficiencyResult | None = None  # against the geodesic between the path's ends (None: not solved)
    calibration: StrengthCalibration | None = None  # what the strength was read from (None: alpha as given)

    @property
    def min_log_density(self) -> float:
        return float(self.readout.log_density.min())


def _path_field(kind: str, denoise: Denoiser, path: GeodesicPath) -> DenoiserField:
    """The field along ``path``: its points' own conditioning, looked up at their positions ``path.t``."""
    return _field(kind, _reparametrised(denoise, torch.linspace(0.0, 1.0, len(path)), path.t), path.sigma)


def _check_readable(model: ModelPatcher, path: GeodesicPath) -> str:
    check_path_for(model, path, "path")
    kind = noise_kind(model)
    check_min_points(path, 2, "path", "a density readout")
    return kind


def _readout_budget(points: int, settings: GeodesicSettings) -> int:
    """The evaluations a path's own readout may refine within: what the strength's pull leaves of the budget, at
    least one pass over its ``points`` frames."""
    return max(settings.max_evals - _strength_budget(settings), one_pass_evals(points))


def readout_work(points: int, *, compare_geodesic: bool, settings: GeodesicSettings) -> tuple[int, int | None]:
    """The most latents a Density Readout of a path of ``points`` frames evaluates, and what it usually does
    (None: the most): its bar's total and estimate."""
    strength_budget = _strength_budget(settings)
    usual_readout = READOUT_PASSES * one_pass_evals(points) + strength_budget
    if not compare_geodesic:
        return _readout_budget(points, settings) + strength_budget, usual_readout
    # the path's readout, the solve within what the pull leaves, and the pull
    expected_solve = _expected_solve_evals([points], settings)
    return (_readout_budget(points, settings) + settings.max_evals,
            None if expected_solve is None else expected_solve + usual_readout)


def read_along(model: ModelPatcher, path: GeodesicPath, *, settings: GeodesicSettings,
               calls: ModelCallSettings, bar: NodeBar | None = None) -> DensityReadoutResult:
    """Density and distance along any path, refined within ``settings.max_evals`` (at least one pass over its
    frames), a strength's pull readout between the path's ends included; ``bar`` the node's, where the readout
    is one part of its work (sized by ``readout_work``)."""
    kind = _check_readable(model, path)
    budget = _readout_budget(len(path), settings)

    def read_on_model(denoise, device):
        solved, calibration = _with_path_strength(kind, denoise, path, settings, device)
        readout = read_path(_path_field(kind, denoise, path), path.points.to(device), solved.alpha,
                            sphere=solved.sphere, t=torch.linspace(0.0, 1.0, len(path)), tol=solved.accuracy,
                            max_evals=budget).cpu()
        return DensityReadoutResult(path.t.clone(), readout, solved.alpha, calibration=calibration)

    total, expected = readout_work(len(path), compare_geodesic=False, settings=settings)
    return _run_on_model(model, path.schedule, read_on_model, "readout", path, len(path), total, calls, expected,
                         bar)


def read_out(model: ModelPatcher, path: GeodesicPath, *, compare_geodesic: bool, settings: GeodesicSettings,
             calls: ModelCallSettings, bar: NodeBar | None = None) -> DensityReadoutResult:
    """Density and distance along any path; optionally its efficiency against the geodesic between its
    ends. ``bar`` as in ``read_along``."""
    if not compare_geodesic:
        return read_along(model, path, settings=settings, calls=calls, bar=bar)
    kind = _check_readable(model, path)
    strength_budget = _strength_budget(settings)
    check_budget(settings.max_evals, one_pass_evals(len(path)) + strength_budget, "the geodesic between the path's "
                 "ends" + " and the pull for strength" * bool(strength_budget))
    max_evals = settings.max_evals - strength_budget
    # The path's own readout may refine within the same budget (at least one pass over its frames).
    readout_budget = _readout_budget(len(path), settings)

    def compare_on_model(denoise, device):
        solved, calibration = _with_path_strength(kind, denoise, path, settings, device)
        # the strength is spent (it set alpha), and the solve gets what the pull readout left of the budget
        result = against_geodesic(_path_field(kind, denoise, path), path.points.to(device),
                                  dataclasses.replace(solved, strength=None, max_evals=max_evals),
                                  readout_max_evals=readout_budget)
        return DensityReadoutResult(path.t.clone(), result.path.cpu(), solved.alpha, result, calibration)

    total, expected = readout_work(len(path), compare_geodesic=True, settings=settings)
    return _run_on_model(model, path.schedule, compare_on_model, "readout", path, len(path), total, calls, expected,
                         bar)
