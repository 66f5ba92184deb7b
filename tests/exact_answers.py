"""Exact answers the core tests share: the weighted distance in 2-D by fast marching, and a Gaussian's
closed-form denoiser and probability-flow map."""

import math

import numpy as np
import skfmm
import torch
from scipy.interpolate import RegularGridInterpolator

# Eight modes on a circle of radius 2: a path between two of them must go round the empty centre.
RING = torch.stack([2 * torch.tensor([math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)]) for k in range(8)])


def fast_marching_distance(field, a, b, alpha, half_width=3.5, n=801):
    """Weighted distance from a to b by solving |grad T| = w on a fine grid (scikit-fmm, 2nd order)."""
    xs = np.linspace(-half_width, half_width, n)
    dx = float(xs[1] - xs[0])
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1))
    log_p = field.log_prob(grid).numpy().reshape(n, n) - float(field.log_prob(a[None]))
    w = np.exp(-alpha * log_p)
    r0 = 2 * dx  # the front starts on a small circle round a, where w = 1 to first order
    phi = np.hypot(gx - float(a[0]), gy - float(a[1])) - r0
    travel = skfmm.travel_time(phi, 1.0 / w, dx=dx, order=2)
    return float(RegularGridInterpolator((xs, xs), travel)(b.numpy()[None])[0]) + r0


MU, TAU = 0.7, 1.3  # data distribution N(MU, TAU^2 I): the exact denoiser and score are known


def gaussian_denoiser(kind):
    def denoise(x, sigma, t=None):
        if kind == "ve":
            return MU + TAU**2 / (TAU**2 + sigma**2) * (x - MU)
        scale = 1 - sigma
        return MU + scale * TAU**2 / (scale**2 * TAU**2 + sigma**2) * (x - scale * MU)
    return denoise


def gaussian_flow_map(x0, sigma, kind):
    """Closed form of the probability-flow ODE for N(MU, TAU^2 I) data from level 0 to ``sigma``: the ODE is
    linear and maps each marginal onto the next, x = mean(sigma) + std(sigma) / TAU * (x0 - MU)."""
    if kind == "ve":
        return MU + math.sqrt(TAU**2 + sigma**2) / TAU * (x0 - MU)
    return (1 - sigma) * MU + math.sqrt((1 - sigma) ** 2 * TAU**2 + sigma**2) / TAU * (x0 - MU)
