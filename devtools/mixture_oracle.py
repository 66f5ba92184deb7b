"""Hard Gaussian-mixture geodesic problems and exact answers for them: the tests' and benchmarks' oracle.

The family (`hard_family()`): high-dimensional mixtures (1,024, 4,096 and 16,384 dimensions) of 6
unit-variance isotropic Gaussians, with the two endpoints drawn near two of them, the sphere constraint on
and off, several seeds. On the 17-point initial path (the great circle between the ends rescaled to their
common radius with the sphere on, as `solve_bvp` starts; the straight line without) the log density ranges
over thousands of nats, the frames lie far apart compared with the scale on which the mixture's
responsibilities switch, and the trapezoid line integral of the score on the frames alone is off by
hundreds of nats. Each problem's alpha makes alpha times that range about 5 to 15 (the paper's alpha 0.002
against ranges of thousands of nats).

The references use the exact mixture density: `exact_log_density` (log p from `field.log_prob`),
`exact_path_log_density` (at any position u along the path) and `exact_path_length` /
`exact_cumulative_length` (the metric length sum_i int_0^1 w(gamma_i(u)) |gamma_i'(u)| du with
w = exp(-alpha (log p - log p(x_0))), gamma_i the chord between consecutive frames, or with the sphere
constraint the great-circle arc of `geodesic_core.slerp`). Along a chord or an arc the squared distance
to every component mean is a closed form in u of a few dot products, so the fine composite Gauss-Legendre
quadrature costs O(K d) per frame plus O(K) per node: a 16,384-D path measures in milliseconds and is
differentiable (autograd), which `PathOptimiser` uses to minimise the exact length (in the 8-D `Subspace`
of the ends and means). The best known paths it finds are benchmarks/hard_mixtures.py's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geodesic_core import GaussianMixtureField, slerp

N_POINTS = 17
COMPONENTS = 6
MEAN_NORM_SQ = 20000.0  # |mu_k|^2 in nats: component separations give log-density ranges of thousands
# (dims, sphere) -> seeds: for each setting the first four seeds (of 0, 1, 2, ...) whose 17-point initial
# path meets `is_hard` (checked by tests/test_hard_mixtures.py).
FAMILY_SEEDS = {
    (1024, False): (3, 6, 9, 10), (1024, True): (1, 3, 6, 8),
    (4096, False): (0, 1, 2, 4), (4096, True): (0, 1, 2, 4),
    (16384, False): (4, 6, 7, 8), (16384, True): (0, 1, 2, 5),
}
# alpha * (exact log-density range along the initial path), cycled over the problems of a setting
ALPHA_TIMES_RANGE = (6.0, 10.0, 14.0)
HARD_MIN_ERROR = 100.0          # nats: the trapezoid readout's worst frame is off by at least this ...
HARD_RELATIVE_ERROR = (0.15, 0.40)  # ... and by this fraction of the exact range (15% to 39% on the family)
GL_NODES = 16          # Gauss-Legendre nodes per panel
RTOL = 1e-7            # relative change of the length at which panel refinement stops
MAX_PANELS = 1 << 16   # per segment; far beyond what any family problem needs


# ------------------------------------------------------------------------------------- exact references


def exact_log_density(field: GaussianMixtureField, points: Tensor) -> Tensor:
    """log p(x_i) - log p(x_0) for points [N, *shape], float64, from the mixture's exact log density."""
    lp = field.log_prob(points.to(torch.float64))
    return lp - lp[0]


@dataclass
class _Mixture:
    means: Tensor   # [K, d] float64
    var: Tensor     # [K]
    const: Tensor   # [K] log weight - d/2 log(2 pi var): log N_k = const - |x - mu_k|^2 / (2 var)

    @classmethod
    def of(cls, field: GaussianMixtureField) -> _Mixture:
        mu = field.means.reshape(field.means.shape[0], -1).to(torch.float64)
        var = field.stds.to(torch.float64) ** 2
        return cls(mu, var, field.log_weights.to(torch.float64) - 0.5 * mu.shape[1] * torch.log(2 * math.pi * var))

    def log_prob(self, sq_dist: Tensor) -> Tensor:
        return torch.logsumexp(self.const - 0.5 * sq_dist / self.var, dim=-1)


