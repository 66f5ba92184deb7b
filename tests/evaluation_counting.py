"""One home for counting score evaluations where they are made: at the field (or model) itself.

The solvers count their own evaluations (``score_evals``); a test that only reads that count cannot see a
solver that evaluates more than it reports. ``CountingField`` wraps any density field and counts the points
it is really asked to score, so tests compare the reported count with the real one.
"""

from __future__ import annotations

from torch import Tensor

from geodesic_core import DensityField


class CountingField:
    """A density field that counts the points (rows of ``x``) and the batched calls it is asked to score."""

    def __init__(self, field: DensityField):
        self.field = field
        self.points = 0
        self.calls = 0

    def score(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        self.calls += 1
        self.points += int(x.shape[0])
        return self.field.score(x, t)


class CountingDenoiser:
    """A ``denoise(x, sigma, t)`` that counts the latents (rows of ``x``) it passes to the model it wraps."""

    def __init__(self, denoise):
        self.denoise = denoise
        self.latents = 0

    def __call__(self, x: Tensor, sigma: float, t: Tensor | None = None) -> Tensor:
        self.latents += int(x.shape[0])
        return self.denoise(x, sigma, t)

    def take(self) -> int:
        """The latents counted since the last take."""
        counted, self.latents = self.latents, 0
        return counted
