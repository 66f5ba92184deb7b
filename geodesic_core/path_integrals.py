"""Error-controlled integrals along a discrete path: relative log density and metric length.

Between consecutive frames the path is the chord or, with the sphere constraint, the great-circle arc
(``geometry.slerp``'s curve: direction along the great circle, norm interpolated linearly); a chord would cut
through the shell that a sphere-constrained path may not leave. Along it

    l(u)  = integral s(gamma) . gamma' du        (relative log density, the score's line integral)
    L     = integral exp(-alpha l) |gamma'| du   (metric length)

are integrated with an adaptive composite Simpson rule. Every leaf interval of a segment carries five equally
spaced nodes; its estimate is Simpson on the two halves and its error |S(h/2) - S(h)|. That estimate is
deliberately not divided by 15 (Richardson): the /15 holds only where the integrand is smooth, while in high
dimension a mixture switches between modes within a tiny fraction of a segment, where Simpson converges at
first order and |S(h/2) - S(h)| is the honest size of the error. Leaves whose error exceeds their share of
the tolerance are split, and all new nodes of a round are scored in one batched call. The nodes sit at fixed
positions u of each segment, so a solver can keep a layout for a line search (the integrals are then smooth
functions of the points) and refine it only at accepted points.

Error targets: the log density is held to ``tol * max(1, min(range, 1/alpha))`` nats over the whole path (a
fraction of its range, and never so loose that the weights exp(-alpha l) go wrong by more than a fraction
``tol``), the length to ``tol * L``. Weights stay in log space, so wide log-density ranges cannot overflow.

The solvers' path energy E = sum_i L_i^2 built on these integrals, with its gradient, is in ``energy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import GeodesicInputError

# Points of one leaf [a, b]: a + (b - a) * NODE_FRACTIONS.
NODE_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
# A leaf is never split below this width (u units): float64 positions stay distinct, and a genuine
# discontinuity of the score cannot make the refinement run forever.
MIN_LEAF_WIDTH = 2.0**-36
# How far past its share of the tolerance a leaf must be to be split in four rather than two (fewer rounds,
# i.e. fewer model calls, where a mode switch needs many halvings).
SPLIT_FOUR_RATIO = 16.0

def rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products in float64 throughout: the integrand s . gamma' is a difference of dot
    products that are 10-100x larger than it, so float32 accumulation would leave ~1e-5 relative errors."""
    return (a.double() * b.double()).sum(-1)


ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (flat points [B, d], path positions [B] on the CPU) -> [B, d]


def path_positions(n: int, device: torch.device | str = "cpu") -> Tensor:
    """``n`` evenly spaced path positions in [0, 1]. Positions handed to a field stay on the CPU whatever
    the points' device: they are a handful of numbers used for host-side lookups (conditioning)."""
    return torch.linspace(0.0, 1.0, n, device=device)


