"""The one callback shape shared by every long-running function: ``callback(progress) -> bool | None``.

``solve_bvp``, ``solve_ivp``, ``invert`` and ``generate`` call it after every step with a ``Progress``
(``step_lpips``, ``perceptual_metrics`` and ``retime`` after every LPIPS chunk: frames done of the pass);
returning False stops the solvers early with the best result so far (``invert`` and ``generate`` cannot
stop half-way without a wrong result, so they ignore it: raise to cancel them). An exception raised in a
callback propagates, which is how a host application cancels any of them.

``ProgressEstimate`` turns evaluations done into a progress bar's fraction for work whose length is not known in
advance (a BVP solve stops when its path stops improving, a readout when its quadrature is accurate enough).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass
class Progress:
    step: int                       # steps done (BVP iterations, IVP steps, ODE steps)
    total: int | None               # steps planned, where known in advance (the BVP's are not)
    points: Tensor                  # the current state: the path [N, *shape] (BVP, IVP) or the latents x
    score_evals: int = 0            # score evaluations so far (BVP, IVP)
    length: float | None = None     # current metric length (BVP: of the current full path)
    residual: float | None = None   # current Euler-Lagrange residual (BVP)


Callback = Callable[[Progress], "bool | None"]


# What a run usually spends, in readout passes (``one_pass_evals``) of its path: 30 default solves to 1e-3 on the
# embedded model spent 5.7 to 36 passes of their frames (median 10.9; benchmarks/progress_bar.py), a readout to
# 1e-3 of a great circle between two digits 1.0 to 1.7. About the fewest, not the median: ``estimated_fraction``
# stretches an estimate that is too short, but one that is too long ends in a jump to 100%.
SOLVE_PASSES = 6
READOUT_PASSES = 1


def estimated_fraction(done: int, expected: int | None, most: int) -> float:
    """A progress bar's fraction after ``done`` evaluations of work that usually takes ``expected`` (None: exactly
    ``most``) and at most ``most`` (its budget).

    Linear up to half the expected length, then 1 - expected / (4 done): as if the work needed as many again as
    it has done, so a run longer than expected keeps moving, slower, without reaching 100% (the two pieces meet
    with the same slope). Never below ``done / most``, so work of a known length and a run that spends its whole
    budget move linearly to the end. It grows with ``done`` and is 1 only once the whole budget is spent: the
    host fills the bar when the work ends."""
    most = max(most, 1)
    expected = most if expected is None else min(max(expected, 1), most)
    guess = done / expected if 2 * done <= expected else 1.0 - expected / (4.0 * done)
    return max(guess, min(done / most, 1.0))
