"""Density geodesics against their like-for-like baselines on the embedded MNIST latent diffusion model.

    python -m digits.main                         # two held-out digits picked by --seed
    python -m digits.main --images a.png b.png    # your own digits (either polarity; see below)
    python -m digits.main --compare free          # only the free geodesic against the straight line

Inverts both images to the noise level and compares, between the same two ends:
  sphere: the geodesic held on the sphere through both ends (the paper's default) against slerp;
  free:   the geodesic free to leave the sphere against the straight line (also --no-sphere).
Decodes every path point and writes to --out: strip.png (the frames of every path, the relative log
density under each row), density.png (log density along each path), animation.webp (the paths side by
side, frame by frame) and results.json; prints a table and what differs. The folder appears only once
everything is written.

The model (digits/latent_model.py) is built like Stable Diffusion: a VAE maps each 32x32 image (a 28x28 digit
with a 2-pixel border) to a 4x8x8 latent and a UNet denoises those latents; the paths live in its latent
space at the noise level and every frame is decoded through the VAE. An independent CNN classifier
(digits/judge.py) reads the frames.

Your images (any size, both the same) are converted to grey and resized to 28x28. The model was trained on
bright strokes on a dark
background: a light-background image is inverted (with a notice), and inputs unlike every training digit
are reported, with the judge's labels marked unreliable.
"""

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Only light modules at the top: arguments are checked before torch, diffusers and scikit-learn load.
from .settings import MNIST_DEFAULTS, MNIST_IMAGE_SIZE, ODE_STEPS

COMPARE_CHOICES = {"both": ("sphere", "free"), "sphere": ("sphere",), "free": ("free",)}
# Frames whose RMS difference stays below this look alike: it is the tolerance within which a digit
# inverted to the noise level and decoded again counts as the same image (tests/test_digits.py).
VISIBLE_RMS = 0.15
STRIP_ROW_INCHES = 1.5  # frames and density plot of one path
ANIMATION_FRAME_PX = 128  # each 32x32 frame drawn 4x larger


class InputError(ValueError):
    """Bad command-line input; the message says which input and what was expected."""


def progress(message: str) -> None:
    print(f"[digits] {message}", file=sys.stderr, flush=True)


def open_two_images(paths: list[Path]) -> list:
    """Two readable image files of the same size, as PIL images (checked before any heavy import)."""
    from geodesic_pipeline.images import ImageFileError, open_image_files

    if len(paths) != 2:
        raise InputError(f"--images: expected exactly 2 image files (start and end), got {len(paths)}")
    try:
        return open_image_files(paths)
    except ImageFileError as error:
        raise InputError(f"--images: {error}") from error


def held_out_endpoints(seed: int):
    from .mnist import load_split, pick_pairs

    images, labels = load_split("held_out")
    (i, j), = pick_pairs(labels, 1, seed)
    return images[[i, j]], {"source": "held-out digits", "held_out_indices": [i, j],
                            "labels": [int(labels[i]), int(labels[j])]}


def path_rows(comparisons) -> list[str]:
    return [name for comparison in comparisons for name in (comparison.baseline, comparison.geodesic)]


def tile_frames(frames):
    """[N, 1, S, S] frames in [-1, 1] -> one [S, (S + 1) N - 1] row in [0, 1], with a NaN (blank) column
    between frames; draw with frame_colormap()."""
    import numpy as np

    cell = MNIST_IMAGE_SIZE + 1
    tiles = np.full((MNIST_IMAGE_SIZE, len(frames) * cell - 1), np.nan)
    for k, frame in enumerate((frames[:, 0].numpy() + 1.0) / 2.0):
        tiles[:, k * cell: k * cell + MNIST_IMAGE_SIZE] = frame
    return tiles


def frame_colormap():
    import matplotlib

    return matplotlib.colormaps["gray"].with_extremes(bad="white")


