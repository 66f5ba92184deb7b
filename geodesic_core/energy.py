"""The path energy E = sum_i L_i^2 of a discrete path, from the scores the quadrature already holds.

L_i is the metric length of segment i as ``path_integrals`` integrates it. Minimisers of E are the shortest
paths with their frames equally spaced in metric distance. Everything here is a function of the scores at
the quadrature nodes: the log density at a node is a function of its position with gradient s(x) (exact for
a gradient field), so each node's weight exp(-alpha l) is linearised as l + s . (gamma - gamma_0). Autograd
runs over per-node scalars only (the nodes' s . x_i, s . x_{i+1} and the segments' Gram entries); the chain
rule to the [N, d] points is one small matrix product with the node scores.

Each L_i depends on its two end points only, so one backward pass gives every segment's own gradient (the
Jacobian rows J_i, two [d] blocks each): a solver builds the Gauss-Newton model 2 sum_i J_i J_i^T of E from
them at no extra evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .geometry import project_out
from .path_integrals import PathIntegrals, Segments, rowdot

TINY = torch.finfo(torch.float64).tiny


@dataclass
class PathEnergy:
    """E = sum L_i^2 of one path with its gradient, Gauss-Newton factors and Euler-Lagrange residuals."""

    log_energy: float
    grad: Tensor             # [N, d] gradient of log E (rows 0 and N-1 zero: the ends are fixed)
    segment_share: Tensor    # [N-1] float64 l_i = L_i / sqrt(E)
    jacobian_start: Tensor   # [N-1, d] float64 dl_i / dx_i      (l_i = L_i / sqrt(E), E held fixed)
    jacobian_end: Tensor     # [N-1, d] float64 dl_i / dx_{i+1}
    segment_weights: Tensor  # [N-1] c_i = (L_i / |x_{i+1} - x_i|)^2 / E: each segment's elastic stiffness
    point_residuals: Tensor  # [N] 0 at the ends
    residual: float


def path_energy(xf: Tensor, integrals: PathIntegrals, alpha: float, *, sphere: bool = False,
                normal_only: bool = False) -> PathEnergy:
    """log E of the path through the frames ``xf`` [N, d] as ``integrals`` reads it, and its derivatives.

    The residual of a point is the norm of its net force over the sum of the pulls of its two segments (the
    gradients of the even and of the odd segments' energies), so a straight line in a uniform density has
    residual 0; ``normal_only`` measures it across the curve only (the shape, not the spacing).
    """
    n = len(xf)
    table, rows = integrals.nodes, integrals.leaf_node_rows
    x = xf.double()
    seg, u = integrals.layout.nodes()
    seg_f, u_f, rows_f = seg.reshape(-1), u.reshape(-1), rows.reshape(-1)
    # Hosts such as ComfyUI run nodes in inference mode: autograd over these few scalars needs it off, and
    # tensors made in inference mode cannot be saved for backward, hence the clones.
    with torch.inference_mode(False), torch.enable_grad():
        gram = [rowdot(x[:-1], x[:-1]), rowdot(x[1:], x[1:]), rowdot(x[:-1], x[1:])]
        gram = [g.clone().requires_grad_(True) for g in gram]
        dots = table.dots[rows_f].clone().requires_grad_(True)
        seg_c, u_c, leaf_seg = seg_f.clone(), u_f.clone(), integrals.layout.segment.clone()
        geo = Segments.from_gram(*gram, sphere)
        c_a, c_b, dc_a, dc_b = geo.coefficients(seg_c, u_c)
        lin = c_a * dots[:, 0] + c_b * dots[:, 1]
        l_node = integrals.node_log_density[rows_f].clone() + lin - lin.detach()
        log_g = -alpha * l_node + torch.log(geo.speed(seg_c, dc_a, dc_b).clamp_min(TINY))
        shift = float(log_g.detach().max())
        g = torch.exp(log_g - shift).reshape(u.shape)
        seg_len = torch.zeros(n - 1, dtype=torch.float64).index_add(0, leaf_seg,
                                                                    (g * integrals.leaf_weights.clone()).sum(1))
        # Segment i's length depends only on its own Gram entries and node dots, so the gradient of the sum
        # with respect to them is, entry by entry, each segment's own.
        g_aa, g_bb, g_ab, g_dots = torch.autograd.grad(seg_len.sum(), [*gram, dots])
    seg_len = seg_len.detach()
    scale = float(seg_len.square().sum().sqrt())  # sqrt(E) in the shifted units of seg_len
    jac_a, jac_b = _segment_jacobians(x, table.scores.double(), seg_f, rows_f, g_aa, g_bb, g_ab, g_dots, len(table.u))
    share = seg_len / scale
    jac_a, jac_b = jac_a / scale, jac_b / scale
    # d log E / dx = 2 sum_i l_i dl_i/dx, split by segment parity into the pulls the residual compares.
    pulls = [torch.zeros_like(x), torch.zeros_like(x)]
    parity = torch.arange(n - 1) % 2
    for p in (0, 1):
        w = (2 * share * (parity == p))[:, None]
        pulls[p][:-1] += w * jac_a
        pulls[p][1:] += w * jac_b
    grad = pulls[0] + pulls[1]
    grad[0], grad[-1] = 0.0, 0.0
    if sphere:
        grad = project_out(grad, x)
        pulls = [project_out(p, x) for p in pulls]
    num_vec = grad
    if normal_only and n > 2:
        tangent = torch.zeros_like(grad)
        tangent[1:-1] = x[2:] - x[:-2]
        num_vec = project_out(grad, tangent)
    num = num_vec.norm(dim=1)
    den = pulls[0].norm(dim=1) + pulls[1].norm(dim=1)
    den[0] = den[-1] = num[0] = num[-1] = 0.0
    point_res = torch.where(den > 0, num / den.clamp_min(TINY), torch.zeros_like(num))
    total_den = float(den.square().sum().sqrt())
    residual = float(num.square().sum().sqrt()) / total_den if total_den > 0 else 0.0
    euclid = (x[1:] - x[:-1]).norm(dim=1).clamp_min(TINY)
    log_c = 2 * (torch.log(integrals.segment_lengths.clamp_min(TINY)) - torch.log(euclid)) - integrals.log_energy
    return PathEnergy(integrals.log_energy, grad.to(xf.dtype), share, jac_a, jac_b, torch.exp(log_c), point_res,
                      residual)


def _segment_jacobians(x: Tensor, scores: Tensor, seg_f: Tensor, rows_f: Tensor, g_aa: Tensor, g_bb: Tensor,
                       g_ab: Tensor, g_dots: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """dL_i/dx_i and dL_i/dx_{i+1} [S, d] from the gradients with respect to the Gram entries (aa, bb, ab per
    segment) and the node dots (s . x_i, s . x_{i+1} per leaf node)."""
    n_seg = len(g_aa)
    weights = torch.zeros(2, n_seg, n_rows, dtype=torch.float64)
    weights[0].index_put_((seg_f, rows_f), g_dots[:, 0], accumulate=True)
    weights[1].index_put_((seg_f, rows_f), g_dots[:, 1], accumulate=True)
    from_nodes = weights @ scores
    jac_a = 2 * g_aa[:, None] * x[:-1] + g_ab[:, None] * x[1:] + from_nodes[0]
    jac_b = 2 * g_bb[:, None] * x[1:] + g_ab[:, None] * x[:-1] + from_nodes[1]
    return jac_a, jac_b
