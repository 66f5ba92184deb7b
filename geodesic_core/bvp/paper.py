"""The paper's reference schedule (Yu et al., CVPR 2025): 1, 3, 7, 15 control points, 100 plain gradient steps
per level, lr 0.1 (1 - k/400) / n_control, natural cubic spline accelerations, a level skipped when the
smoothness term outweighs the score term, no convergence test."""

from __future__ import annotations

import torch
from torch import Tensor

from ..budget import one_pass_evals
from ..geometry import project_out, slerp
from ..path_integrals import path_positions
from ..progress import Callback, Progress
from .problem import BVPResult, Outcome, Problem


def _natural_spline_second_derivatives(yf: Tensor, h: float) -> Tensor:
    """Second derivatives M at the uniformly spaced knots of the natural cubic spline through yf [K+1, d]."""
    k = len(yf) - 1
    m = torch.zeros_like(yf)
    if k < 2:
        return m
    n = k - 1
    a = 4 * torch.eye(n, dtype=torch.float64) + torch.diag(torch.ones(n - 1, dtype=torch.float64), 1) \
        + torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    rhs = (yf[2:] - 2 * yf[1:-1] + yf[:-2]) * (6 / h**2)
    m[1:-1] = torch.linalg.inv(a).to(device=yf.device, dtype=yf.dtype) @ rhs
    return m


def _spline_eval(yf: Tensor, m: Tensor, h: float, ts: Tensor) -> Tensor:
    k = len(yf) - 1
    pos = (ts.double() / h).clamp(0, k)
    j = pos.floor().long().clamp(max=k - 1)
    u = (pos - j).to(yf.dtype)[:, None]
    return ((1 - u) * yf[j] + u * yf[j + 1]
            + h**2 / 6 * (((1 - u) ** 3 - (1 - u)) * m[j] + (u**3 - u) * m[j + 1]))


def _slerp_pieces(yf: Tensor, ts: Tensor, h: float) -> Tensor:
    """Piecewise great-circle path through the knots yf (the paper's spherical spline positions)."""
    k = len(yf) - 1
    pos = (ts.double() / h).clamp(0, k)
    j = pos.floor().long().clamp(max=k - 1)
    u = (pos - j).to(yf.dtype)
    out = [slerp(yf[jj], yf[jj + 1], uu[None])[0] for jj, uu in zip(j.tolist(), u)]
    return torch.stack(out)


def _slerp_velocity(x0: Tensor, x1: Tensor, a: float, h: float) -> Tensor:
    cos = torch.clamp((x0 * x1).sum(-1, keepdim=True) / (x0.norm(dim=-1, keepdim=True) * x1.norm(dim=-1, keepdim=True)),
                      -1, 1)
    th = torch.arccos(cos).clamp_min(1e-12)
    return th * (-torch.cos((1 - a) * th) * x0 + torch.cos(a * th) * x1) / torch.sin(th) / h


def _paper_velocity(yf: Tensor, m: Tensor, h: float, sphere: bool) -> Tensor:
    """Velocity at the interior knots: slerp derivative averaged over both sides, or the cubic's."""
    if sphere:
        return 0.5 * (_slerp_velocity(yf[:-2], yf[1:-1], 1.0, h) + _slerp_velocity(yf[1:-1], yf[2:], 0.0, h))
    return (yf[2:] - yf[1:-1]) / h - h * (2 * m[1:-1] + m[2:]) / 6


def solve_paper(problem: Problem, n_points: int, callback: Callback | None, *, strengths: int = 4,
                 steps_per_level: int = 100, lr0: float = 0.1) -> BVPResult:
    total = strengths * steps_per_level
    # Keep back the final readout's first pass (the schedule itself never reads the path out).
    keep = one_pass_evals(n_points) - 2
    outcome = Outcome.SCHEDULE
    history: list[dict] = []
    yf = torch.cat([problem.a, problem.b])  # knots at t = j / (len - 1)
    strength, it = 1, 0
    level_knots = 2
    while it < total and strength <= strengths:
        n_ctrl = 2**strength - 1
        if n_ctrl + 2 != level_knots:  # bisect: insert midpoints taken from the current spline
            h_old = 1.0 / (level_knots - 1)
            ts = torch.linspace(0, 1, n_ctrl + 2, dtype=torch.float64, device=yf.device)
            if problem.sphere:
                yf = _slerp_pieces(yf, ts, h_old)
            else:
                yf = _spline_eval(yf, _natural_spline_second_derivatives(yf, h_old), h_old, ts)
            yf[0], yf[-1] = problem.a[0], problem.b[0]
            level_knots = n_ctrl + 2
        h = 1.0 / (level_knots - 1)
        x = yf[1:-1]
        t_ctrl = path_positions(level_knots)[1:-1]
        if not problem.budget.affords(n_ctrl, keep):
            outcome = Outcome.BUDGET
            break
        s = problem.score(x, t_ctrl)
        m = _natural_spline_second_derivatives(yf, h)
        v = _paper_velocity(yf, m, h, problem.sphere)
        acc = m[1:-1]
        if problem.sphere:
            s, acc = project_out(s, x), project_out(acc, x)
        term1 = project_out(s, v)
        term2 = project_out(acc / (v * v).sum(-1, keepdim=True), v) / problem.alpha
        it += 1
        # The paper's heuristic compares the mean per-point norms: when the smoothness term dominates,
        # the step is skipped and the next level starts.
        if float(term1.norm(dim=-1).mean()) < float(term2.norm(dim=-1).mean()):
            strength += 1
            continue
        lr = lr0 * (1 - (it - 1) / total) / n_ctrl
        yf = torch.cat([problem.a, problem.retract(x + lr * (term1 + term2)), problem.b])
        if it >= strength * steps_per_level:
            strength += 1
        history.append({"iteration": it, "level": strength, "points": level_knots,
                        "score_evals": problem.evals, "step": lr})
        if callback is not None:
            knots = yf.to(problem.dtype).reshape(len(yf), *problem.shape)
            if callback(Progress(it, total, knots, problem.evals)) is False:
                outcome = Outcome.STOPPED
                break
    # The output frames are the spline sampled at n_points, read out with fresh scores.
    h = 1.0 / (len(yf) - 1)
    ts = path_positions(n_points, yf.device).double()
    if problem.sphere:
        out = _slerp_pieces(yf, ts, h)
    else:
        out = _spline_eval(yf, _natural_spline_second_derivatives(yf, h), h, ts)
    before = problem.evals
    state = problem.evaluate(problem.retract(out[1:-1]))
    return problem.result(state, iterations=it, outcome=outcome, method="paper", history=history,
                          readout_evals=problem.evals - before)
