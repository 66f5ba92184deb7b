"""The in-process node tests: ComfyUI 0.3.75 (CPU) imported in the test process, this repository imported as
the pack the way ComfyUI imports custom_nodes/<folder>, and the generated SD1.5-layout checkpoint.

Images are 64x64 px (8x8 latents) and step counts tiny to keep CPU time low; the weights are random, so the
tests check structure and exact identities, never image quality. The checkpoint, prompts and keyframes are
made once for all the modules here (session scope), under inference mode as ComfyUI runs nodes.
"""
from __future__ import annotations

import pytest
import torch

from devtools import comfy_harness as harness

harness.import_comfy()  # before anything from ComfyUI: puts it on sys.path and forces CPU
harness.import_pack()
from density_geodesics.nodes import JoinKeyframes, SolveBVP  # noqa: E402
from inprocess_support import FAST_BVP, encode_keyframes, random_images  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _inference_mode():
    # ComfyUI executes every node under inference mode; tests do the same.
    with torch.inference_mode():
        yield


@pytest.fixture(scope="session")
def sd():
    with torch.inference_mode():
        model, clip, vae = harness.load_tiny_checkpoint()
        return {"model": model, "clip": clip, "vae": vae,
                "cat": harness.encode_prompt(clip, "a photo of a cat"),
                # 120 words, more than one 77-token window: this conditioning has 154 tokens.
                "dog": harness.encode_prompt(clip, "a dog " * 60),
                "empty": harness.encode_prompt(clip, "")}


@pytest.fixture(scope="session")
def keyframes(sd):
    """Three keyframes: two with the cat prompt, one with the (154-token) dog prompt."""
    with torch.inference_mode():
        cats = encode_keyframes(sd, random_images(2, 0), sd["cat"])
        dog = encode_keyframes(sd, random_images(1, 1), sd["dog"])
        return JoinKeyframes.execute(cats, dog)[0]


@pytest.fixture(scope="session")
def solved(sd, keyframes):
    """A 5-frame solve through the three keyframes, shared by the tests that only read it."""
    with torch.inference_mode():
        return SolveBVP.execute(sd["model"], keyframes, 5, False, "equal", **FAST_BVP)[0]
