"""Density geodesic vs linear and slerp interpolation on the embedded digits diffusion model.

    python -m digits.main                         # two held-out digits picked by --seed
    python -m digits.main --images a.png b.png    # your own digits (bright strokes on a dark background)

Inverts both images to the noise level, solves the density geodesic between them (sphere-constrained,
default solver), decodes every path point and writes to --out: strip.png (rows linear / slerp /
geodesic), density.png (relative log density along each path) and results.json; prints a table.
The folder appears only once everything is written.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: renders straight to files, never needs a display

from geodesic_core import GeodesicInputError
from geodesic_core.geometry import flat, segment_lengths

from .data import IMAGE_SIZE, ImageFileError, load_split, pick_pairs, read_image_files
from .judge import CONFIDENT_PROBABILITY, train_judge
from .pipeline import (
    ALPHA,
    NOISE_LEVEL,
    ODE_STEPS,
    PATH_NAMES,
    PathReport,
    compare_paths,
    decode_and_judge,
    encode,
    load_digits_model,
)

STRIP_SCALE = 8  # each 8x8 frame is drawn as 64x64 pixels


class InputError(ValueError):
    """Bad command-line input; the message says which input and what was expected."""


def progress(message: str) -> None:
    print(f"[digits] {message}", file=sys.stderr, flush=True)


def read_two_images(paths: list[Path]) -> torch.Tensor:
    """Two image files -> [2, 1, 8, 8] model images (same size; grey, resized to 8x8)."""
    if len(paths) != 2:
        raise InputError(f"--images: expected exactly 2 image files (start and end), got {len(paths)}")
    try:
        return read_image_files(paths)
    except ImageFileError as error:
        raise InputError(f"--images: {error}") from error


def held_out_endpoints(seed: int) -> tuple[torch.Tensor, dict]:
    images, labels = load_split("held_out")
    (i, j), = pick_pairs("held_out", 1, seed)
    return images[[i, j]], {"source": "held-out digits", "held_out_indices": [i, j],
                            "labels": [int(labels[i]), int(labels[j])]}


def save_strip(reports: dict[str, PathReport], path: Path) -> None:
    fig = Figure(figsize=(12, 1.1 * len(reports) + 0.4))
    axes = fig.subplots(len(reports), 1)
    for ax, report in zip(axes, reports.values(), strict=True):
        frames = (report.frames[:, 0].numpy() + 1.0) / 2.0
        ax.imshow(np.concatenate(list(frames), axis=1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(np.arange(len(frames)) * IMAGE_SIZE + IMAGE_SIZE / 2 - 0.5,
                      [str(label) for label in report.verdict.labels], fontsize=7)
        ax.set_yticks([])
        ax.set_ylabel(report.name, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("frame label read by the judge (sklearn classifier)")
    fig.tight_layout()
    fig.savefig(path, dpi=STRIP_SCALE * 12)


def save_density_plot(reports: dict[str, PathReport], path: Path) -> None:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for report in reports.values():
        # x is the fraction of Euclidean arc length, not the frame index: the geodesic's frames are spaced
        # evenly in the density metric, which would stretch its low-density stretches on a frame axis.
        segments = segment_lengths(flat(report.latents)).numpy()
        arc = np.concatenate([[0.0], np.cumsum(segments)]) / segments.sum()
        ax.plot(arc, report.log_density.numpy(), marker="o", markersize=3, label=report.name)
    ax.set_xlabel("fraction of Euclidean arc length along the path")
    ax.set_ylabel("log p(x) - log p(start)")
    ax.set_title("relative log density at the noise level")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def format_table(numbers: dict[str, dict]) -> str:
    header = f"{'path':<9} {'mean logp':>10} {'arc logp':>9} {'min logp':>9} {'length':>8} {'effic.':>7} " \
             f"{'judge conf':>10} {'confident':>9}"
    rows = [header, "-" * len(header)]
    for name, n in numbers.items():
        rows.append(f"{name:<9} {n['mean_relative_log_density']:>10.2f} {n['arc_mean_relative_log_density']:>9.2f} "
                    f"{n['min_relative_log_density']:>9.2f} "
                    f"{n['density_weighted_length']:>8.3g} {n['geodesic_efficiency']:>7.3f} "
                    f"{n['mean_confidence']:>10.3f} {n['fraction_confident']:>9.2f}")
    return "\n".join(rows)


def publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out``, replacing an earlier result only at the very end."""
    previous = None
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(previous / out.name)
    staging.rename(out)
    if previous is not None:
        shutil.rmtree(previous)