def save_strip(reports: dict, comparisons, judge_reliable: bool, path: Path) -> None:
    """Every path's frames (the judge's label under each), with its relative log density per frame plotted
    right below on one shared scale; rows grouped by comparison."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: renders straight to files, never needs a display

    from .judge import CONFIDENT_PROBABILITY

    names = path_rows(comparisons)
    n_frames = len(reports[names[0]].frames)
    cell = MNIST_IMAGE_SIZE + 1  # tile_frames leaves one blank pixel between frames
    centres = np.arange(n_frames) * cell + MNIST_IMAGE_SIZE / 2 - 0.5
    densities = np.concatenate([reports[name].readout.log_density.numpy() for name in names])
    margin = 0.1 * (densities.max() - densities.min() + 1e-9)
    fig = Figure(figsize=(15, STRIP_ROW_INCHES * len(names) + 0.4 * len(comparisons)))
    grid = fig.add_gridspec(2 * len(names), 1, height_ratios=[1.0, 0.55] * len(names), hspace=0.55)
    for row, name in enumerate(names):
        report = reports[name]
        frames_ax, density_ax = fig.add_subplot(grid[2 * row]), fig.add_subplot(grid[2 * row + 1])
        frames_ax.imshow(tile_frames(report.frames), cmap=frame_colormap(), vmin=0, vmax=1,
                         interpolation="nearest")
        confident = report.verdict.confidence >= CONFIDENT_PROBABILITY
        suffix = "" if judge_reliable else "?"
        frames_ax.set_xticks(centres, [f"{label}{suffix}" for label in report.verdict.labels], fontsize=8)
        for tick, sure in zip(frames_ax.get_xticklabels(), confident, strict=True):
            tick.set_color("black" if sure and judge_reliable else "tab:red")
        frames_ax.tick_params(length=0, pad=1)
        frames_ax.set_yticks([])
        frames_ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
        comparison = next(c for c in comparisons if name in (c.baseline, c.geodesic))
        if name == comparison.baseline:
            frames_ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}: {comparison.geometry}",
                                loc="left", fontsize=11)
        density_ax.plot(centres, report.readout.log_density.numpy(), marker="o", markersize=3, color="tab:blue")
        density_ax.axhline(0.0, color="gray", linewidth=0.6)
        density_ax.set_xlim(-0.5, n_frames * cell - 1.5)
        density_ax.set_ylim(densities.min() - margin, densities.max() + margin)
        density_ax.set_xticks([])
        density_ax.tick_params(labelsize=7)
        density_ax.set_ylabel("log p", fontsize=8, rotation=0, ha="right", va="center")
        interior = report.readout.log_density[1:-1]
        density_ax.text(1.005, 0.5, f"mean {float(interior.mean()):+.2f}\nmin {float(interior.min()):+.2f}",
                        transform=density_ax.transAxes, fontsize=8, va="center")
    judge_note = (f"labels: the judge's digit per frame, red where it is below {CONFIDENT_PROBABILITY} sure"
                  if judge_reliable else "labels UNRELIABLE (?): the inputs are unlike every training digit")
    fig.text(0.01, 0.07, f"log p: log density relative to the start at the noise level, one shared scale; "
             f"{judge_note}", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_density_plot(reports: dict, comparisons, path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    from geodesic_core.geometry import flat, segment_lengths

    fig = Figure(figsize=(5.5 * len(comparisons), 3.6))
    for ax, comparison in zip(np.atleast_1d(fig.subplots(1, len(comparisons), sharey=True)), comparisons,
                              strict=True):
        for name, colour in ((comparison.baseline, "tab:gray"), (comparison.geodesic, "tab:orange")):
            report = reports[name]
            # x is the fraction of Euclidean arc length, not the frame index: the geodesic's frames are spaced
            # evenly in the density metric, which would stretch its low-density stretches on a frame axis.
            segments = segment_lengths(flat(report.latents)).numpy()
            arc = np.concatenate([[0.0], np.cumsum(segments)]) / segments.sum()
            ax.plot(arc, report.readout.log_density.numpy(), marker="o", markersize=3, color=colour,
                    label=f"{name} (length {report.readout.length:.3g})")
        ax.set_title(f"{comparison.geodesic} vs {comparison.baseline}", fontsize=10)
        ax.set_xlabel("fraction of Euclidean arc length along the path")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.axes[0].set_ylabel("log p(x) - log p(start)")
    fig.suptitle("relative log density at the noise level (length: density-weighted, same alpha)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_animation(reports: dict, comparisons, path: Path) -> None:
    """Every path's frames side by side, one animation frame per path point, there and back (WebP)."""
    import numpy as np
    from PIL import Image, ImageDraw

    names = path_rows(comparisons)
    label_px, gap = 14, 6
    width = len(names) * (ANIMATION_FRAME_PX + gap) - gap
    stills = []
    for k in range(len(reports[names[0]].frames)):
        canvas = Image.new("L", (width, ANIMATION_FRAME_PX + label_px), 255)
        draw = ImageDraw.Draw(canvas)
        for column, name in enumerate(names):
            frame = (reports[name].frames[k, 0].numpy() + 1.0) * 127.5
            tile = Image.fromarray(frame.round().astype(np.uint8)).resize(
                (ANIMATION_FRAME_PX, ANIMATION_FRAME_PX), Image.Resampling.NEAREST)
            x = column * (ANIMATION_FRAME_PX + gap)
            canvas.paste(tile, (x, label_px))
            draw.text((x + 2, 1), name, fill=0)
        stills.append(canvas)
    loop = stills + stills[-2:0:-1]
    loop[0].save(path, save_all=True, append_images=loop[1:], duration=120, loop=0, lossless=True)


