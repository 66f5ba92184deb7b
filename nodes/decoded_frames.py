"""Which path points the IMAGE batches returned by Decode Path show, so that Density Readout pairs frames with
the points they were decoded from instead of trusting their count.

ComfyUI hands a node's output, the very tensor object, to every input linked to it (and keeps it while the
output is cached), so a record keyed by that object stays true exactly as long as the object lives. A batch
that went through any other node is a new tensor with no record: its origin is unknown.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from ..geodesic_pipeline.core import GeodesicInputError
from .path import GeodesicPath

# id(images) -> (a weak reference to that batch, the path of the points its frames were decoded from)
_ORIGINS: dict[int, tuple[weakref.ref, GeodesicPath]] = {}


def remember_decoded(images: Tensor, frames: GeodesicPath) -> Tensor:
    """Record that frame i of ``images`` was decoded from point i of ``frames``; the record goes with the batch."""
    key = id(images)
    # The callback runs while the batch is freed, before its id can be given to another object.
    _ORIGINS[key] = (weakref.ref(images, lambda _dead: _ORIGINS.pop(key, None)), frames)
    return images


def decoded_from(images: Tensor) -> GeodesicPath | None:
    """The path whose points ``images`` were decoded from, if Decode Path made this very batch."""
    entry = _ORIGINS.get(id(images))
    return entry[1] if entry is not None and entry[0]() is images else None


def check_frames_of_path(images: Tensor, path: GeodesicPath) -> None:
    """``images`` must show ``path``'s points one to one: checked point by point when Decode Path made them,
    by count otherwise (a video's own frames beside its encoded path, frames that went through other nodes)."""
    frames = decoded_from(images)
    if frames is None:
        if len(images) != len(path):
            raise GeodesicInputError(
                f"images: expected the {len(path)} decoded frames of this path, got {len(images)} images")
        return
    if frames.points.shape != path.points.shape or not torch.equal(frames.points, path.points):
        raise GeodesicInputError(
            f"images: these {len(frames)} frames were decoded from other points than this path's {len(path)} "
            f"(an even LPIPS decode places its frames elsewhere on the path); connect the frames_path output of "
            f"the Decode Path that made them to path, so that each frame is read out where it was decoded")
