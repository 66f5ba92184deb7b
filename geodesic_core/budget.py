"""The score-evaluation budget of one solve: how many evaluations may be made, and how many have been.

Callers that must keep evaluations back for a later stage (a solver's final readout) say so where they ask,
with ``keep``; nothing is reserved behind their back.
"""

from __future__ import annotations

from dataclasses import dataclass

from .validation import GeodesicInputError


@dataclass
class Budget:
    limit: int | None   # None: unlimited
    spent: int = 0

    def left(self, keep: int = 0) -> int | None:
        """Evaluations that may still be made while ``keep`` stay available afterwards (None: unlimited)."""
        return None if self.limit is None else self.limit - keep - self.spent

    def affords(self, n: int, keep: int = 0) -> bool:
        left = self.left(keep)
        return left is None or n <= left

    def spend(self, n: int) -> None:
        self.spent += n


def one_pass_evals(n_points: int) -> int:
    """Score evaluations of the smallest readout of an ``n_points`` path: every point and the quadrature's
    first nodes (3 per segment). A budget below it cannot report any path."""
    return n_points + 3 * (n_points - 1)


def check_budget(max_evals: int | None, needed: int, purpose: str) -> None:
    """Refuse a budget below one readout (``needed``, e.g. ``one_pass_evals``) of ``purpose``: no path could be
    reported."""
    if max_evals is not None and max_evals < needed:
        raise GeodesicInputError(
            f"max_evals: a budget of {max_evals} score evaluations cannot read out {purpose} even once ({needed}: "
            f"every frame and 3 quadrature points between each two); set max_evals to at least {needed}")