def _segment_coefficients(mix: _Mixture, points: Tensor, sphere: bool) -> dict[str, Tensor]:
    """Per segment [S, ...], the dot products that give the squared distance from gamma_i(u) to every
    component mean and the speed |gamma_i'(u)| in closed form (`_sq_dist_and_speed`)."""
    xf = points.reshape(len(points), -1).to(torch.float64)
    x0, x1 = xf[:-1], xf[1:]
    xm = xf @ mix.means.T                      # [N, K]
    mu_sq = (mix.means * mix.means).sum(1)     # [K]
    if not sphere:
        dx = x1 - x0
        return {"a": (x0 * x0).sum(1)[:, None] - 2 * xm[:-1] + mu_sq,   # |x_i - mu|^2       [S, K]
                "b": 2 * ((x0 * dx).sum(1)[:, None] - (xm[1:] - xm[:-1])),  # 2 (x_i - mu) . dx
                "c": (dx * dx).sum(1)}                                    # |dx|^2             [S]
    r = xf.norm(dim=1)
    r0, r1 = r[:-1], r[1:]
    e0, e1 = x0 / r0[:, None], x1 / r1[:, None]
    cos = (e0 * e1).sum(1).clamp(-1.0, 1.0)
    # theta from atan2(|e1 - cos e0|, cos): accurate for small angles
    theta = torch.atan2((e1 - cos[:, None] * e0).norm(dim=1), cos)
    return {"r0": r0, "r1": r1, "theta": theta, "ma": xm[:-1] / r0[:, None], "mb": xm[1:] / r1[:, None],
            "mu_sq": mu_sq.expand(len(r0), -1)}


def _sq_dist_and_speed(coef: dict[str, Tensor], u: Tensor) -> tuple[Tensor, Tensor]:
    """u [S, Q] positions along every segment -> squared distances to the means [S, Q, K], speeds [S, Q]."""
    if "c" in coef:
        a, b, c = coef["a"][:, None, :], coef["b"][:, None, :], coef["c"]
        sq = a + b * u[..., None] + c[:, None, None] * u[..., None] ** 2
        return sq, c.sqrt()[:, None].expand_as(u)
    th = coef["theta"][:, None]
    r = (1 - u) * coef["r0"][:, None] + u * coef["r1"][:, None]
    # slerp's direction sin((1-u) th)/sin th e0 + sin(u th)/sin th e1; the straight line below 1e-6 rad
    small = th < 1e-6
    th_safe = torch.where(small, torch.ones_like(th), th)
    ca = torch.where(small, 1 - u, torch.sin((1 - u) * th_safe) / torch.sin(th_safe))
    cb = torch.where(small, u, torch.sin(u * th_safe) / torch.sin(th_safe))
    mx = r[..., None] * (ca[..., None] * coef["ma"][:, None, :] + cb[..., None] * coef["mb"][:, None, :])
    sq = r[..., None] ** 2 - 2 * mx + coef["mu_sq"][:, None, :]
    speed = ((coef["r1"] - coef["r0"])[:, None] ** 2 + r**2 * th**2).sqrt()
    return sq, speed


def exact_path_log_density(field: GaussianMixtureField, points: Tensor, u: Tensor, *,
                           sphere: bool = False) -> Tensor:
    """Exact log p - log p(x_0) at positions ``u`` [S, Q] in [0, 1] along each of the S = N - 1 segments
    (chords, or the great-circle arcs of `geodesic_core.slerp` with ``sphere``), float64 [S, Q]."""
    mix = _Mixture.of(field)
    sq, _ = _sq_dist_and_speed(_segment_coefficients(mix, points, sphere), u.to(torch.float64))
    return mix.log_prob(sq) - field.log_prob(points[:1].to(torch.float64))[0]


@functools.cache
def _panel_nodes(panels: int) -> tuple[Tensor, Tensor]:
    """Composite Gauss-Legendre nodes and log weights on [0, 1] with ``panels`` equal panels."""
    x, w = np.polynomial.legendre.leggauss(GL_NODES)
    x, w = torch.from_numpy((x + 1) / 2), torch.from_numpy(w / 2)
    left = torch.arange(panels, dtype=torch.float64)[:, None]
    return ((left + x) / panels).reshape(-1), torch.log(w / panels).repeat(panels)


def _log_segment_lengths(mix: _Mixture, coef: dict[str, Tensor], log_p0: Tensor, alpha: float,
                         panels: Tensor) -> Tensor:
    """log int_0^1 w |gamma_i'| du for every segment i with panels[i] panels (one batch per distinct
    panel count; differentiable in the coefficients)."""
    out = torch.zeros(len(panels), dtype=torch.float64)
    for p in torch.unique(panels).tolist():
        idx = (panels == p).nonzero().reshape(-1)
        u, logw = _panel_nodes(int(p))
        sq, speed = _sq_dist_and_speed({k: v[idx] for k, v in coef.items()}, u.expand(len(idx), -1))
        integrand = -alpha * (mix.log_prob(sq) - log_p0) + torch.log(speed) + logw
        out = out.index_put((idx,), torch.logsumexp(integrand, dim=-1))
    return out