@dataclass
class Layout:
    """The leaf intervals [a, b] of every segment, sorted by segment and then a; they tile [0, 1]."""

    segment: Tensor  # [K] long
    a: Tensor        # [K] float64
    b: Tensor        # [K] float64

    @staticmethod
    def initial(n_segments: int) -> Layout:
        return Layout(torch.arange(n_segments), torch.zeros(n_segments, dtype=torch.float64),
                      torch.ones(n_segments, dtype=torch.float64))

    def __len__(self) -> int:
        return len(self.segment)

    def nodes(self) -> tuple[Tensor, Tensor]:
        """Segment index and position of the 5 nodes of every leaf: [K, 5] each."""
        frac = torch.tensor(NODE_FRACTIONS, dtype=torch.float64)
        u = self.a[:, None] + (self.b - self.a)[:, None] * frac
        return self.segment[:, None].expand(-1, len(frac)), u

    def split(self, leaves: Tensor, pieces: Tensor) -> Layout:
        """Split the leaves with ``leaves`` True into ``pieces`` equal parts each (1 keeps a leaf)."""
        count = torch.where(leaves, pieces, torch.ones_like(pieces))
        seg = self.segment.repeat_interleave(count)
        start = self.a.repeat_interleave(count)
        width = ((self.b - self.a) / count).repeat_interleave(count)
        first = torch.cumsum(count, 0) - count
        k = torch.arange(int(count.sum())) - first.repeat_interleave(count)
        a = start + k * width
        b = torch.where(k == count.repeat_interleave(count) - 1, self.b.repeat_interleave(count), a + width)
        return Layout(seg, a, b)

    def coarsened(self, mergeable: Tensor) -> Layout:
        """Merge each pair of sibling leaves (equal width, left one aligned to twice that width) whose
        left member is marked in ``mergeable`` (both halves must be marked)."""
        k = len(self)
        if k < 2:
            return self
        width = self.b - self.a
        left = torch.zeros(k, dtype=torch.bool)
        aligned = torch.remainder(self.a / (2 * width), 1.0) == 0
        left[:-1] = ((self.segment[:-1] == self.segment[1:]) & (width[:-1] == width[1:]) & aligned[:-1]
                     & mergeable[:-1] & mergeable[1:])
        # A leaf can be the left member of one pair only; skip a pair whose left is another pair's right.
        right = torch.zeros(k, dtype=torch.bool)
        for i in torch.nonzero(left).flatten().tolist():
            if right[i]:
                left[i] = False
            else:
                right[i + 1] = True
        keep = ~right
        b = self.b.clone()
        b[left] = self.b[torch.nonzero(left).flatten() + 1]
        return Layout(self.segment[keep], self.a[keep], b[keep])


@dataclass
class Segments:
    """Per-segment geometry of the curve through the frames: gamma(u) = c_a(u) x_i + c_b(u) x_{i+1}."""

    norm_a: Tensor   # [S] float64
    norm_b: Tensor
    dot_ab: Tensor   # x_i . x_{i+1}
    theta: Tensor    # angle between x_i and x_{i+1} (0 for chords)
    arc: Tensor      # [S] bool: great-circle arc (sphere constraint) rather than chord

    @staticmethod
    def of(xf: Tensor, sphere: bool) -> Segments:
        xa, xb = xf[:-1], xf[1:]
        return Segments.from_gram(rowdot(xa, xa), rowdot(xb, xb), rowdot(xa, xb), sphere)

    @staticmethod
    def from_gram(aa: Tensor, bb: Tensor, ab: Tensor, sphere: bool) -> Segments:
        """From the Gram entries |x_i|^2, |x_{i+1}|^2, x_i . x_{i+1} of every segment (differentiable)."""
        tiny = torch.finfo(torch.float64).tiny
        na, nb = aa.clamp_min(tiny).sqrt(), bb.clamp_min(tiny).sqrt()
        cos = (ab / (na * nb)).clamp(-1.0 + 1e-15, 1.0 - 1e-15)
        theta = torch.arccos(cos)
        # Below 1e-6 rad the arc is the chord to float64 precision; its formulas would divide by ~0.
        arc = (theta > 1e-6) if sphere else torch.zeros_like(theta, dtype=torch.bool)
        return Segments(na, nb, ab, torch.where(arc, theta, torch.zeros_like(theta)), arc)

    def coefficients(self, seg: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """c_a, c_b (position) and their u-derivatives dc_a, dc_b (velocity) at nodes (seg, u)."""
        na, nb, th, arc = self.norm_a[seg], self.norm_b[seg], self.theta[seg], self.arc[seg]
        tiny = torch.finfo(torch.float64).tiny
        sin_th = torch.where(arc, torch.sin(th), torch.ones_like(th))
        r = (1 - u) * na + u * nb
        s0, s1 = torch.sin((1 - u) * th), torch.sin(u * th)
        k0, k1 = torch.cos((1 - u) * th), torch.cos(u * th)
        na_, nb_ = na.clamp_min(tiny), nb.clamp_min(tiny)
        c_a = torch.where(arc, r * s0 / (na_ * sin_th), 1 - u)
        c_b = torch.where(arc, r * s1 / (nb_ * sin_th), u)
        dc_a = torch.where(arc, ((nb - na) * s0 - r * th * k0) / (na_ * sin_th), -torch.ones_like(u))
        dc_b = torch.where(arc, ((nb - na) * s1 + r * th * k1) / (nb_ * sin_th), torch.ones_like(u))
        return c_a, c_b, dc_a, dc_b

    def speed(self, seg: Tensor, dc_a: Tensor, dc_b: Tensor) -> Tensor:
        """|gamma'(u)| = |dc_a x_i + dc_b x_{i+1}| from the Gram entries (no [*, d] vectors)."""
        sq = (dc_a**2 * self.norm_a[seg] ** 2 + dc_b**2 * self.norm_b[seg] ** 2
              + 2 * dc_a * dc_b * self.dot_ab[seg])
        return sq.clamp_min(0.0).sqrt()

    def euclidean_length(self) -> float:
        """Euclidean length of the curve through the frames: Simpson on its speed (exact for chords and for
        arcs between equal norms, where the speed is constant)."""
        n_seg = len(self.theta)
        seg = torch.arange(n_seg).repeat(3)
        u = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64).repeat_interleave(n_seg)
        _, _, dc_a, dc_b = self.coefficients(seg, u)
        speed = self.speed(seg, dc_a, dc_b).reshape(3, n_seg)
        return float(((speed[0] + 4 * speed[1] + speed[2]) / 6).sum())


