"""geodesic_core: probability-density geodesics (Yu et al., CVPR 2025) from any score, in pure torch.

A density field is anything with a batched ``score(x, t)``; solvers take fields and tensors and return
plain result objects. Never imports ComfyUI. See API.md for the full contract.
"""

from .budget import check_budget, one_pass_evals
from .bvp import METHODS, SEARCHES, BVPResult, Outcome, solve_bvp
from .efficiency import Closure, EfficiencyResult, closure, geodesic_efficiency
from .fields import DenoiserField, DensityField, GaussianMixtureField, score_from_denoised
from .flow import generate, invert
from .geometry import lerp, slerp
from .ivp import IVPResult, solve_ivp
from .lpips import LPIPS, load_lpips
from .perceptual import PerceptualMetrics, Retimed, even_in_distance, perceptual_metrics, retime
from .progress import Callback, Progress
from .readout import PathReadout, log_density_along, path_length, read_path
from .validation import GeodesicInputError

__all__ = [
    "LPIPS", "METHODS", "SEARCHES", "BVPResult", "Callback", "Closure", "DenoiserField", "DensityField",
    "EfficiencyResult", "GaussianMixtureField", "GeodesicInputError", "IVPResult", "Outcome", "PathReadout",
    "PerceptualMetrics", "Progress", "Retimed", "check_budget", "closure", "even_in_distance", "generate",
    "geodesic_efficiency", "invert", "lerp",
    "load_lpips", "log_density_along", "one_pass_evals", "path_length", "perceptual_metrics", "read_path", "retime",
    "score_from_denoised", "slerp", "solve_bvp", "solve_ivp",
]
