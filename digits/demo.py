"""The demo's run: the two endpoints, the like-for-like comparisons on the MNIST latent model, the judge's
reading of every frame, and the output folder written whole (digits/main.py is its command line)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .settings import COMPARE_CHOICES


def progress(message: str) -> None:
    print(f"[digits] {message}", file=sys.stderr, flush=True)


def held_out_endpoints(seed: int):
    from .mnist import load_split, pick_pairs

    images, labels = load_split("held_out")
    (i, j), = pick_pairs(labels, 1, seed)
    return images[[i, j]], {"source": "held-out digits", "held_out_indices": [i, j],
                            "labels": [int(labels[i]), int(labels[j])]}


def run(args: argparse.Namespace, image_files: list | None) -> dict:
    started = time.time()
    import torch

    from geodesic_pipeline.compare import COMPARISONS, compare_like_for_like, novel_frame_distances
    from geodesic_pipeline.core import closure
    from geodesic_pipeline.images import to_model_images
    from geodesic_pipeline.keyframes import GeodesicSettings
    from geodesic_pipeline.outputs import publish_folder

    from .judge import decode_and_judge, load_judge, realism
    from .latent_model import in_distribution_limit, load_mnist_model
    from .mnist import NATIVE_SIZE, distance_to_training, pad_to_model
    from .render import save_animation, save_density_plot, save_strip
    from .report import (
        closure_line,
        difference_line,
        difference_summary,
        format_table,
        results_document,
        snap_line,
        solver_line,
    )

    torch.set_num_threads(args.threads)
    comparisons = [COMPARISONS[key] for key in COMPARE_CHOICES[args.compare]]
    notices = []
    if image_files is not None:
        digits, notices = to_model_images(image_files, args.images, (NATIVE_SIZE, NATIVE_SIZE))
        images = pad_to_model(digits)
        inputs = {"source": "image files", "files": [str(p) for p in args.images]}
    else:
        images, inputs = held_out_endpoints(args.seed)
    for notice in notices:
        progress(f"NOTICE {notice}")
    distances, limit = distance_to_training(images), in_distribution_limit()
    judge_reliable = bool((distances <= limit).all())
    if not judge_reliable:
        progress(f"WARNING the inputs are unlike the training digits: RMS distance to the nearest training digit "
                 f"{', '.join(f'{d:.2f}' for d in distances)}, every held-out digit is within {limit:.2f}. "
                 "The judge's labels are unreliable and the model's density is extrapolated.")
    inputs |= {"distance_to_nearest_training_digit": distances.tolist(), "in_distribution_limit": limit,
               "notices": notices}

    progress("loading the MNIST latent model and the judge")
    model = load_mnist_model(args.noise_level, args.ode_steps)
    judge = load_judge()
    progress(f"inverting 2 images to noise level {args.noise_level} (sigma {model.sigma:.3f}, "
             f"{args.ode_steps} DDIM steps)")
    latents = model.to_latents(images)

    def report_bvp(comparison, state) -> None:
        if state.step % 10 == 0:
            progress(f"{comparison.geodesic}: iteration {state.step}, {len(state.points)} points, "
                     f"length {state.length:.4g}, residual {state.residual:.2e}")

    progress(f"solving {' and '.join(c.geodesic for c in comparisons)} (alpha {args.alpha}, {args.frames} points)")
    reports, solves = compare_like_for_like(model, latents[0], latents[1], comparisons,
                                            GeodesicSettings(args.alpha, max_evals=args.max_evals),
                                            n_points=args.frames, bvp_callback=report_bvp)
    progress(f"decoding {len(reports) * args.frames} frames")
    decode_and_judge(model, reports, judge)
    numbers = {}
    for comparison in comparisons:
        geodesic_length = reports[comparison.geodesic].readout.length
        for name in (comparison.baseline, comparison.geodesic):
            numbers[name] = reports[name].numbers(geodesic_length) | realism(reports[name].verdict.interior())
    closures = {c.key: closure(reports[c.baseline].readout, reports[c.geodesic].readout) for c in comparisons}
    differences = {c.key: difference_summary(c, numbers, novel_frame_distances(reports[c.geodesic],
                                                                                 reports[c.baseline]))
                   for c in comparisons}
    results = results_document(args, model.sigma, inputs, comparisons, judge_reliable, numbers, reports, solves,
                               differences, closures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.partial-", dir=args.out.parent))
    try:
        save_strip(reports, comparisons, judge_reliable, staging / "strip.png")
        save_density_plot(reports, comparisons, staging / "density.png")
        save_animation(reports, comparisons, staging / "animation.webp")
        if args.narrow_pictures:
            save_strip(reports, comparisons, judge_reliable, staging / "strip_narrow.png", narrow=True)
            save_density_plot(reports, comparisons, staging / "density_narrow.png", narrow=True)
            save_animation(reports, comparisons, staging / "animation_narrow.webp", narrow=True)
        results["seconds"] = round(time.time() - started, 2)
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        publish_folder(staging, args.out, replace=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(format_table(numbers, comparisons))
    print(f"efficiency = geodesic length / path length, both density-weighted with alpha {args.alpha} (long where "
          "the model finds images improbable): 1 is the geodesic, 0.5 a path twice as long.")
    print(snap_line(numbers))
    print("PPL / PDV: sum / standard deviation of the perceptual (LPIPS) distances between adjacent frames; "
          "PDV 0 = every step looks equally large.")
    for comparison in comparisons:
        print(difference_line(comparison, differences[comparison.key]))
    for comparison in comparisons:
        print(closure_line(comparison, closures[comparison.key]))
    for comparison in comparisons:
        print(solver_line(comparison, solves[comparison.key], args.max_evals))
    if not judge_reliable:
        print("judge: UNRELIABLE for these inputs (unlike every training digit); its labels and confidences "
              "above mean little.")
    progress(f"wrote {args.out}/strip.png, density.png, animation.webp, results.json in {results['seconds']:.1f} s")
    return results
