"""Choose the density weight alpha by a stated rule, on training-split pairs only.

Rule: along the slerp between two training digits of different classes, the log density at the noise
level spans a range R (max - min over the path, nats). alpha = 1 / median(R) over the pairs, so the
metric weight w = p^-alpha varies by about a factor e along a typical slerp: the density counts as much
as the Euclidean length, without one deep valley or peak dominating. Never looks at held-out digits.
(The deepest drop below the start was tried first and is unusable here: at this level the slerp's
interior is mostly MORE probable than its inverted ends, so that "drop" is negative.)

    python -m digits.calibrate        # prints the drops and the resulting alpha
"""

import argparse
import statistics

import torch

from geodesic_core import read_path, slerp
from geodesic_pipeline.compare import encode_pairs, to_common_radius

from .data import load_split, pick_pairs
from .model import load_digits_model


def slerp_log_density_ranges(n_pairs: int, seed: int, n_points: int = 17) -> list[float]:
    model = load_digits_model()
    images, _ = load_split("train")
    pairs = pick_pairs("train", n_pairs, seed)
    latents = encode_pairs(model, images, pairs)
    ts = torch.linspace(0.0, 1.0, n_points)
    ranges = []
    for a, b in latents:
        a, b = to_common_radius(a, b)
        log_density = read_path(model.field, slerp(a, b, ts)).log_density
        ranges.append(float(log_density.max() - log_density.min()))
    return ranges


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ranges = slerp_log_density_ranges(args.pairs, args.seed)
    median = statistics.median(ranges)
    print(f"log-density range along slerp, {args.pairs} training pairs: median {median:.3f}, "
          f"from {min(ranges):.3f} to {max(ranges):.3f}")
    print(f"alpha = 1 / median range = {1.0 / median:.4f}")


if __name__ == "__main__":
    main()
