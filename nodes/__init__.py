"""Density Geodesics ComfyUI nodes (V3 schema API). Engine code lives in the plain modules beside them."""

from .keyframe_nodes import EncodeKeyframes, JoinKeyframes, PathToLatent
from .output_nodes import DecodePath, DensityReadout
from .solve_nodes import SolveBVP, SolveIVP

NODES = [EncodeKeyframes, JoinKeyframes, SolveBVP, SolveIVP, DensityReadout, DecodePath, PathToLatent]

__all__ = ["NODES", "DecodePath", "DensityReadout", "EncodeKeyframes", "JoinKeyframes", "PathToLatent",
           "SolveBVP", "SolveIVP"]
