"""Time the node pipeline at real model size, in-process through ComfyUI (a benchmark, not a test).

Stages, each timed on its own: (1) VAE-encode two keyframe images and invert them to the noise
level, (2) geodesic BVP solve to N frames, once per solver method, (3) generate the clean latents of
every frame and VAE-decode them. For every stage it reports wall seconds, the number of model calls
(UNet and VAE forward passes, with images per call) and peak memory (process RSS on CPU, torch max
allocated on GPU). The floor of a stage is the same sequence of plain forward calls (same modules,
same inputs, same batch sizes) replayed alone: pipeline / floor is the overhead of everything else
(solver math, ComfyUI's sampling wrappers, conditioning, copies, synchronisation). On CPU every
forward pass is also timed in place (process CPU seconds), so "stage / inside model calls" measures
the same overhead within one run; on a shared CPU machine that is the reliable figure, because
other jobs stretch the separately timed replay by up to 2x either way.

    bash dev.sh py -m benchmarks.pipeline --arch tiny --size 64 --compare-batch-size 4   # ~4 min, 2 free cores
    bash dev.sh py -m benchmarks.pipeline --arch sd15 --size 256 --invert-steps 2 --decode-steps 1 \
        --max-evals 30 --methods default --skip-readout --floor-samples 1 --repeats 2 \
        --compare-batch-size 4                                        # ~12 min of 2 free cores
    bash dev.sh py -m benchmarks.pipeline --arch sdxl --size 256 --invert-steps 2 --decode-steps 1 \
        --max-evals 30 --methods default --skip-readout --floor-samples 1 --repeats 2   # ~9 min, 17 GiB RAM
    python3 -m benchmarks.pipeline --arch sd15 --size 512 --device cuda --repeats 2 --comfy PATH/ComfyUI
    python3 -m benchmarks.pipeline --arch sdxl --size 1024 --device cuda --repeats 2 --comfy PATH/ComfyUI

On a GPU machine without ComfyUI installed, a copy of the ComfyUI 0.3.75 source tree (models/ not
needed) is enough, plus the few of its requirements the in-process path imports (av, torchsde,
trampoline on top of torch, transformers, safetensors, einops, scipy, aiohttp, psutil, matplotlib).

Checkpoints for --arch sd15 / sdxl are generated on first use (benchmarks/make_checkpoints.py) into
--checkpoint-dir; the weights are random, so timings are real but the images are noise and the
solver's iteration counts are those of a random-weight density.

Modules: benchmarks/measure.py (timing, peak memory, model-call recorder and replay),
benchmarks/pipeline_stages.py (the stages through the nodes), benchmarks/pipeline_report.py (tables
and ratios); ComfyUI and the pack are imported by devtools/comfy_harness.py. This file is the command
line.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

from devtools import comfy_harness as harness

from .measure import ModelCallRecorder
from .pipeline_report import format_batch_comparison, format_table, machine_description, ratios
from .pipeline_stages import (
    DEFAULT_SIZES,
    Loaded,
    PipelineSettings,
    StageResult,
    checkpoint_for,
    load,
    pipeline_stages,
    vae_modules,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["tiny", "sd15", "sdxl"], default="tiny")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: per arch)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--comfy", type=Path, default=harness.COMFY_DIR, help="ComfyUI source tree")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("/tmp/density_geodesics_bench"))
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--noise-level", type=float, default=0.6)
    parser.add_argument("--invert-steps", type=int, default=25)
    parser.add_argument("--decode-steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="most latents per model call; 0 = automatic, the nodes' default")
    parser.add_argument("--compare-batch-size", type=int, default=None, metavar="N",
                        help="afterwards run the same pipeline (default solver, no floor) with batch_size N and "
                             "print both side by side")
    parser.add_argument("--alpha", type=float, default=0.002)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--max-evals", type=int, default=3000, help="evaluation budget of the default solver")
    parser.add_argument("--paper-max-evals", type=int, default=3000,
                        help="budget of the paper solver (cap it on CPU; the time is then extrapolated)")
    parser.add_argument("--methods", default="default,paper")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the pipeline this many times, report the last (the first pays warm-up)")
    parser.add_argument("--floor-samples", type=int, default=0,
                        help="0: the floor replays every model call; N: N calls per shape, scaled by count")
    parser.add_argument("--skip-readout", action="store_true",
                        help="skip the equal-footing length readout of each path (N extra model evaluations)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    return parser.parse_args()


def run_repeats(args: argparse.Namespace, loaded: Loaded, recorder: ModelCallRecorder, settings: PipelineSettings,
                methods: dict[str, int], floor_samples: int | None, readout: bool) -> list[list[StageResult]]:
    """The pipeline args.repeats times; only the reported (last) repeat pays for the floor replay."""
    runs = []
    for repeat in range(args.repeats):
        recorder.calls.clear()
        last = repeat == args.repeats - 1
        stages = pipeline_stages(loaded, settings, methods, recorder, floor_samples if last else None,
                                 readout=readout)
        runs.append(stages)
        print(f"batch_size {settings.batch_size}, repeat {repeat + 1}/{args.repeats}: pipeline "
              f"{sum(s.wall_s for s in stages if s.stage != 'solve_paper'):.2f} s", flush=True)
    return runs


def main() -> None:
    args = parse_args()
    # ComfyUI's and the nodes' INFO lines (model loads, per-stage call counts) show progress
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    comfy_root = args.comfy.resolve()
    checkpoint = checkpoint_for(args.arch, args.checkpoint_dir.resolve(), comfy_root)
    harness.import_comfy(comfy_root, cpu=args.device == "cpu")
    loaded = load(checkpoint, "a photograph of a mountain lake at dawn")
    settings = PipelineSettings(args.size or DEFAULT_SIZES[args.arch], args.frames, args.noise_level,
                                args.invert_steps, args.decode_steps, args.batch_size, args.alpha,
                                args.tolerance, args.max_evals)
    budgets = {"default": args.max_evals, "paper": args.paper_max_evals}
    methods = {m: budgets[m] for m in args.methods.split(",")}
    recorder = ModelCallRecorder({"unet": loaded.model.model.diffusion_model,
                                  **vae_modules(loaded.vae.first_stage_model)},
                                 time_calls=args.device == "cpu")
    device = loaded.device
    print(f"{args.arch} {settings.size}px on {device}: methods {methods}", flush=True)

    runs = run_repeats(args, loaded, recorder, settings, methods, args.floor_samples, not args.skip_readout)
    compared = None
    if args.compare_batch_size is not None:
        compared = run_repeats(args, loaded, recorder, replace(settings, batch_size=args.compare_batch_size),
                               {"default": budgets["default"]}, None, False)[-1]
    recorder.remove()
    report(args, loaded, settings, methods, checkpoint, runs, compared)


def report(args: argparse.Namespace, loaded: Loaded, settings: PipelineSettings, methods: dict[str, int],
           checkpoint: Path, runs: list[list[StageResult]], compared: list[StageResult] | None) -> None:
    """Print the per-stage table, the ratios and the batch-size comparison; write the JSON summary."""
    device = loaded.device
    stages = runs[-1]
    memory_label = "peak alloc MiB" if device.type == "cuda" else "peak RSS MiB"
    summary = {"machine": machine_description(device), "arch": args.arch, "checkpoint": str(checkpoint),
               "settings": asdict(settings), "methods": methods, "device": str(device),
               "stages": [asdict(s) for s in stages], "ratios": ratios(stages),
               "first_run_wall_s": [round(s.wall_s, 3) for s in runs[0]]}
    for s in stages:
        if "report" in s.extra:
            print(f"{s.stage}: {s.extra['report']}  [readout length {s.extra.get('readout_length')}]")
    print(json.dumps(summary["machine"]))
    print(f"{args.arch} {settings.size}px, {settings.frames} frames, batch_size {settings.batch_size}, "
          f"device {device}")
    print(format_table(stages, memory_label))
    print(json.dumps(summary["ratios"], indent=1))
    if compared is not None:
        summary["compare_batch_size"] = {"batch_size": args.compare_batch_size,
                                         "stages": [asdict(s) for s in compared]}
        print(format_batch_comparison(stages, compared, settings.batch_size, args.compare_batch_size,
                                      memory_label))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