def _refined_panels(mix: _Mixture, coef: dict[str, Tensor], log_p0: Tensor, alpha: float, rtol: float,
                    start: Tensor | None = None) -> Tensor:
    """Panels per segment, doubled on each segment until its integral changes by less than rtol / S of
    the path's length (segments refine independently: a component switch in one segment does not make
    the others expensive). ``start`` (e.g. half the panels of a nearby path) saves the coarse passes."""
    n_seg = len(next(iter(coef.values())))
    with torch.no_grad():
        panels = torch.full((n_seg,), 4, dtype=torch.long) if start is None else start.clamp_min(4)
        current = _log_segment_lengths(mix, coef, log_p0, alpha, panels).exp()
        active = torch.ones(n_seg, dtype=torch.bool)
        while active.any():
            trial = torch.where(active, panels * 2, panels)
            finer = _log_segment_lengths(mix, coef, log_p0, alpha, trial).exp()
            done = (finer - current).abs() <= rtol * finer.sum() / n_seg
            panels, current = trial, finer
            active = active & ~done & (panels < MAX_PANELS)
    return panels


def _segment_lengths_and_panels(field: GaussianMixtureField, points: Tensor, alpha: float, sphere: bool,
                                rtol: float, start_panels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    mix = _Mixture.of(field)
    coef = _segment_coefficients(mix, points, sphere)
    log_p0 = field.log_prob(points[:1].to(torch.float64))[0]
    panels = _refined_panels(mix, {k: v.detach() for k, v in coef.items()}, log_p0.detach(), alpha, rtol,
                             start_panels)
    # the refined panels fixed, the quadrature is a smooth function of the points: autograd goes through
    return _log_segment_lengths(mix, coef, log_p0, alpha, panels).exp(), panels


def exact_segment_lengths(field: GaussianMixtureField, points: Tensor, alpha: float, *, sphere: bool = False,
                          rtol: float = RTOL) -> Tensor:
    """Metric length of every piece of the path, [N-1] float64, differentiable in ``points``."""
    return _segment_lengths_and_panels(field, points, alpha, sphere, rtol)[0]


def exact_cumulative_length(field: GaussianMixtureField, points: Tensor, alpha: float, *,
                            sphere: bool = False, rtol: float = RTOL) -> Tensor:
    """Metric distance from the first point to every frame along the path, [N] float64."""
    seg = exact_segment_lengths(field, points, alpha, sphere=sphere, rtol=rtol)
    return torch.cat([seg.new_zeros(1), seg.cumsum(0)])


def exact_path_length(field: GaussianMixtureField, points: Tensor, alpha: float, *, sphere: bool = False,
                      rtol: float = RTOL) -> float:
    """Metric length of the piecewise path through ``points`` [N, *shape] (chords, or great-circle arcs
    with ``sphere``) with the exact mixture density: composite Gauss-Legendre refined per segment until
    the relative change is below ``rtol``."""
    return float(exact_segment_lengths(field, points, alpha, sphere=sphere, rtol=rtol).sum())


# ------------------------------------------------------------------------------------------ the family


@dataclass
class HardProblem:
    name: str
    field: GaussianMixtureField
    start: Tensor   # [dim] float32
    end: Tensor
    alpha: float
    sphere: bool
    dim: int
    seed: int

    def initial_path(self, n_points: int = N_POINTS) -> Tensor:
        """The solvers' starting path: with the sphere on, the great circle between the ends rescaled to
        their common radius (|a| + |b|) / 2 (as `solve_bvp` does), else the straight line."""
        ts = torch.linspace(0.0, 1.0, n_points)
        a, b = self.start, self.end
        if self.sphere:
            radius = 0.5 * (a.norm() + b.norm())
            return slerp(a * (radius / a.norm()), b * (radius / b.norm()), ts)
        return a + ts[:, None] * (b - a)


def _mixture(dim: int, seed: int) -> tuple[GaussianMixtureField, Tensor, Tensor]:
    """6 unit-variance components with |mu_k|^2 = MEAN_NORM_SQ: mu_0 and mu_1 in random directions (nearly
    orthogonal in high dimension), the other four mixing both with a random direction of their own, so the
    responsibilities switch several times between the ends; random weights in [0.5, 1.5]; the ends are
    draws from components 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(COMPONENTS, dim, generator=g)
    u = u / u.norm(dim=1, keepdim=True)
    directions = u.clone()
    for k in range(2, COMPONENTS):
        c = torch.rand(2, generator=g)
        directions[k] = c[0] * u[0] + c[1] * u[1] + u[k]
    means = math.sqrt(MEAN_NORM_SQ) * directions / directions.norm(dim=1, keepdim=True)
    weights = torch.rand(COMPONENTS, generator=g) + 0.5
    field = GaussianMixtureField(means, 1.0, weights)
    start = means[0] + torch.randn(dim, generator=g)
    end = means[1] + torch.randn(dim, generator=g)
    return field, start, end


def _round_significant(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits - 1}e}")


def problem_name(dim: int, sphere: bool, seed: int) -> str:
    return f"d{dim}-{'sphere' if sphere else 'line'}-s{seed}"


def hard_family() -> list[HardProblem]:
    """The 24 problems: dims 1,024 / 4,096 / 16,384, sphere off and on, four seeds each (`FAMILY_SEEDS`);
    alpha = ALPHA_TIMES_RANGE / (exact log-density range along the initial path), two significant digits."""
    problems = []
    for (dim, sphere), seeds in FAMILY_SEEDS.items():
        for i, seed in enumerate(seeds):
            field, start, end = _mixture(dim, seed)
            problem = HardProblem(problem_name(dim, sphere, seed), field, start, end, 1.0, sphere, dim, seed)
            exact = exact_log_density(field, problem.initial_path())
            span = float(exact.max() - exact.min())
            problem.alpha = _round_significant(ALPHA_TIMES_RANGE[i % len(ALPHA_TIMES_RANGE)] / span)
            problems.append(problem)
    return problems


@dataclass
class Hardness:
    log_density_range: float   # exact, over the frames of the initial path
    max_error: float           # max over frames of |trapezoid readout - exact| log density (nats)
    relative_error: float      # max_error / log_density_range
    worst_frame: int
    exact_length: float        # metric length of the initial path, exact density (arcs on the sphere)
    trapezoid_length: float    # the trapezoid length of the same frames

    @property
    def hard(self) -> bool:
        low, high = HARD_RELATIVE_ERROR
        return self.max_error >= HARD_MIN_ERROR and low <= self.relative_error <= high


def trapezoid_log_density(field: GaussianMixtureField, points: Tensor) -> Tensor:
    """The trapezoid rule of the score's line integral on the frames alone."""
    x = points.reshape(len(points), -1).to(torch.float64)
    s = field.score(points).reshape(len(points), -1).to(torch.float64)
    steps = 0.5 * ((s[1:] + s[:-1]) * (x[1:] - x[:-1])).sum(1)
    return torch.cat([steps.new_zeros(1), steps.cumsum(0)])


def trapezoid_length(field: GaussianMixtureField, points: Tensor, alpha: float) -> float:
    """The trapezoid length: chords weighted by the mean of the end weights exp(-alpha l)."""
    x = points.reshape(len(points), -1).to(torch.float64)
    log_w = -alpha * trapezoid_log_density(field, points)
    log_mean = torch.logaddexp(log_w[1:], log_w[:-1]) - math.log(2.0)
    return float((torch.exp(log_mean) * (x[1:] - x[:-1]).norm(dim=1)).sum())


def hardness(problem: HardProblem, points: Tensor | None = None) -> Hardness:
    """How far the trapezoid readout is from the exact answers on ``points``
    (default: the 17-point initial path)."""
    points = problem.initial_path() if points is None else points
    exact = exact_log_density(problem.field, points)
    error = (trapezoid_log_density(problem.field, points) - exact).abs()
    span = float(exact.max() - exact.min())
    return Hardness(span, float(error.max()), float(error.max()) / span, int(error.argmax()),
                    exact_path_length(problem.field, points, problem.alpha, sphere=problem.sphere),
                    trapezoid_length(problem.field, points, problem.alpha))


def solver_ends(problem: HardProblem) -> tuple[Tensor, Tensor]:
    """The fixed ends of every path of the problem, float64 (rescaled to their common radius on the
    sphere, as `solve_bvp` does)."""
    a, b = problem.start.to(torch.float64), problem.end.to(torch.float64)
    if problem.sphere:
        radius = 0.5 * (a.norm() + b.norm())
        a, b = a * (radius / a.norm()), b * (radius / b.norm())
    return a, b


class PathOptimiser:
    """Minimises the exact length of the piecewise path from ``a`` to ``b`` (its log: the family's lengths
    span 1 to 1e7) over the interior points of ``initial`` [N, d] with L-BFGS (strong Wolfe) and autograd
    through the exact quadrature; with ``sphere`` the interior is x = |a| y / |y|. The quadrature's panels
    are refined at every evaluation (to ``rtol``), so the optimiser cannot exploit quadrature error.
    `run` can be called again to continue with the same L-BFGS memory."""

    def __init__(self, field: GaussianMixtureField, a: Tensor, b: Tensor, initial: Tensor, alpha: float, *,
                 sphere: bool, rtol: float = 1e-8):
        self.field, self.alpha, self.sphere, self.rtol = field, alpha, sphere, rtol
        self.a, self.b = a.to(torch.float64), b.to(torch.float64)
        self.y = initial[1:-1].to(torch.float64).clone().requires_grad_(True)
        self.evaluations = 0
        self.panels = None
        self.opt = torch.optim.LBFGS([self.y], lr=1.0, tolerance_grad=1e-10, tolerance_change=1e-11,
                                     history_size=50, line_search_fn="strong_wolfe")

    def path(self) -> Tensor:
        y = self.y
        interior = self.a.norm() * y / y.norm(dim=1, keepdim=True) if self.sphere else y
        return torch.cat([self.a[None], interior, self.b[None]])

    def _closure(self) -> Tensor:
        self.evaluations += 1
        self.opt.zero_grad()
        start = None if self.panels is None else self.panels // 2
        lengths, self.panels = _segment_lengths_and_panels(self.field, self.path(), self.alpha, self.sphere,
                                                           self.rtol, start)
        loss = lengths.sum().log()
        if self.sphere:
            # The path does not depend on |y|: pin it to the radius so that L-BFGS cannot drift along
            # that flat direction (|y| grew to 1e9 without this, shrinking the gradient below tolerance)
            loss = loss + 0.5 * ((self.y.norm(dim=1) / self.a.norm() - 1) ** 2).sum()
        loss.backward()
        return loss

    def run(self, max_iterations: int) -> None:
        group = self.opt.param_groups[0]
        group["max_iter"], group["max_eval"] = max_iterations, 2 * max_iterations
        self.opt.step(self._closure)

    @property
    def iterations(self) -> int:
        return int(self.opt.state[self.y].get("n_iter", 0))

    def length(self) -> float:
        with torch.no_grad():
            return exact_path_length(self.field, self.path(), self.alpha, sphere=self.sphere)


@dataclass
class Subspace:
    """The span S of a problem's ends and component means (8 dimensions) with an orthonormal basis.

    Every length and density of a path in S depends only on its coordinates in S, so the search for the
    best path runs in 8 dimensions: a mixture with the means' coordinates has the same relative log
    density on S. Without the sphere the best path lies in S (projecting a point onto S shortens both
    factors of the length: |x - mu_k|^2 loses |x_perp|^2 for every k, and chords get shorter); on the
    sphere both solvers' iterates stay in S (the score at x lies in the span of x and the means)."""

    basis: Tensor                 # [d, m] float64, orthonormal columns
    field: GaussianMixtureField   # the mixture in coordinates of S

    @classmethod
    def of(cls, problem: HardProblem) -> Subspace:
        f = problem.field
        spanning = torch.cat([problem.start[None], problem.end[None], f.means.reshape(len(f.means), -1)])
        basis, _ = torch.linalg.qr(spanning.to(torch.float64).T)
        means = f.means.reshape(len(f.means), -1).to(torch.float64) @ basis
        return cls(basis, GaussianMixtureField(means, f.stds.to(torch.float64), f.log_weights.exp()))

    def coordinates(self, points: Tensor) -> Tensor:
        return points.reshape(len(points), -1).to(torch.float64) @ self.basis

    def lift(self, coords: Tensor) -> Tensor:
        return coords @ self.basis.T


def basin_optimum(problem: HardProblem, iterations: int = 3000) -> tuple[float, Tensor]:
    """The optimum of the basin both solvers start in: L-BFGS on the exact length from the initial path, in the
    span of the ends and the means (``Subspace``). Returns its exact length and its points [N, d]."""
    subspace = Subspace.of(problem)
    a, b = (subspace.coordinates(x[None])[0] for x in solver_ends(problem))
    run = PathOptimiser(subspace.field, a, b, subspace.coordinates(problem.initial_path()), problem.alpha,
                        sphere=problem.sphere)
    run.run(iterations)
    return run.length(), subspace.lift(run.path().detach())
