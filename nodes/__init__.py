"""Density Geodesics ComfyUI nodes (V3 schema API). Engine code lives in the plain modules beside them."""

from .keyframe_nodes import EncodeKeyframes, JoinKeyframes, PathToLatent
from .output_nodes import DecodePath, DensityReadout, PerceptualMetrics, RespacePath
from .solve_nodes import SolveBVP, SolveIVP

NODES = [EncodeKeyframes, JoinKeyframes, SolveBVP, SolveIVP, DensityReadout, DecodePath, PathToLatent,
         PerceptualMetrics, RespacePath]

__all__ = ["NODES", "DecodePath", "DensityReadout", "EncodeKeyframes", "JoinKeyframes", "PathToLatent",
           "PerceptualMetrics", "RespacePath",
           "SolveBVP", "SolveIVP"]
