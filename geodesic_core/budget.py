"""The score-evaluation budget of one solve: how many evaluations may be made, and how many have been.

Callers that must keep evaluations back for a later stage (a solver's final readout) say so where they ask,
with ``keep``; nothing is reserved behind their back.
"""

from __future__ import annotations

from dataclasses import dataclass


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
