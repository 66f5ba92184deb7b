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
import math
import sys
from pathlib import Path

# Only light modules at the top: arguments are checked before torch, diffusers and matplotlib load.
from .settings import COMPARE_CHOICES, MNIST_DEFAULTS, ODE_STEPS


class InputError(ValueError):
    """Bad command-line input; the message says which input and what was expected."""


def open_two_images(paths: list[Path]) -> list:
    """Two readable image files of the same size, as PIL images (checked before any heavy import)."""
    from geodesic_pipeline.images import ImageFileError, open_image_files

    if len(paths) != 2:
        raise InputError(f"--images: expected exactly 2 image files (start and end), got {len(paths)}")
    try:
        return open_image_files(paths)
    except ImageFileError as error:
        raise InputError(f"--images: {error}") from error


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
    parser.add_argument("--narrow-pictures", action="store_true",
                        help="also write strip_narrow.png, density_narrow.png and animation_narrow.webp: the same "
                             "pictures laid out for a panel about 280 px wide (the node help pages)")
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

    from geodesic_pipeline.core import GeodesicInputError

    from .demo import run

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
