"""The one place the pack touches ComfyUI internals that no public API promises, or that differ by version.

Tested in CI on ComfyUI 0.3.75; read in the source of 0.38.1 (see README, "ComfyUI versions"). If one of
these changes shape, tests/comfy_inprocess/test_comfy_contract.py::test_comfy_internals_keep_their_shape fails
and names it; at run time the nodes raise ComfyInternalsChanged instead of computing something wrong.

- The guider's ``conds``: ``CFGGuider.predict_noise`` reads ``self.conds`` at every model call, and the
  guider passes itself to ``Sampler.sample`` as ``model_wrap``, so the bridge swaps per-point conds in.
- Model conds (``comfy.conds``): ``.cond`` holds the tensor, ``_copy_with`` makes the same kind of cond
  around a new tensor (what ComfyUI's own ``process_cond`` does); ``CONDConstant`` and ``CONDList`` are
  not per-sample and are never blended.
- Free memory: current ComfyUI asks the model patcher (``get_free_memory``, which adds what dynamic VRAM
  can free); 0.3.75's patcher has no such method and ComfyUI calls ``comfy.model_management`` directly.
- The patcher class of a loaded model: current ComfyUI loads checkpoints into ``CoreModelPatcher`` (the dynamic
  VRAM patcher where that is on); 0.3.75 has only ``ModelPatcher``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import comfy.conds
import comfy.model_management
import comfy.model_patcher
import torch

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher

FIXED_COND_TYPES = (comfy.conds.CONDConstant, comfy.conds.CONDList)
CROSS_ATTN_COND = comfy.conds.CONDCrossAttn


class ComfyInternalsChanged(RuntimeError):
    """A ComfyUI internal the pack relies on no longer has the shape it had in the versions it supports."""


def sampling_conds(model_wrap) -> dict:
    """The processed conds (name -> list of cond dicts) the guider reads at each model call."""
    conds = getattr(model_wrap, "conds", None)
    if not isinstance(conds, dict):
        raise ComfyInternalsChanged(
            f"ComfyUI's sampler passed a {type(model_wrap).__name__} without a `conds` dict to Sampler.sample; "
            f"Density Geodesics supports the guider of ComfyUI 0.3.75 to 0.38.1: please report your version")
    return conds


def set_sampling_conds(model_wrap, conds: dict) -> None:
    model_wrap.conds = conds


def cond_with(cond, value):
    """A model cond of the same kind as ``cond`` holding ``value``."""
    return cond._copy_with(value)


def free_memory(model: ModelPatcher, device: torch.device) -> int:
    """Bytes free for a model call on ``device``, asked the way the running ComfyUI batches its own conds."""
    patcher = getattr(model.model, "current_patcher", None) or model
    ask_patcher = getattr(patcher, "get_free_memory", None)
    if callable(ask_patcher):
        return ask_patcher(device)
    return comfy.model_management.get_free_memory(device)


def model_patcher_class() -> type:
    """The patcher class this ComfyUI wraps a loaded checkpoint's model (and VAE) in."""
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
