"""Choose the density weight alpha by a stated rule, on training-split pairs only.

Rule: along the slerp between two training digits of different classes, the deepest drop of log
density below the start is D (nats). alpha = 1 / median(D) over the pairs, so the metric weight
w = p^-alpha grows by about a factor e at the typical worst point of a slerp: the density matters as much
as the Euclidean length, without letting one deep valley dominate. Never looks at held-out digits.

    python -m digits.calibrate        # prints the drops and the resulting alpha
"""

import argparse
import statistics

import torch

from geodesic_core import read_path, slerp

from .data import load_split, pick_pairs
from .pipeline import encode, load_digits_model, to_common_radius


def slerp_drops(n_pairs: int, seed: int, n_points: int = 17) -> list[float]:
    model = load_digits_model()
    images, _ = load_split("train")
    pairs = pick_pairs("train", n_pairs, seed)
    latents = encode(model, images[[k for pair in pairs for k in pair]])
    ts = torch.linspace(0.0, 1.0, n_points)
    drops = []
    for a, b in latents.reshape(n_pairs, 2, *latents.shape[1:]):
        a, b = to_common_radius(a, b)
        log_density = read_path(model.field, slerp(a, b, ts)).log_density
        drops.append(float(-log_density[1:-1].min()))
    return drops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    drops = slerp_drops(args.pairs, args.seed)
    median = statistics.median(drops)
    print(f"deepest log-density drop below the start along slerp, {args.pairs} training pairs: "
          f"median {median:.2f}, range {min(drops):.2f} .. {max(drops):.2f}")
    print(f"alpha = 1 / median drop = {1.0 / median:.4f}")


if __name__ == "__main__":
    main()