def format_table(numbers: dict[str, dict], comparisons) -> str:
    header = f"{'path':<16} {'mean logp':>10} {'arc logp':>9} {'min logp':>9} {'length':>8} {'effic.':>7} " \
             f"{'judge conf':>10} {'confident':>9} {'snap':>5} {'PPL':>6} {'PDV':>6}"
    rows = [header]
    for comparison in comparisons:
        title = f"-- {comparison.geodesic} vs {comparison.baseline}: {comparison.geometry} "
        rows.append(title.ljust(len(header), "-"))
        for name in (comparison.baseline, comparison.geodesic):
            n = numbers[name]
            rows.append(f"{name:<16} {n['mean_relative_log_density']:>10.2f} "
                        f"{n['arc_mean_relative_log_density']:>9.2f} {n['min_relative_log_density']:>9.2f} "
                        f"{n['density_weighted_length']:>8.3g} {n['geodesic_efficiency']:>7.3f} "
                        f"{n['mean_confidence']:>10.3f} {n['fraction_confident']:>9.2f} "
                        f"{n['largest_step_share']:>5.0%} {n['ppl']:>6.3f} {n['pdv']:>6.3f}")
    return "\n".join(rows)


def difference_summary(comparison, numbers: dict[str, dict], novel) -> dict:
    """How the geodesic differs from its baseline: in the pictures (``novel``: each geodesic frame's RMS
    distance to the nearest baseline frame), in density and in distance."""
    base, geo = numbers[comparison.baseline], numbers[comparison.geodesic]
    return {
        "novel_frame_distance_mean": float(novel.mean()),
        "novel_frame_distance_max": float(novel.max()),
        "visibly_different": bool(novel.max() >= VISIBLE_RMS),
        "frames_labelled_differently": sum(a != b for a, b in zip(base["frame_labels"], geo["frame_labels"],
                                                                   strict=True)),
        "mean_log_density_gain": geo["mean_relative_log_density"] - base["mean_relative_log_density"],
        "arc_log_density_gain": geo["arc_mean_relative_log_density"] - base["arc_mean_relative_log_density"],
        "baseline_length_over_geodesic": base["density_weighted_length"] / geo["density_weighted_length"],
    }


