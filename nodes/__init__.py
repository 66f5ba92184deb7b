"""Density Geodesics ComfyUI nodes (V3 schema API).

The *_nodes.py files declare the nodes; each execute() calls the plain modules beside them:
encode_decode (inversion and generation), geodesics_on_model (BVP, IVP, readout), bridge (work inside
ComfyUI's sampler), comfy_internals (private or version-dependent ComfyUI internals), model_facts (what
the pack asks of a MODEL), path (the GEODESIC_PATH value), conditioning (per-point blended conditioning),
plot (readout plot and table), inputs (shared inputs).
"""

from .keyframe_nodes import EncodeKeyframes, JoinKeyframes, PathToLatent
from .output_nodes import DecodePath, DensityReadout, PerceptualMetricsNode, RespacePath
from .solve_nodes import SolveBVP, SolveIVP

NODES = [EncodeKeyframes, JoinKeyframes, SolveBVP, SolveIVP, DensityReadout, DecodePath, PathToLatent,
         PerceptualMetricsNode, RespacePath]

__all__ = ["NODES", "DecodePath", "DensityReadout", "EncodeKeyframes", "JoinKeyframes", "PathToLatent",
           "PerceptualMetricsNode", "RespacePath",
           "SolveBVP", "SolveIVP"]
