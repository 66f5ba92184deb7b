"""Check per-frame conditioning blending on an SDXL-layout model (too large for CI: run by hand).

    bash dev.sh py -m benchmarks.check_sdxl_blending [--checkpoint PATH]   # ~3 min, ~12 GiB RAM

Two keyframes with different prompts (77 and 154 tokens) go through Encode Keyframes, Join Keyframes,
Geodesic Interpolation (5 frames) and Decode Path on the random-weight SDXL checkpoint of benchmarks/make_checkpoints.py
(written on first use, 6.9 GB). A UNet wrapper records what reaches the model: the ADM vector ``y``
(pooled CLIP-G output plus size embeddings) of every interior frame must be the blend of the keyframes'
vectors at the frame's position (0.25, 0.5, 0.75), and the decoded frames finite. Exits non-zero if not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.pipeline_stages import checkpoint_for, keyframe_images
from devtools import comfy_harness as harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/bench/sdxl_random.safetensors"))
    parser.add_argument("--comfy", type=Path, default=harness.COMFY_DIR)
    args = parser.parse_args()
    checkpoint = args.checkpoint.resolve()
    comfy_root = args.comfy.resolve()
    if not checkpoint.exists():
        checkpoint = checkpoint_for("sdxl", checkpoint.parent, comfy_root)  # writes the random SDXL file
    harness.import_comfy(comfy_root, cpu=not torch.cuda.is_available())
    pack = harness.import_pack_module("nodes")
    model, clip, vae = harness.load_checkpoint(checkpoint)
    if type(model.model).__name__ != "SDXL":
        sys.exit(f"{checkpoint} loaded as {type(model.model).__name__}, not SDXL")
    cat = harness.encode_prompt(clip, "a cat")
    dog = harness.encode_prompt(clip, "a dog on a beach at sunset, " * 10)
    seen = []

    def record(apply_model, call):
        seen.append(call["c"]["y"].clone())
        return apply_model(call["input"], call["timestep"], **call["c"])

    wrapped = model.clone()
    wrapped.set_model_unet_function_wrapper(record)
    images = keyframe_images(64)
    with torch.inference_mode():
        first = pack.EncodeKeyframes.execute(wrapped, cat, 0.6, 2, 0, image=images[:1], vae=vae).result[0]
        y_first = seen[-1][0]
        second = pack.EncodeKeyframes.execute(wrapped, dog, 0.6, 2, 0, image=images[1:], vae=vae).result[0]
        y_second = seen[-1][0]
        keyframes = pack.JoinKeyframes.execute(first, second).result[0]
        path, report, _ = pack.SolveBVP.execute(wrapped, keyframes, 5, False, "equal", 0.002, "default", 1e-3, 20,
                                             True, 0, 0.0).result
        y = seen[-1]  # the final readout call: the three interior frames
        latent, frames = pack.DecodePath.execute(wrapped, path, 1, 0, vae=vae).result
    direction = y_second - y_first
    weights = ((y - y_first) * direction).sum(-1) / (direction * direction).sum()
    off_line = float((y - (y_first + weights[:, None] * direction)).abs().max())
    print(report)
    print(f"y blend weight per interior frame: {[round(float(w), 4) for w in weights]}, "
          f"largest deviation from the blend line {off_line:.2e}")
    print(f"decoded latents {tuple(latent['samples'].shape)}, images {tuple(frames.shape)}")
    expected = torch.tensor([0.25, 0.5, 0.75], dtype=weights.dtype)
    ok = (y.shape[0] == 3 and torch.allclose(weights, expected, atol=1e-4) and off_line < 1e-4
          and bool(torch.isfinite(frames).all()))
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