@dataclass
class NodeTable:
    """Scores at the quadrature nodes of one path, with a lookup from (segment, u). A frame is stored once
    for each segment it ends (as u = 0 of one and u = 1 of the other), so every row has one segment."""

    segment: Tensor      # [M] long
    u: Tensor            # [M] float64
    scores: Tensor       # [M, d] in the path's dtype
    dots: Tensor         # [M, 2] float64: s . x_i and s . x_{i+1} of the row's segment i
    index: dict          # (segment, u) -> row

    def rows(self, seg: Tensor, u: Tensor) -> Tensor:
        return torch.tensor([self.index[(s, v)] for s, v in zip(seg.tolist(), u.tolist())], dtype=torch.long)

    def extended(self, seg: Tensor, u: Tensor, scores: Tensor, xf: Tensor) -> NodeTable:
        dots = torch.stack([rowdot(scores, xf[seg]), rowdot(scores, xf[seg + 1])], 1)
        index = dict(self.index)
        start = len(self.u)
        for i, key in enumerate(zip(seg.tolist(), u.tolist())):
            index[key] = start + i
        return NodeTable(torch.cat([self.segment, seg]), torch.cat([self.u, u]), torch.cat([self.scores, scores]),
                         torch.cat([self.dots, dots]), index)


def frame_node_table(xf: Tensor, frame_scores: Tensor) -> NodeTable:
    """A node table holding the frames: u = 0 and u = 1 of every segment."""
    n_seg = len(xf) - 1
    seg = torch.arange(n_seg).repeat(2)
    u = torch.cat([torch.zeros(n_seg), torch.ones(n_seg)]).double()
    empty = NodeTable(seg[:0], u[:0], frame_scores[:0], torch.zeros(0, 2, dtype=torch.float64), {})
    return empty.extended(seg, u, torch.cat([frame_scores[:-1], frame_scores[1:]]), xf)


