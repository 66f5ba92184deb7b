"""Per-point conditioning along a path: blend the model-ready conds of neighbouring keyframes.

ComfyUI turns a CONDITIONING into "model conds" (cross-attention tokens, pooled vectors, ...) once per
sampling run. A cond tensor with batch size B equal to the model batch is used as-is, one row per
sample, so a batch of path points can carry one blended conditioning each. Prompts of different
token lengths (77, 154, ...) are first repeated to their least common multiple along the token axis,
which is how ComfyUI itself batches them: repeating all tokens leaves attention unchanged, so at a
keyframe the blend is exactly that keyframe's own conditioning (zero padding would not be).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError
from .comfy_internals import CROSS_ATTN_COND, FIXED_COND_TYPES, cond_with


def _token_aligned(tensors: list[Tensor]) -> list[Tensor]:
    length = math.lcm(*(x.shape[1] for x in tensors))
    return [x.repeat(1, length // x.shape[1], *([1] * (x.ndim - 2))) for x in tensors]


def _blendable(conds: list) -> bool:
    first = conds[0]
    if isinstance(first, FIXED_COND_TYPES) or not all(type(c) is type(first) for c in conds):
        return False
    if not all(isinstance(c.cond, Tensor) and c.cond.shape[0] == 1 for c in conds):
        return False
    if isinstance(first, CROSS_ATTN_COND):
        return all(c.cond.shape[0::2] == first.cond.shape[0::2] for c in conds)
    return all(c.cond.shape == first.cond.shape for c in conds)


def _stacked_model_conds(entries: list[dict]) -> dict[str, Tensor]:
    """Per model-cond name, the keyframes' tensors stacked as [K, ...] (only names that can be blended)."""
    stacked = {}
    for name in entries[0]["model_conds"]:
        conds = [entry["model_conds"].get(name) for entry in entries]
        if any(c is None for c in conds) or not _blendable(conds):
            continue
        tensors = [c.cond for c in conds]
        if isinstance(conds[0], CROSS_ATTN_COND):
            tensors = _token_aligned(tensors)
        stacked[name] = torch.cat(tensors)
    return stacked


class KeyframeConds:
    """Model-ready conds of K distinct keyframe conditionings, blended per sample on demand."""

    def __init__(self, keyframe_conds: list[list[dict]]):
        counts = [len(conds) for conds in keyframe_conds]
        if len(set(counts)) > 1:
            raise GeodesicInputError(
                f"keyframe conditioning: the keyframes' conditionings have {counts} entries; blending needs "
                f"the same number for every keyframe (combine or concat prompts the same way for each)")
        self.keyframe_conds = keyframe_conds
        self.stacks = [_stacked_model_conds([conds[j] for conds in keyframe_conds]) for j in range(counts[0])]

    def blend(self, before: Tensor, after: Tensor, weight: Tensor) -> list[dict]:
        """Conds for a batch: sample i is (1 - weight_i) * keyframe before_i + weight_i * keyframe after_i."""
        if len(self.keyframe_conds) == 1:
            return self.keyframe_conds[0]
        blended = []
        for j, stack in enumerate(self.stacks):
            entry = self.keyframe_conds[0][j].copy()
            model_conds = dict(entry["model_conds"])
            for name, tensors in stack.items():
                w = weight.to(tensors.device, tensors.dtype).reshape(-1, *([1] * (tensors.ndim - 1)))
                value = (1 - w) * tensors[before.to(tensors.device)] + w * tensors[after.to(tensors.device)]
                model_conds[name] = cond_with(model_conds[name], value)
            entry["model_conds"] = model_conds
            blended.append(entry)
        return blended