def run(args: argparse.Namespace) -> dict:
    started = time.time()
    if args.images is not None:
        images = read_two_images(args.images)
        inputs = {"source": "image files", "files": [str(p) for p in args.images]}
    else:
        images, inputs = held_out_endpoints(args.seed)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")
    progress("loading the digits model and training the judge classifier")
    model = load_digits_model(args.noise_level, args.ode_steps)
    judge = train_judge()
    progress(f"inverting 2 images to noise level {args.noise_level} (sigma {model.sigma:.3f}, "
             f"{args.ode_steps} DDIM steps)")
    latents = encode(model, images)

    def report_bvp(iteration: int, partial) -> None:
        if iteration % 10 == 0:
            progress(f"geodesic: iteration {iteration}, {len(partial.points)} points, "
                     f"length {partial.length:.4g}, residual {partial.residual:.2e}")

    progress(f"solving the geodesic (alpha {args.alpha}, {args.frames} points, sphere constraint)")
    reports, geodesic = compare_paths(model, latents[0], latents[1], alpha=args.alpha, n_points=args.frames,
                                      max_evals=args.max_evals, bvp_callback=report_bvp)
    progress(f"geodesic: {geodesic.iterations} iterations, {geodesic.score_evals} score evaluations, "
             f"converged {geodesic.converged}; decoding {len(PATH_NAMES) * args.frames} frames")
    decode_and_judge(model, reports, judge)
    numbers = {name: report.numbers(geodesic.length) for name, report in reports.items()}
    results = {
        "inputs": inputs,
        "settings": {"noise_level": args.noise_level, "sigma": model.sigma, "alpha": args.alpha,
                     "n_points": args.frames, "ode_steps": args.ode_steps, "sphere": True, "method": "default",
                     "max_evals": args.max_evals, "seed": args.seed,
                     "judge_confident_probability": CONFIDENT_PROBABILITY},
        "paths": numbers,
        "log_density": {name: report.log_density.tolist() for name, report in reports.items()},
        "geodesic_solver": {"converged": geodesic.converged, "iterations": geodesic.iterations,
                            "score_evals": geodesic.score_evals, "residual": geodesic.residual},
        "notes": "log densities are relative to the shared start point (both ends rescaled to their mean "
                 "norm); means and minima are over the intermediate frames, arc means per unit Euclidean length "
                 "along the path; efficiency = geodesic length / path length under the same alpha.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.partial-", dir=args.out.parent))
    try:
        save_strip(reports, staging / "strip.png")
        save_density_plot(reports, staging / "density.png")
        results["seconds"] = round(time.time() - started, 2)
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        publish(staging, args.out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(format_table(numbers))
    progress(f"wrote {args.out}/strip.png, density.png, results.json in {results['seconds']:.1f} s")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits.main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/digits"), help="output folder (default out/digits)")
    parser.add_argument("--images", type=Path, nargs="*", metavar="IMAGE",
                        help="two image files to interpolate (default: two held-out digits)")
    parser.add_argument("--seed", type=int, default=0, help="picks the held-out pair (default 0)")
    parser.add_argument("--frames", type=int, default=17, help="points per path, ends included (default 17)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"density weight (default {ALPHA})")
    parser.add_argument("--noise-level", type=float, default=NOISE_LEVEL,
                        help=f"fraction of the noise schedule (default {NOISE_LEVEL})")
    parser.add_argument("--ode-steps", type=int, default=ODE_STEPS,
                        help=f"DDIM steps for inversion and decoding (default {ODE_STEPS})")
    parser.add_argument("--max-evals", type=int, default=None, help="cap on the solver's score evaluations")
    # 8x8 batches are too small to gain from threads; on a busy CPU extra threads cost up to 10x.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads: expected a positive number of threads, got {args.threads}")
    if args.frames < 3:
        parser.error(f"--frames: expected at least 3 points (two ends and one frame between), got {args.frames}")
    if args.ode_steps < 1:
        parser.error(f"--ode-steps: expected a positive number of steps, got {args.ode_steps}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        run(args)
    except (InputError, GeodesicInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