@dataclass(frozen=True)
class FrameIntegrals:
    """What the quadrature certifies at the frames of one path (float64): the density and distance part of the
    readout (readout.PathReadout adds the path's own geometry to these fields)."""

    log_density: Tensor        # [N] relative to the first frame
    log_density_error: Tensor  # [N] estimated bound on the quadrature error of each frame's value
    length: float              # metric length with w = exp(-alpha * log_density)
    length_error: float        # estimated bound on the quadrature error of ``length``
    cumulative_length: Tensor  # [N] metric distance from the first frame
    score_evals: int           # new score evaluations made by the quadrature (frames given are not counted)
    converged: bool            # every piece met its share of the tolerance (False: budget or min width)


@dataclass
class PathIntegrals:
    """What the adaptive quadrature knows about one path (all float64): the values at the frames, and the
    pieces a solver reuses."""

    frames: FrameIntegrals
    segment_lengths: Tensor     # [N-1] metric length of each segment
    log_energy: float           # log sum_i L_i^2
    layout: Layout              # the leaves used (reusable by a solver)
    nodes: NodeTable
    leaf_node_rows: Tensor      # [K, 5] rows of ``nodes`` for every leaf's nodes
    leaf_weights: Tensor        # [K, 5] composite Simpson weights (u units) of every leaf's nodes
    node_log_density: Tensor    # [M] relative log density at every node
    leaf_error_ratio: Tensor    # [K] each leaf's error over its share of the tolerance (<= 1: met)


@dataclass
class _LeafSums:
    l_int: Tensor       # [K] Simpson (h/2) integral of f over the leaf
    l_err: Tensor       # [K] |S(h/2) - S(h)| for f
    node_l: Tensor      # [K, 5] relative log density at the leaf's nodes
    len_int: Tensor     # [K] Simpson (h/2) integral of the length integrand
    len_err: Tensor     # [K]


SIMPSON_HALVES = torch.tensor([1.0, 4.0, 2.0, 4.0, 1.0], dtype=torch.float64) / 12.0
SIMPSON_WHOLE = torch.tensor([1.0, 0.0, 4.0, 0.0, 1.0], dtype=torch.float64) / 6.0
SIMPSON_HALF = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64) / 12.0  # the first half alone
# Integral from the leaf start to its first quarter (and from the middle to the third quarter) of the
# quadratic through the half's three nodes, in units of the leaf width.
QUARTER = torch.tensor([5.0, 8.0, -1.0], dtype=torch.float64) / 48.0


def _leaf_sums(layout: Layout, table: NodeTable, rows: Tensor, geo: Segments, alpha: float) -> _LeafSums:
    seg, u = layout.nodes()
    seg_f, u_f = seg.reshape(-1), u.reshape(-1)
    dots = table.dots[rows.reshape(-1)]
    _, _, dc_a, dc_b = geo.coefficients(seg_f, u_f)
    f = (dc_a * dots[:, 0] + dc_b * dots[:, 1]).reshape(u.shape)
    speed = geo.speed(seg_f, dc_a, dc_b).reshape(u.shape)
    h = (layout.b - layout.a)
    l_int = h * (f @ SIMPSON_HALVES)
    # Quadrature error, plus a floor for the rounding of scores stored in a low-precision dtype.
    eps = torch.finfo(table.scores.dtype).eps
    l_err = (l_int - h * (f @ SIMPSON_WHOLE)).abs() + eps * h * f.abs().mean(1)
    # Log density at every node: leaf starts by the cumulative sum of the leaf integrals in path order.
    start = torch.cumsum(l_int, 0) - l_int
    q1 = h * (f[:, :3] @ QUARTER)
    mid = h * (f[:, :3] @ SIMPSON_HALF)
    q3 = mid + h * (f[:, 2:] @ QUARTER)
    node_l = start[:, None] + torch.stack([torch.zeros_like(h), q1, mid, q3, l_int], 1)
    log_g = -alpha * node_l + torch.log(speed.clamp_min(torch.finfo(torch.float64).tiny))
    shift = float(log_g.max()) if log_g.numel() else 0.0
    g = torch.exp(log_g - shift)
    try:
        scale = math.exp(shift)
    except OverflowError:
        raise GeodesicInputError(
            f"alpha: the metric weight exp(-alpha log p) reaches e^{shift:.0f} along this path at alpha {alpha:g}, "
            f"beyond float64 (e^709): the density varies too much for this alpha; lower it, or set a strength "
            f"(it scales alpha to the model)") from None
    len_int = h * (g @ SIMPSON_HALVES) * scale
    len_err = (len_int - h * (g @ SIMPSON_WHOLE) * scale).abs()
    return _LeafSums(l_int, l_err, node_l, len_int, len_err)


