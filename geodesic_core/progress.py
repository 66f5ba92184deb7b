"""The one callback shape shared by every long-running function: ``callback(progress) -> bool | None``.

``solve_bvp``, ``solve_ivp``, ``invert`` and ``generate`` call it after every step with a ``Progress``
(``step_lpips``, ``perceptual_metrics`` and ``retime`` after every LPIPS chunk: frames done of the pass);
returning False stops the solvers early with the best result so far (``invert`` and ``generate`` cannot
stop half-way without a wrong result, so they ignore it: raise to cancel them). An exception raised in a
callback propagates, which is how a host application cancels any of them.
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
