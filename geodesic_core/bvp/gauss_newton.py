"""The Gauss-Newton algebra of the path energy: the step, and the curvature estimates of -log p it uses."""

from __future__ import annotations

import torch
from torch import Tensor

from ..energy import PathEnergy
from ..geometry import project_out
from ..path_integrals import PathIntegrals
from .problem import State

TANGENT_KEEP = 0.1


def gauss_newton_step(xf: Tensor, energy: PathEnergy, sphere: bool, curvature: float | Tensor = 0.0) -> Tensor:
    """The Gauss-Newton step [n - 2, d] for log E at the path ``xf`` [n, d] (ends fixed).

    Model Hessian: 2 sum_i (J_i J_i^T + c_i P_i), J_i the gradient of segment i's share l_i = L_i / sqrt(E)
    (two [d] blocks), and c_i P_i its elastic stiffness across the segment (c_i = (L_i / |dx_i|)^2 / E,
    P_i = I - t_i t_i^T on the difference of its end points). The J J^T terms carry the density's curvature
    along the scores, which dominates in high dimension (alpha^2 s s^T) and which an elastic preconditioner
    alone misses. With the identity in place of P_i the elastic part is tridiagonal in the point index and the
    same in every coordinate; J_i J_i^T and the tangential corrections c_i t_i t_i^T are 2 (n - 1) rank-one
    terms, so the Woodbury identity solves the whole system through one (2n - 2)^2 matrix."""
    x = xf.double()
    m = len(x) - 2
    d = x.shape[1]
    g = energy.grad[1:-1].double()
    c = energy.segment_weights
    n_seg = m + 1
    tri = torch.diag(2 * (c[:-1] + c[1:]))
    if m > 1:
        tri = tri - torch.diag(2 * c[1:-1], 1) - torch.diag(2 * c[1:-1], -1)
    # The density's own curvature (alpha times that of -log p, ``curvature``: one value, or one per segment) on
    # each segment's points, weighted as the linear interpolation weights' second moments: 1/3 on each end, 1/6
    # between them.
    l2 = energy.segment_share.square() * 2 * curvature
    tri = tri + torch.diag((l2[:-1] + l2[1:]) / 3)
    if m > 1:
        tri = tri + torch.diag(l2[1:-1] / 6, 1) + torch.diag(l2[1:-1] / 6, -1)
    tri_inv = torch.linalg.inv(tri)
    # Rank-one columns, each on a segment's two end points: column r has the blocks blocks[r, k] at interior
    # point index[r, k] (k = 0, 1; a block at a fixed end is zero and points at index 0).
    tangent = x[1:] - x[:-1]
    tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    seg = torch.arange(n_seg)
    on_first, on_second = (seg >= 1)[:, None], (seg < m)[:, None]
    blocks = torch.stack([torch.cat([energy.jacobian_start * on_first, tangent * on_first]),
                          torch.cat([energy.jacobian_end * on_second, -tangent * on_second])], 1)  # [2S, 2, d]
    index = torch.stack([(seg - 1).clamp(min=0), seg.clamp(max=m - 1)], 1).repeat(2, 1)          # [2S, 2]
    if sphere:
        blocks = project_out(blocks, x[1:-1][index])
        g = project_out(g, x[1:-1])
    # Keep a little of the tangential stiffness: the model then never goes flat along the path.
    signs = torch.cat([torch.full((n_seg,), 2.0, dtype=torch.float64),
                       -2 * (1 - TANGENT_KEEP) * c.clamp_min(torch.finfo(torch.float64).tiny)])
    flat_blocks = blocks.reshape(-1, d)
    gram = (flat_blocks @ flat_blocks.T).reshape(2 * n_seg, 2, 2 * n_seg, 2)
    coupling = tri_inv[index[:, :, None, None], index[None, None, :, :]]          # [2S, 2, 2S, 2]
    small = torch.diag(1.0 / signs) + (gram * coupling).sum((1, 3))
    tri_g = tri_inv @ g
    rhs = (blocks * tri_g[index]).sum((1, 2))
    coef = torch.linalg.solve(small, rhs)
    scattered = torch.zeros_like(g).index_add_(0, index.reshape(-1), (coef[:, None, None] * blocks).reshape(-1, d))
    step = -(tri_g - tri_inv @ scattered)
    if sphere:
        step = project_out(step, x[1:-1])
    return step.to(xf.dtype)


def frame_scores_of(integrals: PathIntegrals) -> Tensor:
    """The scores at a path's frames [n, d], from its quadrature's node table."""
    table = integrals.nodes
    n_seg = len(integrals.segment_lengths)
    rows = [table.index[(i, 0.0)] for i in range(n_seg)] + [table.index[(n_seg - 1, 1.0)]]
    return table.scores[rows]


def path_curvature(xf: Tensor, scores: Tensor) -> Tensor:
    """A first estimate of the curvature of -log p on every segment [n - 1] from the scores at a path's frames:
    its secant -(s_{i+1} - s_i) . dx_i / |dx_i|^2 where positive, elsewhere (a mode switch inside the
    segment) the median of the positive ones (0 when none is)."""
    kappa = _secants(xf[1:] - xf[:-1], scores[1:] - scores[:-1])
    positive = kappa[kappa > 0]
    fallback = float(positive.median()) if len(positive) else 0.0
    return torch.where(kappa > 0, kappa, torch.full_like(kappa, fallback))


def secant_curvature(old: State, new: State, previous: Tensor) -> Tensor:
    """The curvature of -log p on every segment along the last step, from the frames' scores before and after
    it: each moved frame's secant -(s' - s) . (x' - x) / |x' - x|^2 (for a Gaussian of variance v it is
    1 / v), averaged over a segment's moved ends. A segment keeps its previous estimate where the step gives
    none (a negative secant: a mode switch crossed)."""
    kappa = _secants(new.interior - old.interior,
                     frame_scores_of(new.integrals)[1:-1] - frame_scores_of(old.integrals)[1:-1])
    ends = torch.full((1,), float("nan"), dtype=torch.float64)
    frames = torch.cat([ends, torch.where(kappa > 0, kappa, torch.full_like(kappa, float("nan"))), ends])
    per_segment = torch.stack([frames[:-1], frames[1:]]).nanmean(0)
    return torch.where(per_segment.isnan(), previous, per_segment)


def _secants(dx: Tensor, ds: Tensor) -> Tensor:
    """Row-wise -(ds . dx) / |dx|^2 in float64: the curvature of -log p along each displacement dx from the
    change ds of the score (0 where dx is 0)."""
    dx, ds = dx.double(), ds.double()
    return -(ds * dx).sum(1) / (dx * dx).sum(1).clamp_min(torch.finfo(torch.float64).tiny)