def integrate_path(score: ScoreFn, xf: Tensor, alpha: float, *, frame_scores: Tensor | None = None,
                   known_frames: Tensor | None = None, sphere: bool = False, t: Tensor | None = None,
                   tol: float = 1e-3, layout: Layout | None = None, nodes: NodeTable | None = None,
                   refine: bool = True, max_evals: int | None = None) -> PathIntegrals:
    """Relative log density and metric length of the path through the frames ``xf`` [N, d].

    ``frame_scores`` [N, d] are scores already known at the frames (all of them, or those marked in
    ``known_frames`` [N] bool); the others are evaluated in the first batched call together with the nodes.
    ``layout`` starts from a given leaf layout (default: one leaf per segment, 3 new nodes each), ``nodes``
    from scores already evaluated on this same path (e.g. to refine a line-search trial). ``refine`` False
    keeps the layout as it is (a solver's line search: the integrals are then smooth in the points).
    ``max_evals`` caps the new score evaluations: refinement stops there (``converged`` False; the error
    estimates say what was reached); a first call that alone exceeds ``max_evals`` raises ``BudgetExceeded``.
    """
    n = len(xf)
    t = path_positions(n) if t is None else t
    geo = Segments.of(xf, sphere)
    layout = Layout.initial(n - 1) if layout is None else layout
    evals = 0
    table = nodes
    if table is None:
        unknown = torch.ones(n, dtype=torch.bool) if frame_scores is None else (
            torch.zeros(n, dtype=torch.bool) if known_frames is None else ~known_frames)
        seg, u = _interior_nodes(layout)
        need = int(unknown.sum()) + len(u)
        if max_evals is not None and need > max_evals:
            raise BudgetExceeded(need)
        idx = torch.nonzero(unknown).flatten()
        pts = torch.cat([xf[idx], _node_points(xf, geo, seg, u)])
        s = score(pts, torch.cat([t[idx], _node_positions(t, seg, u)])).to(xf.dtype)
        scores = torch.zeros_like(xf) if frame_scores is None else frame_scores.to(xf.dtype).clone()
        scores[idx] = s[: len(idx)]
        table = frame_node_table(xf, scores).extended(seg, u, s[len(idx):], xf)
        evals += need
    missing = missing_nodes(layout, table)
    while True:
        if missing:
            seg, u = (torch.tensor([k[0] for k in missing], dtype=torch.long),
                      torch.tensor([k[1] for k in missing], dtype=torch.float64))
            table = table.extended(seg, u, score(_node_points(xf, geo, seg, u), _node_positions(t, seg, u))
                                   .to(xf.dtype), xf)
            evals += len(missing)
        seg, u = layout.nodes()
        rows = table.rows(seg.reshape(-1), u.reshape(-1)).reshape(seg.shape)
        sums = _leaf_sums(layout, table, rows, geo, alpha)
        ratio = _error_ratio(sums, layout, tol, alpha)
        split = (ratio > 1) & ((layout.b - layout.a) > MIN_LEAF_WIDTH)
        if not refine or not bool(split.any()):
            break
        candidate = layout.split(split, torch.where(ratio > SPLIT_FOUR_RATIO, 4, 2))
        missing = missing_nodes(candidate, table)
        if max_evals is not None and evals + len(missing) > max_evals:
            break
        layout = candidate
    return _assemble(layout, table, rows, sums, ratio, xf, alpha, evals)


