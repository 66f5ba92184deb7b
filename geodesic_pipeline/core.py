"""geodesic_core as this package's callers see it: one copy of every class, whichever way it was imported, and
the core's names the front ends use (the ComfyUI nodes, the batch tool, the demo), handed on so that they
import the pipeline alone.

Outside ComfyUI the libraries are top-level packages (the repository root on sys.path, as `python -m` and
pytest give it, or installed from pyproject.toml), and this package is `geodesic_pipeline`. Inside ComfyUI
the repository is one package, the node pack, under a name ComfyUI makes from its folder, and this package
is `<pack>.geodesic_pipeline`: it takes the pack's own geodesic_core, so that the nodes catch the same
GeodesicInputError the pipeline raises (docs/development.md, "Packaging").
"""

from __future__ import annotations

if __package__ == "geodesic_pipeline":
    import geodesic_core as core
    from geodesic_core import diffusers_adapter, fields, geometry, lpips, perceptual, progress, validation
else:
    from .. import geodesic_core as core
    from ..geodesic_core import diffusers_adapter, fields, geometry, lpips, perceptual, progress, validation

# One name a line (a plain alias, which type checkers read as the class or function itself).
# Errors, checks, budgets and the solver choices the front ends check and offer:
GeodesicInputError = core.GeodesicInputError
check_alpha = validation.check_alpha
check_choice = validation.check_choice
check_positive = validation.check_positive
METHODS = core.METHODS
SEARCHES = core.SEARCHES
check_budget = core.check_budget
one_pass_evals = core.one_pass_evals
# the density field over a model's denoiser, and what is solved and read out in it:
Denoiser = fields.Denoiser
DenoiserField = core.DenoiserField
generate = core.generate
invert = core.invert
solve_ivp = core.solve_ivp
read_path = core.read_path
PathReadout = core.PathReadout
geodesic_efficiency = core.geodesic_efficiency
EfficiencyResult = core.EfficiencyResult
closure = core.closure
Callback = progress.Callback
Progress = progress.Progress
# the progress bar's estimate of work of unknown length, and what a usual run spends:
estimated_fraction = progress.estimated_fraction
SOLVE_PASSES = progress.SOLVE_PASSES
READOUT_PASSES = progress.READOUT_PASSES
knot_interval = geometry.knot_interval
flat = geometry.flat
segment_lengths = geometry.segment_lengths
# LPIPS and the perceptual metrics of frames:
LPIPS = lpips.LPIPS
load_lpips = lpips.load_lpips
weights_file = lpips.weights_file
working_bytes = lpips.working_bytes
PerceptualMetrics = perceptual.PerceptualMetrics
perceptual_metrics = perceptual.perceptual_metrics
even_in_distance = perceptual.even_in_distance
retime = perceptual.retime
retime_work = perceptual.retime_work
interpolate_points = perceptual.interpolate_points
lpips_size = perceptual.lpips_size

__all__ = [
    "LPIPS", "METHODS", "READOUT_PASSES", "SEARCHES", "SOLVE_PASSES", "Callback", "Denoiser", "DenoiserField",
    "EfficiencyResult", "GeodesicInputError", "PathReadout", "PerceptualMetrics", "Progress", "check_alpha",
    "check_budget", "check_choice", "check_positive", "closure", "core", "diffusers_adapter", "estimated_fraction",
    "even_in_distance", "flat", "generate", "geodesic_efficiency", "geometry", "interpolate_points", "invert",
    "knot_interval", "load_lpips", "lpips_size", "one_pass_evals", "perceptual_metrics", "read_path", "retime",
    "retime_work", "segment_lengths", "solve_ivp", "weights_file", "working_bytes",
]
