"""Density Geodesics ComfyUI nodes (V3 schema API).

The *_nodes.py files declare the nodes; each execute() calls the plain modules beside them:
encode_decode (inversion and generation), geodesics_on_model (BVP, IVP, readout), bridge (work inside
ComfyUI's sampler), comfy_internals (private or version-dependent ComfyUI internals), model_facts (what
the pack asks of a MODEL), path (the GEODESIC_PATH value), conditioning (per-point blended conditioning),
plot (readout plot and table), inputs (shared inputs), embedded_model (the shipped MNIST latent model as
ComfyUI objects, and held-out digits as images).
"""

from .embedded_nodes import LoadEmbeddedModel, MnistTestDigit
from .keyframe_nodes import EncodeKeyframes, JoinKeyframes, PathToLatent
from .output_nodes import DecodePath, DensityReadout, PerceptualMetricsNode, RespacePath
from .solve_nodes import SolveBVP, SolveIVP

NODES = [LoadEmbeddedModel, MnistTestDigit, EncodeKeyframes, JoinKeyframes, SolveBVP, SolveIVP, DensityReadout,
         DecodePath, PathToLatent, PerceptualMetricsNode, RespacePath]

__all__ = ["NODES", "DecodePath", "DensityReadout", "EncodeKeyframes", "JoinKeyframes", "LoadEmbeddedModel",
           "MnistTestDigit", "PathToLatent",
           "PerceptualMetricsNode", "RespacePath",
           "SolveBVP", "SolveIVP"]
