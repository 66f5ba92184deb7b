"""Choose the MNIST model's noise level and density weight alpha by stated rules, on training pairs only.

Noise level: the highest of NOISE_LEVELS at which the round trip (VAE encode, DDIM inversion to the level,
generation back, VAE decode) of training digits keeps the judge's label for at least 95% of them. A higher
level leaves the path more room to move towards probable images; the round trip must still return the
endpoints a path is asked to join.

Alpha: along the slerp between two training digits of different classes, the log density at the noise
level spans a range R (max - min over the path, nats). alpha = 1 / median(R) over the pairs, so the metric
weight w = p^-alpha varies by about a factor e along a typical slerp: the density counts as much as the
Euclidean length, without one deep valley or peak dominating. Never looks at held-out digits.

    python -m digits.calibrate        # prints both, with what they rest on
"""

import argparse
import statistics

import torch

from geodesic_core import load_lpips, read_path, slerp
from geodesic_pipeline.compare import COMPARISONS, compare_like_for_like, encode_pairs, to_common_radius
from geodesic_pipeline.keyframes import GeodesicSettings

from .judge import decode_and_judge, judge_images, load_judge, retimed_variants
from .latent_model import load_mnist_model
from .mnist import load_split, pick_pairs

NOISE_LEVELS = (0.5, 0.6, 0.7, 0.8)
KEEP_LABEL = 0.95
SPACING_FRAMES = 17
CONFIDENCE_SLACK = 0.02


def round_trip_label_kept(noise_level: float, n_digits: int, seed: int) -> float:
    """Fraction of ``n_digits`` random training digits whose judge label survives the round trip."""
    images, labels = load_split("train")
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_digits]
    model = load_mnist_model(noise_level)
    back = model.to_images(model.to_latents(images[chosen]))
    return float((judge_images(load_judge(), back).labels == labels[chosen.numpy()]).mean())


def slerp_log_density_ranges(noise_level: float, n_pairs: int, seed: int, n_points: int = 17) -> list[float]:
    model = load_mnist_model(noise_level)
    images, labels = load_split("train")
    latents = encode_pairs(model, images, pick_pairs(labels, n_pairs, seed))
    ts = torch.linspace(0.0, 1.0, n_points)
    ranges = []
    for a, b in latents:
        a, b = to_common_radius(a, b)
        log_density = read_path(model.field, slerp(a, b, ts)).log_density
        ranges.append(float(log_density.max() - log_density.min()))
    return ranges


def spacing_numbers(noise_level: float, alpha: float, n_pairs: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean PDV, PPL and judge confidence (interior frames) per spacing over ``n_pairs`` training pairs."""
    model = load_mnist_model(noise_level)
    images, labels = load_split("train")
    judge, lpips = load_judge(), load_lpips()
    totals: dict[str, dict[str, float]] = {}
    for a, b in encode_pairs(model, images, pick_pairs(labels, n_pairs, seed)):
        reports, _ = compare_like_for_like(model, a, b, [COMPARISONS["sphere"]], GeodesicSettings(alpha),
                                           n_points=SPACING_FRAMES)
        report = reports[COMPARISONS["sphere"].geodesic]
        decode_and_judge(model, {"geodesic": report}, judge, lpips)
        variants = retimed_variants(model, report, judge, lpips)
        variants["path"] = variants.pop("plain") | {"mean_confidence": report.verdict.interior().mean_confidence}
        for name, numbers in variants.items():
            for key in ("pdv", "ppl", "mean_confidence"):
                totals.setdefault(name, {}).setdefault(key, 0.0)
                totals[name][key] += numbers[key] / n_pairs
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--digits", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", action="store_true", help="also choose the frame spacing (slower)")
    parser.add_argument("--spacing-pairs", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    kept = {level: round_trip_label_kept(level, args.digits, args.seed) for level in NOISE_LEVELS}
    for level, fraction in kept.items():
        print(f"noise level {level}: the round trip keeps the judge's label of {fraction:.1%} of {args.digits} "
              "training digits")
    eligible = [level for level, fraction in kept.items() if fraction >= KEEP_LABEL]
    noise_level = max(eligible) if eligible else min(NOISE_LEVELS)
    print(f"noise level = {noise_level} (the highest keeping >= {KEEP_LABEL:.0%})")
    ranges = slerp_log_density_ranges(noise_level, args.pairs, args.seed)
    median = statistics.median(ranges)
    print(f"log-density range along slerp, {args.pairs} training pairs: median {median:.3f}, "
          f"from {min(ranges):.3f} to {max(ranges):.3f}")
    alpha = 1.0 / median
    print(f"alpha = 1 / median range = {alpha:.4f}")
    if args.spacing:
        numbers = spacing_numbers(noise_level, round(alpha, 2), args.spacing_pairs, args.seed)
        for name, row in numbers.items():
            print(f"spacing {name}: PDV {row['pdv']:.4f}, PPL {row['ppl']:.3f}, judge mean confidence "
                  f"{row['mean_confidence']:.3f} (interior frames, {args.spacing_pairs} training pairs)")
        floor = numbers["path"]["mean_confidence"] - CONFIDENCE_SLACK
        eligible = {name: row for name, row in numbers.items() if row["mean_confidence"] >= floor}
        print(f"spacing = {min(eligible, key=lambda name: eligible[name]['pdv'])} (the lowest PDV whose judge "
              f"confidence is within {CONFIDENCE_SLACK} of the path's own frames)")


if __name__ == "__main__":
    main()