def difference_line(comparison, d: dict) -> str:
    nearest = (f"its frames are {d['novel_frame_distance_max']:.2f} RMS at most from the nearest "
               f"{comparison.baseline} frame")
    looks = (f"shows pictures {comparison.baseline} does not ({nearest})" if d["visibly_different"] else
             f"NOT visibly different on this model: {nearest} (pixels in -1..1; below {VISIBLE_RMS} an image and "
             f"its own round trip look alike), only the position of the change differs")
    return (f"{comparison.geodesic} vs {comparison.baseline}: {looks}; "
            f"{d['frames_labelled_differently']} frame(s) labelled differently. Where it differs: "
            f"log density {d['mean_log_density_gain']:+.2f} per frame, {d['arc_log_density_gain']:+.2f} per unit "
            f"length; {comparison.baseline} is {d['baseline_length_over_geodesic']:.2f}x as long as the geodesic "
            "in the density metric.")


def snap_line(numbers: dict[str, dict]) -> str:
    shares = {name: n["largest_step_share"] for name, n in numbers.items()}
    line = ("snap = share of the whole start-to-end change made in the largest step between two adjacent frames: "
            + ", ".join(f"{name} {share:.0%}" for name, share in shares.items()))
    if min(shares.values()) > 0.5:
        line += ". Every path switches from one end image to the other in a single step: no gradual morph."
    return line


def closure_line(comparison, gap) -> str:
    """Both paths of a comparison end at the same point: for an exact density they would agree there."""
    return (f"closure, {comparison.baseline} vs {comparison.geodesic}: the end's relative log density differs by "
            f"{abs(gap.gap):.3g} nats; the readout's quadrature error bound accounts for {gap.quadrature_bound:.2g}, "
            f"so at least {gap.field_part:.3g} nats is this learned score's non-conservative part (it is not an "
            "exact gradient, so log densities read along different paths disagree by about this much).")


def solver_line(comparison, solve, max_evals: int | None) -> str:
    line = (f"solver, {comparison.geodesic}: {solve.iterations} iterations, {solve.score_evals} score "
            f"evaluations in {solve.score_calls} batched calls, residual {solve.residual:.1e}")
    if solve.converged:
        return line + " (converged)"
    if solve.outcome == "budget":  # geodesic_core.Outcome is a str enum; importing it would slow start-up
        return line + f" (stopped by the --max-evals budget of {max_evals})"
    return line + (" (stopped at the best path this model allows: a learned score is not an exact gradient, "
                   "and no step shortens the path any more as the model reads it)")


