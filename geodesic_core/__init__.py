"""geodesic_core: probability-density geodesics (Yu et al., CVPR 2025) from any score, in pure torch.

A density field is anything with a batched ``score(x, t)``; solvers take fields and tensors and return
plain result objects. Never imports ComfyUI. See API.md for the full contract.
"""

from .bvp import METHODS, BVPResult, Outcome, one_pass_evals, solve_bvp
from .fields import DenoiserField, DensityField, GaussianMixtureField, score_from_denoised
from .flow import generate, invert
from .geometry import lerp, slerp
from .ivp import IVPResult, solve_ivp
from .progress import Callback, Progress
from .readout import (
    Closure,
    EfficiencyResult,
    PathReadout,
    closure,
    geodesic_efficiency,
    log_density_along,
    path_length,
    read_path,
)
from .validation import GeodesicInputError

__all__ = [
    "METHODS", "BVPResult", "Callback", "Closure", "DenoiserField", "DensityField", "EfficiencyResult",
    "GaussianMixtureField", "GeodesicInputError", "IVPResult", "Outcome", "PathReadout", "Progress", "closure",
    "generate", "geodesic_efficiency", "invert", "lerp", "log_density_along", "one_pass_evals", "path_length",
    "read_path", "score_from_denoised", "slerp", "solve_bvp", "solve_ivp",
]
