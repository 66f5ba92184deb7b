"""Geodesic vs linear vs slerp on held-out MNIST pairs of the embedded latent model (digits/latent_model.py).

    bash dev.sh py -m benchmarks.digits_pairs [--pairs 50] [--seed 0] [--out out/benchmarks/digits_pairs.json]

For every pair (two held-out digits of different classes, drawn by --seed): invert both to the noise
level, solve the geodesic (default solver, the demo's alpha; sphere constraint unless --no-sphere),
decode all three paths through the VAE
and read out, over the intermediate frames, the mean, arc-length mean and minimum relative log density, the
CNN judge's mean and minimum confidence, fraction of confident frames and (NON-STANDARD, judge features)
Frechet distance to the held-out digits, the snap (largest step's share) and each path's geodesic
efficiency. The claim under test: the geodesic passes through more realistic in-between images than slerp.
Prints a table and writes every per-pair number to the JSON file.

Perceptual smoothness of the same decoded frames: PPL (sum of the LPIPS-AlexNet distances between adjacent
frames, 32x32 frames upscaled bilinearly to 64 px) and PDV (their standard deviation), for each path plain and
re-timed to equal LPIPS steps by the paper code's rescheduler (DiffMorpher's; as shipped, measuring on the N
frames, and with our budget of 2N - 1) and by ours (adaptive bisection, 2N - 1), with the judge's confidence
of the re-timed frames. --figure draws the first pair's strips, plain and re-timed, with per-step LPIPS.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from digits.judge import RETIMINGS, decode_and_judge, load_judge, realism, retimed_variants
from digits.latent_model import load_mnist_model
from digits.mnist import load_split, pick_pairs
from digits.render import NARROW_DPI, NARROW_INCHES, NARROW_STRIP_FRAMES
from digits.settings import MNIST_DEFAULTS
from geodesic_core import GeodesicInputError
from geodesic_core.lpips import load_lpips
from geodesic_pipeline.compare import PATH_NAMES, compare_paths, encode_pairs
from geodesic_pipeline.keyframes import GeodesicSettings

VARIANTS = ("plain", *(name for name, _, _ in RETIMINGS))

COLUMNS = ("mean_relative_log_density", "arc_mean_relative_log_density", "min_relative_log_density",
           "density_weighted_length", "mean_confidence", "min_confidence", "fraction_confident",
           "frechet_distance", "largest_step_share", "geodesic_efficiency")


def run_pairs(n_pairs: int, seed: int, alpha: float, noise_level: float, sphere: bool,
              on_pair: Callable[[list[dict]], None], figure: Path | None = None) -> list[dict]:
    """Every pair's numbers; ``on_pair(results_so_far)`` after each pair (the JSON is kept current, so an
    interrupted run still leaves its finished pairs). ``figure``: where to draw the first pair's strips."""
    model = load_mnist_model(noise_level)
    judge = load_judge()
    lpips = load_lpips()
    images, labels = load_split("held_out")
    pairs = pick_pairs(labels, n_pairs, seed)
    latents = encode_pairs(model, images, pairs)
    results = []
    for k, ((i, j), (a, b)) in enumerate(zip(pairs, latents, strict=True)):
        started = time.time()
        try:
            reports, geodesic = compare_paths(model, a, b, GeodesicSettings(alpha, sphere))
        except GeodesicInputError as error:
            # e.g. a line-search trial point far off the data where the UNet's output overflows: recorded, and
            # counted in the summary, never dropped silently
            results.append({"held_out_indices": [i, j], "labels": [int(labels[i]), int(labels[j])],
                            "error": str(error), "seconds": round(time.time() - started, 2)})
            on_pair(results)
            print(f"[digits_pairs] pair {k + 1}/{n_pairs} FAILED: {error}", file=sys.stderr, flush=True)
            continue
        decode_and_judge(model, reports, judge, lpips)
        perceptual = {name: retimed_variants(model, report, judge, lpips) for name, report in reports.items()}
        if figure is not None and k == 0:
            save_retiming_figure(reports, perceptual, figure)
            save_retiming_figure(reports, perceptual, figure.with_name(f"{figure.stem}_narrow{figure.suffix}"),
                                 narrow=True)
        results.append({
            "held_out_indices": [i, j], "labels": [int(labels[i]), int(labels[j])],
            "paths": {name: report.numbers(geodesic.readout.length) | realism(report.verdict.interior())
                      for name, report in reports.items()},
            "perceptual": {name: {variant: {key: value for key, value in numbers.items() if key != "frames"}
                                  for variant, numbers in variants.items()}
                           for name, variants in perceptual.items()},
            "solver": {"converged": geodesic.converged, "iterations": geodesic.iterations,
                       "score_evals": geodesic.score_evals, "residual": geodesic.residual},
            "seconds": round(time.time() - started, 2),
        })
        on_pair(results)
        print(f"[digits_pairs] pair {k + 1}/{n_pairs} ({labels[i]} -> {labels[j]}) "
              f"{results[-1]['seconds']:.1f} s, {geodesic.score_evals} evals", file=sys.stderr, flush=True)
    return results