def _interior_nodes(layout: Layout) -> tuple[Tensor, Tensor]:
    """The distinct nodes strictly inside segments (frames excluded), in layout order."""
    seg, u = layout.nodes()
    keys = dict.fromkeys(k for k in zip(seg.reshape(-1).tolist(), u.reshape(-1).tolist()) if 0.0 < k[1] < 1.0)
    return (torch.tensor([k[0] for k in keys], dtype=torch.long),
            torch.tensor([k[1] for k in keys], dtype=torch.float64))


def _node_points(xf: Tensor, geo: Segments, seg: Tensor, u: Tensor) -> Tensor:
    c_a, c_b, _, _ = geo.coefficients(seg, u)
    return c_a.to(xf.dtype)[:, None] * xf[seg] + c_b.to(xf.dtype)[:, None] * xf[seg + 1]


def _node_positions(t: Tensor, seg: Tensor, u: Tensor) -> Tensor:
    """Path positions of nodes, linear in u within each segment (for conditioning lookups)."""
    return (t[seg] + u.to(t.dtype) * (t[seg + 1] - t[seg])).to(t.dtype)


class BudgetExceeded(Exception):
    """The starting layout alone needs more new score evaluations (``needed``) than the budget allows."""

    def __init__(self, needed: int):
        super().__init__(f"{needed} score evaluations needed")
        self.needed = needed


def missing_nodes(layout: Layout, table: NodeTable) -> list[tuple[int, float]]:
    """The (segment, u) nodes of ``layout`` that ``table`` holds no score for."""
    seg, u = layout.nodes()
    keys = zip(seg.reshape(-1).tolist(), u.reshape(-1).tolist())
    return list(dict.fromkeys(k for k in keys if k not in table.index))


def _error_ratio(sums: _LeafSums, layout: Layout, tol: float, alpha: float) -> Tensor:
    """Each leaf's error over its share (in proportion to its width) of the path's error targets."""
    l_range = float(sums.node_l.max() - sums.node_l.min())
    l_target = tol * max(1.0, min(l_range, 1.0 / alpha))
    length_target = tol * float(sums.len_int.sum())
    share = (layout.b - layout.a) / float(layout.segment.max() + 1)
    ratio = sums.l_err / (l_target * share)
    if length_target > 0:
        ratio = torch.maximum(ratio, sums.len_err / (length_target * share))
    return ratio


def _assemble(layout: Layout, table: NodeTable, rows: Tensor, sums: _LeafSums, ratio: Tensor, xf: Tensor,
              alpha: float, evals: int) -> PathIntegrals:
    n = len(xf)
    n_seg = n - 1
    seg = layout.segment
    seg_l = torch.zeros(n_seg, dtype=torch.float64).index_add_(0, seg, sums.l_int)
    seg_l_err = torch.zeros(n_seg, dtype=torch.float64).index_add_(0, seg, sums.l_err)
    seg_len = torch.zeros(n_seg, dtype=torch.float64).index_add_(0, seg, sums.len_int)
    seg_len_err = torch.zeros(n_seg, dtype=torch.float64).index_add_(0, seg, sums.len_err)
    zero = torch.zeros(1, dtype=torch.float64)
    log_density = torch.cat([zero, seg_l.cumsum(0)])
    log_density_error = torch.cat([zero, seg_l_err.cumsum(0)])
    cumulative = torch.cat([zero, seg_len.cumsum(0)])
    length = float(cumulative[-1])
    # A log-density error e at a node changes its weight by a factor exp(alpha e): bound the length's
    # share of it with the error accumulated up to the end of each segment.
    propagated = seg_len * torch.expm1(alpha * log_density_error[1:])
    length_error = float(seg_len_err.sum() + propagated.sum())
    log_energy = float(torch.logsumexp(2 * torch.log(seg_len.clamp_min(torch.finfo(torch.float64).tiny)), 0))
    node_l = torch.zeros(len(table.u), dtype=torch.float64)
    node_l[rows.reshape(-1)] = sums.node_l.reshape(-1)
    weights = (layout.b - layout.a)[:, None] * SIMPSON_HALVES
    frames = FrameIntegrals(log_density, log_density_error, length, length_error, cumulative, evals,
                            bool((ratio <= 1).all()))
    return PathIntegrals(frames, seg_len, log_energy, layout, table, rows, weights, node_l, ratio)


