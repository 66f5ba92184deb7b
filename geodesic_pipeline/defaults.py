"""Per-model defaults, in a module with no heavy imports (command lines read them before torch loads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDefaults:
    """The settings a model is run with unless the user says otherwise."""

    alpha: float        # density weight of the metric, calibrated for this model's density
    noise_level: float  # fraction of the noise schedule the paths live at


# Yu et al. (CVPR 2025) on Stable Diffusion: alpha 0.002 at 60% of the schedule (0.02 at 70%).
PAPER_DEFAULTS = ModelDefaults(alpha=0.002, noise_level=0.6)