def column(results: list[dict], path: str, key: str) -> np.ndarray:
    return np.array([r["paths"][path][key] for r in results])


def perceptual_column(results: list[dict], path: str, variant: str, key: str) -> np.ndarray:
    if variant == "plain" and key in ("mean_confidence", "min_confidence", "fraction_confident", "frechet_distance"):
        return column(results, path, key)
    return np.array([r["perceptual"][path][variant][key] for r in results])


def perceptual_summary(results: list[dict]) -> dict:
    """Means over pairs per path and variant, and how often ours beats the official rescheduler on PDV."""
    keys = ("ppl", "pdv", "max_step", "mean_confidence", "min_confidence", "frechet_distance", "extra_decodes")
    means = {path: {variant: {key: float(perceptual_column(results, path, variant, key).mean()) for key in keys}
                    for variant in VARIANTS} for path in PATH_NAMES}
    ours = {path: perceptual_column(results, path, "adaptive", "pdv") for path in PATH_NAMES}
    wins = {path: {variant: float((ours[path] < perceptual_column(results, path, variant, "pdv")).mean())
                   for variant in ("plain", "official", "official_2n")} for path in PATH_NAMES}
    plain_pdv = {path: perceptual_column(results, path, "plain", "pdv") for path in PATH_NAMES}
    plain_ppl = {path: perceptual_column(results, path, "plain", "ppl") for path in PATH_NAMES}
    geodesic_lower = {baseline: {"ppl": float((plain_ppl["geodesic"] < plain_ppl[baseline]).mean()),
                                 "pdv": float((plain_pdv["geodesic"] < plain_pdv[baseline]).mean())}
                      for baseline in ("linear", "slerp")}
    return {"means": means, "adaptive_lower_pdv_than": wins, "plain_geodesic_lower_than": geodesic_lower}


def format_perceptual(p: dict) -> str:
    header = (f"{'path':<9} {'frames':<12} {'PPL':>6} {'PDV':>7} {'max step':>8} {'judge conf':>10} "
              f"{'min conf':>8} {'Frechet*':>8} {'extra decodes':>13} {'ours lower PDV':>14}")
    rows = ["perceptual smoothness (LPIPS-AlexNet between adjacent frames; means over pairs)", header,
            "-" * len(header)]
    for path in PATH_NAMES:
        for variant in VARIANTS:
            m = p["means"][path][variant]
            win = p["adaptive_lower_pdv_than"][path].get(variant)
            rows.append(f"{path:<9} {variant:<12} {m['ppl']:>6.3f} {m['pdv']:>7.4f} {m['max_step']:>8.3f} "
                        f"{m['mean_confidence']:>10.3f} {m['min_confidence']:>8.3f} {m['frechet_distance']:>8.1f} "
                        f"{m['extra_decodes']:>13.0f} "
                        f"{'' if win is None else f'{win:.0%}':>14}")
    for baseline, lower in p["plain_geodesic_lower_than"].items():
        rows.append(f"plain geodesic below plain {baseline} in {lower['ppl']:.0%} of pairs on PPL, "
                    f"{lower['pdv']:.0%} on PDV")
    return "\n".join(rows)