def run(args: argparse.Namespace, image_files: list | None) -> dict:
    started = time.time()
    import torch

    from geodesic_core import closure
    from geodesic_pipeline.compare import COMPARISONS, compare_like_for_like, novel_frame_distances
    from geodesic_pipeline.images import to_model_images

    from .judge import CONFIDENT_PROBABILITY, decode_and_judge, load_judge, realism
    from .latent_model import in_distribution_limit, load_mnist_model
    from .mnist import NATIVE_SIZE, distance_to_training, pad_to_model

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
    reports, solves = compare_like_for_like(model, latents[0], latents[1], comparisons, alpha=args.alpha,
                                            n_points=args.frames, max_evals=args.max_evals,
                                            bvp_callback=report_bvp)
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
    results = {
        "inputs": inputs,
        "settings": {"noise_level": args.noise_level, "sigma": model.sigma, "alpha": args.alpha,
                     "n_points": args.frames, "ode_steps": args.ode_steps, "compare": args.compare,
                     "method": "default", "max_evals": args.max_evals, "seed": args.seed,
                     "image_size": MNIST_IMAGE_SIZE, "digit_size": NATIVE_SIZE,
                     "judge_confident_probability": CONFIDENT_PROBABILITY, "visible_rms": VISIBLE_RMS},
        "comparisons": {c.key: {"baseline": c.baseline, "geodesic": c.geodesic, "sphere": c.sphere,
                                **differences[c.key], "closure": dataclasses.asdict(closures[c.key])}
                        for c in comparisons},
        "judge_reliable": judge_reliable,
        "paths": numbers,
        "log_density": {name: report.readout.log_density.tolist() for name, report in reports.items()},
        "log_density_error": {name: report.readout.log_density_error.tolist() for name, report in reports.items()},
        "geodesic_solver": {c.key: {"converged": solves[c.key].converged, "iterations": solves[c.key].iterations,
                                    "score_evals": solves[c.key].score_evals, "residual": solves[c.key].residual}
                            for c in comparisons},
        "notes": "log densities are relative to the shared start point (both ends rescaled to their mean "
                 "norm); means and minima are over the intermediate frames, arc means per unit Euclidean length "
                 "along the path; efficiency = the comparison's geodesic length / the path's length, both "
                 "density-weighted with the same alpha; ppl / pdv = sum / standard deviation of the LPIPS-AlexNet "
                 "distances between adjacent frames (upscaled to 64 px); min_confidence = the judge's lowest "
                 "top-class probability over the intermediate frames; frechet_distance is NON-STANDARD (it stands in "
                 "for FID, which needs Inception weights not available offline): the Frechet distance between the "
                 "judge's 64 penultimate-layer features of the intermediate frames and of the 10,000 held-out "
                 "digits, comparable only with itself.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.partial-", dir=args.out.parent))
    try:
        save_strip(reports, comparisons, judge_reliable, staging / "strip.png")
        save_density_plot(reports, comparisons, staging / "density.png")
        save_animation(reports, comparisons, staging / "animation.webp")
        results["seconds"] = round(time.time() - started, 2)
        (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        publish(staging, args.out)
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


def publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out``, replacing an earlier result only at the very end."""
    previous = None
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(previous / out.name)
    staging.rename(out)
    if previous is not None:
        shutil.rmtree(previous)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits.main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/digits"), help="output folder (default out/digits)")
    parser.add_argument("--images", type=Path, nargs="*", metavar="IMAGE",
                        help="two image files to interpolate (default: two held-out digits)")
    parser.add_argument("--seed", type=int, default=0, help="picks the held-out pair (default 0)")
    parser.add_argument("--compare", choices=list(COMPARE_CHOICES), default="both",
                        help="sphere: sphere geodesic vs slerp; free: free geodesic vs linear; both (default)")
    parser.add_argument("--no-sphere", dest="compare", action="store_const", const="free",
                        help="same as --compare free")
    parser.add_argument("--frames", type=int, default=17, help="points per path, ends included (default 17)")
    parser.add_argument("--alpha", type=float, default=MNIST_DEFAULTS.alpha,
                        help=f"density weight (default {MNIST_DEFAULTS.alpha})")
    parser.add_argument("--noise-level", type=float, default=MNIST_DEFAULTS.noise_level,
                        help=f"fraction of the noise schedule (default {MNIST_DEFAULTS.noise_level})")
    parser.add_argument("--ode-steps", type=int, default=ODE_STEPS,
                        help=f"DDIM steps for inversion and decoding (default {ODE_STEPS})")
    parser.add_argument("--max-evals", type=int, default=None, help="cap on the solver's score evaluations")
    # batches of 17 4x8x8 latents are too small to gain from threads; on a busy CPU extra threads cost up to 10x.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Every argument check that needs no model, run before any heavy import (errors in well under 1 s)."""
    if args.threads < 1:
        raise InputError(f"--threads: expected a positive number of threads, got {args.threads}")
    if args.frames < 3:
        raise InputError(f"--frames: expected at least 3 points (two ends and one frame between), got {args.frames}")
    if args.ode_steps < 1:
        raise InputError(f"--ode-steps: expected a positive number of steps, got {args.ode_steps}")
    if not (math.isfinite(args.alpha) and args.alpha > 0):
        raise InputError(f"--alpha: expected a finite positive number, got {args.alpha}")
    if not 0.0 < args.noise_level < 1.0:
        raise InputError(f"--noise-level: expected a fraction of the schedule strictly between 0 and 1, "
                         f"got {args.noise_level}")
    if args.max_evals is not None and args.max_evals < 1:
        raise InputError(f"--max-evals: expected a positive number of score evaluations, got {args.max_evals}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        image_files = None if args.images is None else open_two_images(args.images)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import torch

    from geodesic_core import GeodesicInputError

    threads_before = torch.get_num_threads()
    try:
        run(args, image_files)
    except GeodesicInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
