"""Full-size SD1.5- and SDXL-shaped checkpoints with random weights, for honest timings offline.

The speed of a UNet / VAE forward pass does not depend on the weights' values, so a checkpoint
with the real architecture and random values times like the real one. This scales
devtools/make_tiny_sd15.py up to the real channel multipliers and depths and adds the SDXL layout
(two text encoders, ADM label embedding). ComfyUI's CheckpointLoaderSimple detects the files as
supported_models.SD15 / supported_models.SDXL.

The files are GBs (SD1.5 ~2.1 GB, SDXL ~6.9 GB in fp16): write them outside the repository or to
an ignored folder, never commit them.

    bash dev.sh py -m benchmarks.make_checkpoints --arch sd15 --out /tmp/bench/sd15_random.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from devtools import comfy_harness as harness
from devtools import make_tiny_sd15  # its meta state dicts, seeded random fill and VAE config

# The UNet configurations ComfyUI itself uses for these families
# (comfy/model_detection.py, unet_config_from_diffusers_unet: SD15 and SDXL); the keys that
# supported_models.SD15 / SDXL compare are therefore exactly those of the released models.
UNET_CONFIGS: dict[str, dict] = {
    "sd15": {
        "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
        "model_channels": 320, "channel_mult": [1, 2, 4, 4], "num_res_blocks": [2, 2, 2, 2],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "context_dim": 768, "use_linear_in_transformer": False, "adm_in_channels": None,
        "num_heads": 8, "num_head_channels": -1, "use_spatial_transformer": True, "legacy": False,
        "use_temporal_attention": False,
    },
    "sdxl": {
        "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
        "model_channels": 320, "channel_mult": [1, 2, 4], "num_res_blocks": [2, 2, 2],
        "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_middle": 10,
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
        "context_dim": 2048, "use_linear_in_transformer": True, "adm_in_channels": 2816,
        "num_classes": "sequential", "num_heads": -1, "num_head_channels": 64,
        "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    },
}

# Key prefixes of the original (non-diffusers) checkpoint files, which
# supported_models.SD15/SDXL.process_clip_state_dict map to ComfyUI's clip_l / clip_g.
TEXT_ENCODER_PREFIXES: dict[str, list[tuple[str, str]]] = {
    "sd15": [("sd1_clip_config.json", "cond_stage_model.transformer.")],
    "sdxl": [("sd1_clip_config.json", "conditioner.embedders.0.transformer."),
             ("clip_config_bigg.json", "conditioner.embedders.1.model.transformer.")],
}


def text_encoder_state(comfy_root: Path, config_name: str, meta_state_dict: Callable) -> dict:
    """Meta state dict of one CLIP text encoder in ComfyUI's layout (text_model.*, text_projection)."""
    import comfy.ops
    from comfy.clip_model import CLIPTextModel

    config = json.loads((comfy_root / "comfy" / config_name).read_text())
    state = meta_state_dict(lambda: CLIPTextModel(config, None, None, comfy.ops.disable_weight_init))
    # SD1.x files carry no projection for CLIP-L; SDXL's CLIP-G needs it for the pooled output
    keep_projection = config_name == "clip_config_bigg.json"
    return {k: v for k, v in state.items()
            if k.startswith("text_model.") or (keep_projection and k.startswith("text_projection"))}


def random_checkpoint(arch: str, comfy_root: Path, seed: int, dtype_name: str, clip_dtype_name: str) -> dict:
    """All tensors of a random-weight checkpoint of `arch`, keyed as in the original files."""
    import comfy.ops
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    dtypes = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16,
              "fp8": torch.float8_e4m3fn}
    generator = torch.Generator().manual_seed(seed)
    unet = make_tiny_sd15.meta_state_dict(
        lambda: UNetModel(**UNET_CONFIGS[arch], operations=comfy.ops.disable_weight_init))
    # SD1.x and SDXL share the KL-VAE architecture (only the trained values differ)
    vae = make_tiny_sd15.meta_state_dict(lambda: AutoencoderKL(ddconfig=make_tiny_sd15.SD_VAE_DDCONFIG, embed_dim=4))
    state = make_tiny_sd15.fill(unet, "model.diffusion_model.", dtypes[dtype_name], generator)
    for config_name, prefix in TEXT_ENCODER_PREFIXES[arch]:
        encoder = text_encoder_state(comfy_root, config_name, make_tiny_sd15.meta_state_dict)
        state.update(make_tiny_sd15.fill(encoder, prefix, dtypes[clip_dtype_name], generator))
    state.update(make_tiny_sd15.fill(vae, "first_stage_model.", dtypes[dtype_name], generator))
    return state


def write_checkpoint(arch: str, out: Path, comfy_root: Path = harness.COMFY_DIR, seed: int = 0,
                     dtype_name: str = "fp16", clip_dtype_name: str = "fp16") -> dict:
    """Write the checkpoint (skipped when `out` already exists) and return a summary."""
    if arch not in UNET_CONFIGS:
        raise ValueError(f"arch: expected one of {sorted(UNET_CONFIGS)}, got {arch!r}")
    if out.exists():
        return {"out": str(out), "bytes": out.stat().st_size, "reused": True}
    # writing needs no accelerator, and a CPU-only torch would fail model_management's CUDA probe
    harness.import_comfy(comfy_root, cpu=True)
    from safetensors.torch import save_file

    started = time.perf_counter()
    state = random_checkpoint(arch, comfy_root, seed, dtype_name, clip_dtype_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    meta = {"random_weights": json.dumps({"arch": arch, "seed": seed, "dtype": dtype_name,
                                          "note": "random weights, real layout, for timing only"})}
    save_file(state, str(partial), metadata=meta)
    os.replace(partial, out)  # a killed run never leaves a truncated file under the final name
    return {"out": str(out), "bytes": out.stat().st_size, "keys": len(state), "reused": False,
            "params": sum(t.numel() for t in state.values()),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(UNET_CONFIGS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors (kept if it exists)")
    parser.add_argument("--comfy", type=Path, default=harness.COMFY_DIR, help="ComfyUI source tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["fp16", "fp32", "bf16"], default="fp16",
                        help="storage dtype of UNet and VAE (released SD1.5/SDXL files are fp16)")
    parser.add_argument("--clip-dtype", choices=["fp8", "fp16", "fp32", "bf16"], default="fp16")
    args = parser.parse_args()
    summary = write_checkpoint(args.arch, args.out, args.comfy.resolve(), args.seed, args.dtype,
                               args.clip_dtype)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