def save_retiming_figure(reports: dict, perceptual: dict, path: Path, *, narrow: bool = False) -> None:
    """Each path's strip plain and re-timed by ours, with the LPIPS of every step printed under the gap.
    ``narrow``: the layout for a help page's side panel (digits/render.py's narrow size), each strip wrapped into
    rows of NARROW_STRIP_FRAMES frames that share their end frames, so every step stays inside one row."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [(name, variant) for name in PATH_NAMES for variant in ("plain", "adaptive")]
    n_frames = len(reports[PATH_NAMES[0]].frames)
    per_row = NARROW_STRIP_FRAMES if narrow else n_frames
    starts = range(0, max(n_frames - 1, 1), per_row - 1)  # each row starts on the previous one's last frame
    depth = 1.6 if narrow else 1.5  # a row's height in frame heights: the frames, then their steps' LPIPS below
    if narrow:
        # placed by hand, in inches from the top: a strip's two-line title, then its rows (as high as the frames'
        # aspect makes them), a small gap between strips
        side, title, row_gap, strip_gap = 0.05, 0.36, 0.04, 0.12
        row = (NARROW_INCHES - 2 * side) / per_row * depth
        strip = title + len(starts) * (row + row_gap) + strip_gap
        height = strip * len(rows)
        fig = plt.figure(figsize=(NARROW_INCHES, height), dpi=NARROW_DPI)
        axes = [fig.add_axes(((side / NARROW_INCHES), 1 - (r * strip + title + k * (row + row_gap) + row) / height,
                              1 - 2 * side / NARROW_INCHES, row / height))
                for r in range(len(rows)) for k in range(len(starts))]
    else:
        fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.25 * len(rows)), dpi=100)
    axes = iter(axes)
    for name, variant in rows:
        numbers = perceptual[name][variant]
        frames = reports[name].frames if variant == "plain" else numbers["frames"]
        pixels = (frames[:, 0].numpy() + 1.0) / 2.0
        size = pixels.shape[-1]
        label = "plain" if variant == "plain" else "even LPIPS (ours)"
        for k, start in enumerate(starts):
            ax = next(axes)
            shown = pixels[start:start + per_row]
            ax.imshow(np.concatenate(list(shown), axis=1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            for gap, step in enumerate(numbers["steps"][start:start + len(shown) - 1]):
                ax.text(size * (gap + 1) - 0.5, size * 1.27, f"{step:.2f}", ha="center", va="top",
                        fontsize=6 if narrow else 6.5)
            if k == 0:
                scores = f"PPL {numbers['ppl']:.3f}, PDV {numbers['pdv']:.4f}"
                ax.set_title(f"{name}, {label}:" + ("\n" if narrow else " ") + scores, fontsize=8 if narrow else 9,
                             loc="left")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, size * per_row - 0.5)
            ax.set_ylim(size * depth, -0.5)
    if not narrow:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def summary(all_results: list[dict]) -> dict:
    results = [r for r in all_results if "error" not in r]
    per_path = {path: {key: float(column(results, path, key).mean()) for key in COLUMNS} for path in PATH_NAMES}
    geo_mean = column(results, "geodesic", "mean_relative_log_density")
    geo_min = column(results, "geodesic", "min_relative_log_density")
    geo_arc = column(results, "geodesic", "arc_mean_relative_log_density")
    geo_conf = column(results, "geodesic", "mean_confidence")
    wins = {}
    for baseline in ("linear", "slerp"):
        wins[baseline] = {
            "mean_log_density": float((geo_mean > column(results, baseline, "mean_relative_log_density")).mean()),
            "min_log_density": float((geo_min > column(results, baseline, "min_relative_log_density")).mean()),
            "arc_mean_log_density": float(
                (geo_arc > column(results, baseline, "arc_mean_relative_log_density")).mean()),
            "confidence_not_worse": float((geo_conf >= column(results, baseline, "mean_confidence")).mean()),
            "mean_confidence_difference": float((geo_conf - column(results, baseline, "mean_confidence")).mean()),
            "min_confidence_higher": float((column(results, "geodesic", "min_confidence")
                                            > column(results, baseline, "min_confidence")).mean()),
            "frechet_distance_lower": float((column(results, "geodesic", "frechet_distance")
                                             < column(results, baseline, "frechet_distance")).mean()),
            "frechet_distance_difference": float((column(results, "geodesic", "frechet_distance")
                                                  - column(results, baseline, "frechet_distance")).mean()),
        }
    both = (geo_mean > column(results, "linear", "mean_relative_log_density")) & \
           (geo_mean > column(results, "slerp", "mean_relative_log_density"))
    both_arc = (geo_arc > column(results, "linear", "arc_mean_relative_log_density")) & \
               (geo_arc > column(results, "slerp", "arc_mean_relative_log_density"))
    return {"pairs_failed": len(all_results) - len(results),
            "failures": [r["error"] for r in all_results if "error" in r],
            "per_path_means": per_path, "geodesic_wins_against": wins,
            "geodesic_beats_both_on_mean_log_density": float(both.mean()),
            "geodesic_beats_both_on_arc_mean_log_density": float(both_arc.mean()),
            "solver_converged_fraction": float(np.mean([r["solver"]["converged"] for r in results])),
            "mean_score_evals": float(np.mean([r["solver"]["score_evals"] for r in results])),
            "mean_seconds_per_pair": float(np.mean([r["seconds"] for r in results])),
            "perceptual": perceptual_summary(results)}


def format_summary(s: dict, n_pairs: int, sphere: bool) -> str:
    header = f"{'path':<9} {'mean logp':>9} {'arc logp':>8} {'min logp':>8} {'length':>7} {'judge conf':>10} " \
             f"{'min conf':>8} {'Frechet*':>8} {'snap':>5} {'effic.':>6} | " \
             f"{'geodesic wins (mean / arc / min logp)':>37} {'conf >=':>7} {'min conf >':>10} {'Frechet <':>9}"
    title = (f"{n_pairs} held-out pairs; means over pairs; geodesic {'on' if sphere else 'off'} the sphere; "
             f"{s['pairs_failed']} more pairs failed: {s['failures']}")
    rows = [title, header, "-" * len(header)]
    for path in PATH_NAMES:
        m = s["per_path_means"][path]
        w = s["geodesic_wins_against"].get(path)
        wins = (f"{w['mean_log_density']:>19.0%} / {w['arc_mean_log_density']:.0%} / {w['min_log_density']:<4.0%}"
                f"{w['confidence_not_worse']:>9.0%} {w['min_confidence_higher']:>10.0%} "
                f"{w['frechet_distance_lower']:>9.0%}") if w else ""
        rows.append(f"{path:<9} {m['mean_relative_log_density']:>9.2f} {m['arc_mean_relative_log_density']:>8.2f} "
                    f"{m['min_relative_log_density']:>8.2f} {m['density_weighted_length']:>7.3g} "
                    f"{m['mean_confidence']:>10.3f} {m['min_confidence']:>8.3f} {m['frechet_distance']:>8.1f} "
                    f"{m['largest_step_share']:>5.0%} {m['geodesic_efficiency']:>6.3f} | {wins}")
    rows.append(f"geodesic beats both baselines on mean log density in "
                f"{s['geodesic_beats_both_on_mean_log_density']:.0%} of pairs (arc-length mean: "
                f"{s['geodesic_beats_both_on_arc_mean_log_density']:.0%}); solver converged in "
                f"{s['solver_converged_fraction']:.0%}; {s['mean_score_evals']:.0f} score evals and "
                f"{s['mean_seconds_per_pair']:.1f} s per pair; Frechet*: NON-STANDARD (judge features, not Inception)")
    return "\n".join(rows) + "\n\n" + format_perceptual(s["perceptual"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=MNIST_DEFAULTS.alpha)
    parser.add_argument("--noise-level", type=float, default=MNIST_DEFAULTS.noise_level)
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks/digits_pairs.json"))
    parser.add_argument("--no-sphere", dest="sphere", action="store_false",
                        help="solve the geodesic without the sphere constraint (the paper's default keeps it)")
    parser.add_argument("--figure", type=Path, default=Path("out/benchmarks/digits_retiming.png"),
                        help="where to draw the first pair's strips, plain and re-timed, with per-step LPIPS (and "
                             "<name>_narrow.png beside it: the layout for a help page's side panel)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 wastes least on a shared, busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(results: list[dict]) -> None:
        args.out.write_text(json.dumps({"pairs_done": len(results), "pairs": args.pairs, "seed": args.seed,
                                        "alpha": args.alpha, "noise_level": args.noise_level, "sphere": args.sphere,
                                        "summary": summary(results), "results": results}, indent=2) + "\n")

    results = run_pairs(args.pairs, args.seed, args.alpha, args.noise_level, args.sphere, save, args.figure)
    print(format_summary(summary(results), sum("error" not in r for r in results), args.sphere))


if __name__ == "__main__":
    main()
