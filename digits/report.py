"""What the demo reports: results.json's schema (`results_document`), the console table and the lines under it."""

from __future__ import annotations

import argparse
import dataclasses

from .judge import CONFIDENT_PROBABILITY
from .mnist import NATIVE_SIZE
from .settings import MNIST_IMAGE_SIZE

# Frames whose RMS difference stays below this look alike: it is the tolerance within which a digit
# inverted to the noise level and decoded again counts as the same image (tests/test_digits.py).
VISIBLE_RMS = 0.15


def results_document(args: argparse.Namespace, sigma: float, inputs: dict, comparisons, judge_reliable: bool,
                     numbers: dict[str, dict], reports: dict, solves: dict, differences: dict, closures: dict) -> dict:
    """results.json without its "seconds" (added when the files are written)."""
    return {
        "inputs": inputs,
        "settings": {"noise_level": args.noise_level, "sigma": sigma, "alpha": args.alpha,
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
            f"evaluations, residual {solve.residual:.1e}")
    if solve.converged:
        return line + " (converged)"
    if solve.outcome == "budget":  # geodesic_core.Outcome is a str enum; importing it would slow start-up
        return line + f" (stopped by the --max-evals budget of {max_evals})"
    return line + (" (tolerance 1e-3 not met: this learned score is not an exact gradient, so the residual "
                   "plateaus above it and the solver stops once the path stops getting shorter)")