def coarsen_for_reuse(integrals: PathIntegrals) -> Layout:
    """The layout to start the next nearby path from: sibling leaves both well inside their share of the
    tolerance (an eighth: errors shrink at least linearly with the width) are merged, so a moving mode switch
    does not leave the layout growing. Merging is only a starting guess: the next integration re-checks
    every leaf and refines where needed."""
    return integrals.layout.coarsened(integrals.leaf_error_ratio < 0.125)


def metric_midpoints(xf: Tensor, integrals: PathIntegrals, alpha: float, *, sphere: bool = False) -> Tensor:
    """The path through ``xf`` [N, d] with a frame added inside every segment [2N - 1, d], where the segment's
    metric length as ``integrals`` reads it (trapezoids between its nodes) is halved: a finer starting path
    on the same curve whose frames are as evenly spaced in metric distance as ``xf``'s, even where the weight
    changes by orders of magnitude inside a segment (a midpoint in the path parameter would leave those
    segments' halves unequal)."""
    geo = Segments.of(xf, sphere)
    seg, u = integrals.layout.nodes()
    _, _, dc_a, dc_b = geo.coefficients(seg.reshape(-1), u.reshape(-1))
    speed = geo.speed(seg.reshape(-1), dc_a, dc_b).reshape(u.shape)
    log_g = (-alpha * integrals.node_log_density[integrals.leaf_node_rows]
             + torch.log(speed.clamp_min(torch.finfo(torch.float64).tiny)))
    g = torch.exp(log_g - log_g.max())
    pieces = (0.5 * (g[:, :-1] + g[:, 1:]) * ((integrals.layout.b - integrals.layout.a) / 4)[:, None]).reshape(-1)
    piece_seg = seg[:, :-1].reshape(-1)
    piece_u0, piece_u1 = u[:, :-1].reshape(-1), u[:, 1:].reshape(-1)
    n_seg = len(xf) - 1
    totals = torch.zeros(n_seg, dtype=torch.float64).index_add_(0, piece_seg, pieces)
    # Pieces are in path order: the length before each piece within its own segment.
    before = torch.cumsum(pieces, 0) - pieces
    before = before - (torch.cumsum(totals, 0) - totals)[piece_seg]
    half = 0.5 * totals[piece_seg]
    inside = (before <= half) & (before + pieces >= half) & (pieces > 0)
    # The first piece of each segment that holds its half-way mark, and the position inside it (linear).
    first = torch.full((n_seg,), -1, dtype=torch.long)
    rows = torch.nonzero(inside).flatten()
    first.scatter_reduce_(0, piece_seg[rows], rows, reduce="amin", include_self=False)
    first = torch.where(first < 0, torch.zeros_like(first), first)
    fraction = ((half[first] - before[first]) / pieces[first].clamp_min(torch.finfo(torch.float64).tiny)).clamp(0, 1)
    mid_u = torch.where(totals > 0, piece_u0[first] + fraction * (piece_u1[first] - piece_u0[first]),
                        torch.full_like(totals, 0.5))
    midpoints = _node_points(xf, geo, torch.arange(n_seg), mid_u)
    out = torch.empty(2 * n_seg + 1, xf.shape[1], dtype=xf.dtype)
    out[0::2], out[1::2] = xf, midpoints
    return out
