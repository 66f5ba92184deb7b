"""Initial value problem: shoot a density geodesic from a point and a velocity (extrapolation).

Integrates x'' = -alpha |v|^2 P_v s(x) (P_v removes the component along v) with classic RK4 at
constant Euclidean speed. With the sphere constraint the score and velocity are kept tangent to the
sphere, the centripetal term -|v|^2 x / r^2 keeps the orbit on it, and each step is renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .bvp import Outcome
from .fields import DensityField, flat_score
from .geometry import flat, project_out, to_sphere
from .path_integrals import integrate_path
from .progress import Callback, Progress
from .readout import PathReadout
from .validation import GeodesicInputError, check_alpha, check_pair


@dataclass(frozen=True)
class IVPResult:
    points: Tensor            # [n_steps + 1, *shape], points[0] is the start (fewer when stopped)
    t: Tensor                 # [len(points)] path positions
    readout: PathReadout      # the shot path read out like any path (chords / arcs between the points)
    score_evals: int          # RK4 stages plus the readout's quadrature nodes (readout.score_evals)
    outcome: Outcome          # SCHEDULE: every step was taken; STOPPED: the callback stopped it


def solve_ivp(field: DensityField, start: Tensor, velocity: Tensor, *, n_steps: int,
              step_size: float | None = None, alpha: float = 1.0, sphere: bool = False,
              t_span: tuple[float, float] = (0.0, 1.0), quadrature_tol: float = 1e-3,
              callback: Callback | None = None) -> IVPResult:
    """RK4 geodesic shooting; ``step_size`` defaults to 1 / n_steps so the path covers |velocity|.

    ``t_span`` maps the steps to path positions passed to the field (for interpolated conditioning).
    ``callback(Progress)`` after each step (``points`` the path so far); returning False stops early. The
    shot path is read out like any path (``read_path``), to relative accuracy ``quadrature_tol``.
    """
    check_pair(start, velocity, ("start", "velocity"))
    check_alpha(alpha)
    if not isinstance(n_steps, int) or n_steps < 1:
        raise GeodesicInputError(f"n_steps: expected a positive integer, got {n_steps!r}")
    h = 1.0 / n_steps if step_size is None else float(step_size)
    if not h > 0:
        raise GeodesicInputError(f"step_size: expected a positive number, got {step_size!r}")
    shape = start.shape
    x = flat(start[None]).double()
    v = flat(velocity[None]).double()
    radius = x.norm() if sphere else None
    if sphere:
        if float(radius) == 0.0:
            raise GeodesicInputError("start: the sphere constraint needs a non-zero start point")
        v = project_out(v, x)
    speed = v.norm()
    if float(speed) == 0.0:
        raise GeodesicInputError("velocity: is zero (after projection onto the sphere's tangent space)"
                                 if sphere else "velocity: is zero; a direction is needed to shoot a geodesic")
    evals = 0
    score = flat_score(field, shape, start.dtype)
    outcome = Outcome.SCHEDULE

    def accel(xx: Tensor, vv: Tensor, tpos: float) -> tuple[Tensor, Tensor]:
        """Acceleration at (xx, vv) and the raw score there (kept for the density readout)."""
        nonlocal evals
        evals += 1
        raw = score(xx, torch.tensor([tpos])).double()
        s = project_out(raw, xx) if sphere else raw
        a = -alpha * (vv * vv).sum() * project_out(s, vv)
        if sphere:
            a = a - (vv * vv).sum() / (xx * xx).sum() * xx
        return a, raw

    t0, t1 = t_span
    positions = torch.linspace(t0, t1, n_steps + 1)
    points, scores = [x], []
    for k in range(n_steps):
        tmid = t0 + (t1 - t0) * (k + 0.5) / n_steps
        # The first RK stage sits on the current point: its score doubles as that point's readout.
        a1, s1 = accel(x, v, float(positions[k]))
        scores.append(s1)
        a2, _ = accel(x + 0.5 * h * v, v + 0.5 * h * a1, tmid)
        a3, _ = accel(x + 0.5 * h * (v + 0.5 * h * a1), v + 0.5 * h * a2, tmid)
        a4, _ = accel(x + h * (v + 0.5 * h * a2), v + h * a3, float(positions[k + 1]))
        x_new = x + h * v + h * h / 6 * (a1 + a2 + a3)
        v_new = v + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
        if sphere:
            x_new = to_sphere(x_new, radius)
            v_new = project_out(v_new, x_new)
        v_new = v_new * (speed / v_new.norm())
        x, v = x_new, v_new
        points.append(x)
        if callback is not None:
            so_far = torch.cat(points).to(start.dtype).reshape(len(points), *shape)
            if callback(Progress(k + 1, n_steps, so_far, evals)) is False:
                outcome = Outcome.STOPPED
                break
    xf = torch.cat(points)
    n = len(xf)
    # Only the landing point has no first-stage score yet; the quadrature scores it with its first nodes.
    frame_scores = torch.cat([torch.cat(scores), torch.zeros_like(xf[:1])])
    known = torch.ones(n, dtype=torch.bool)
    known[-1] = False
    q = integrate_path(score, xf, alpha, frame_scores=frame_scores, known_frames=known, sphere=sphere,
                       t=positions[:n], tol=quadrature_tol)
    return IVPResult(xf.to(start.dtype).reshape(n, *shape), positions[:n], PathReadout.of(q, xf, alpha, sphere=sphere),
                     evals + q.frames.score_evals, outcome)
