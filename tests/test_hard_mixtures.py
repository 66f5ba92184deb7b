"""The hard mixture family and its exact-density references (devtools/mixture_oracle.py)."""
import math

import pytest
import torch

from devtools.mixture_oracle import (
    ALPHA_TIMES_RANGE,
    PathOptimiser,
    Subspace,
    exact_cumulative_length,
    exact_log_density,
    exact_path_length,
    exact_path_log_density,
    exact_segment_lengths,
    hard_family,
    hardness,
    solver_ends,
)
from geodesic_core import GaussianMixtureField, slerp


@pytest.fixture(scope="module")
def family():
    return hard_family()


def _random_path(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_flat_density_gives_euclidean_and_arc_length():
    # alpha = 0: w = 1, so the length is the polyline's length, or on the sphere the great-circle arcs'
    field = GaussianMixtureField(torch.zeros(2, 64), 1.0)
    pts = _random_path(5, 64, 0)
    chords = (pts[1:] - pts[:-1]).norm(dim=1).sum()
    assert exact_path_length(field, pts, 0.0) == pytest.approx(float(chords), rel=1e-12)
    on_sphere = pts * (4.0 / pts.norm(dim=1, keepdim=True))
    cos = (on_sphere[1:] * on_sphere[:-1]).sum(1) / 16.0
    arcs = 4.0 * torch.arccos(cos).sum()
    assert exact_path_length(field, on_sphere, 0.0, sphere=True) == pytest.approx(float(arcs), rel=1e-12)
    # different norms: slerp's curve has speed^2 = (r1 - r0)^2 + r(u)^2 theta^2; check one segment against
    # a fine polyline through slerp's own points
    ends = pts[:2]
    fine = slerp(ends[0], ends[1], torch.linspace(0, 1, 20001, dtype=torch.float64))
    polyline = float((fine[1:] - fine[:-1]).norm(dim=1).sum())
    assert exact_path_length(field, ends, 0.0, sphere=True) == pytest.approx(polyline, rel=1e-8)


def test_single_gaussian_chord_matches_closed_form():
    # One standard Gaussian: along the chord x0 + u dx, log p - log p(x0) = -(B u + C u^2) / 2 with
    # B = 2 x0.dx, C = |dx|^2. A negative alpha makes w a Gaussian in u, whose integral is an erf.
    d, alpha = 32, -0.02
    field = GaussianMixtureField(torch.zeros(1, d, dtype=torch.float64), 1.0)
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(2, d, generator=g, dtype=torch.float64) * 2
    dx = x1 - x0
    b, c, k = float(2 * x0 @ dx), float(dx @ dx), -alpha / 2
    s = math.sqrt(k * c)
    shift = b / (2 * c)
    integral = math.exp(k * b * b / (4 * c)) * math.sqrt(math.pi) / (2 * s) * (
        math.erf(s * (1 + shift)) - math.erf(s * shift))
    expected = math.sqrt(c) * integral
    assert exact_path_length(field, torch.stack([x0, x1]), alpha) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("sphere", [False, True])
def test_length_and_log_density_match_a_fine_trapezoid_of_log_prob(family, sphere):
    # An independent check on a family problem (mixture switches between frames): evaluate field.log_prob
    # at 2,001 points of every chord / slerp arc and integrate w |gamma'| with the trapezoid rule.
    problem = next(p for p in family if p.dim == 1024 and p.sphere == sphere)
    pts = problem.initial_path().to(torch.float64)
    u = torch.linspace(0, 1, 2001, dtype=torch.float64)
    log_p0 = problem.field.log_prob(pts[:1])[0]
    total = 0.0
    logp_segments = []
    for i in range(len(pts) - 1):
        curve = slerp(pts[i], pts[i + 1], u) if sphere else pts[i] + u[:, None] * (pts[i + 1] - pts[i])
        logp = problem.field.log_prob(curve) - log_p0
        logp_segments.append(logp)
        speed = (curve[1:] - curve[:-1]).norm(dim=1)  # polyline of 2,001 points: converges to the curve
        w = torch.exp(-problem.alpha * logp)
        total += float((0.5 * (w[1:] + w[:-1]) * speed).sum())
    assert exact_path_length(problem.field, pts, problem.alpha, sphere=sphere) == pytest.approx(total, rel=1e-5)
    along = exact_path_log_density(problem.field, pts, u[::100].expand(len(pts) - 1, -1), sphere=sphere)
    assert torch.allclose(along, torch.stack(logp_segments)[:, ::100], atol=1e-6, rtol=0)


def test_cumulative_length_ends_at_the_length(family):
    problem = family[-1]
    pts = problem.initial_path()
    cumulative = exact_cumulative_length(problem.field, pts, problem.alpha, sphere=problem.sphere)
    assert cumulative[0] == 0 and (cumulative[1:] > cumulative[:-1]).all()
    length = exact_path_length(problem.field, pts, problem.alpha, sphere=problem.sphere)
    assert float(cumulative[-1]) == pytest.approx(length, rel=1e-6)


def test_family_is_large_varied_and_hard(family):
    assert len(family) >= 20
    assert {p.dim for p in family} == {1024, 4096, 16384}
    assert {p.sphere for p in family} == {False, True}
    assert len({p.seed for p in family}) >= 4
    for p in family:
        assert p.field.means.shape == (6, p.dim) and torch.all(p.field.stds == 1)
        h = hardness(p)
        assert 1000 <= h.log_density_range <= 8000, p.name
        assert min(ALPHA_TIMES_RANGE) * 0.9 <= p.alpha * h.log_density_range <= max(ALPHA_TIMES_RANGE) * 1.1
        # what makes it hard: the trapezoid readout off by >= 100 nats, 15% to 40% of the range
        assert h.hard, (p.name, h)


def test_family_is_deterministic(family):
    again = hard_family()
    for p, q in zip(family, again, strict=True):
        assert p.name == q.name and p.alpha == q.alpha
        assert torch.equal(p.start, q.start) and torch.equal(p.field.means, q.field.means)
        assert torch.equal(exact_log_density(p.field, p.initial_path()), exact_log_density(q.field, q.initial_path()))


def test_length_gradient_matches_finite_differences():
    field = GaussianMixtureField(_random_path(3, 16, 2), 1.0, torch.tensor([0.2, 0.3, 0.5]))
    pts = _random_path(5, 16, 3).requires_grad_(True)
    for sphere in (False, True):
        length = exact_segment_lengths(field, pts, 0.3, sphere=sphere, rtol=1e-12).sum()
        (grad,) = torch.autograd.grad(length, pts)
        direction = _random_path(5, 16, 4)
        direction[0] = direction[-1] = 0
        h = 1e-5
        with torch.no_grad():
            up = exact_path_length(field, pts + h * direction, 0.3, sphere=sphere, rtol=1e-12)
            down = exact_path_length(field, pts - h * direction, 0.3, sphere=sphere, rtol=1e-12)
        assert float((grad * direction).sum()) == pytest.approx((up - down) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("sphere", [False, True])
def test_optimiser_finds_the_straight_line_and_the_great_circle(sphere):
    # alpha = 0: the shortest path is the straight line (length |b - a|) or the great-circle arc (r theta)
    field = GaussianMixtureField(torch.zeros(1, 8, dtype=torch.float64), 1.0)
    zigzag = _random_path(9, 8, 5)
    if sphere:
        zigzag = zigzag * (5.0 / zigzag.norm(dim=1, keepdim=True))
    a, b = zigzag[0], zigzag[-1]
    run = PathOptimiser(field, a, b, zigzag, 0.0, sphere=sphere)
    run.run(500)
    expected = float(5.0 * torch.arccos(a @ b / 25.0)) if sphere else float((b - a).norm())
    assert run.length() == pytest.approx(expected, rel=1e-8)


def test_subspace_keeps_lengths_and_densities(family):
    problem = next(p for p in family if p.sphere)
    subspace = Subspace.of(problem)
    a, b = solver_ends(problem)
    pts = slerp(a, b, torch.linspace(0, 1, 17, dtype=torch.float64))  # in S up to float64 rounding
    coords = subspace.coordinates(pts)
    assert torch.allclose(subspace.lift(coords), pts, atol=1e-9, rtol=0)
    full = exact_path_length(problem.field, pts, problem.alpha, sphere=True)
    assert exact_path_length(subspace.field, coords, problem.alpha, sphere=True) == pytest.approx(full, rel=1e-9)
