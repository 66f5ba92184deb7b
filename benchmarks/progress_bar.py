"""How the nodes' progress bar reads over real solves: the estimate (geodesic_core.progress.estimated_fraction, what
Geodesic Interpolation's bar shows) against a bar counted against the budget, on the embedded MNIST latent model.

    bash dev.sh py -m benchmarks.progress_bar [--pairs 5] [--threads 1]

For every held-out pair (the first --pairs of a fixed list), noise level (with the template's alpha) and frame
count, one default solve with the node's default budget (2000 evaluations; 4000 for 33 frames), every score
call's batch recorded. Per solve: its evaluations in readout passes of its frames (``one_pass_evals``), and for
both bars the jump to 100% when the solve ends and the largest step (both in % of the bar) and the bar's mean
distance from the true fraction done (evaluations so far / the solve's total). Prints one row per solve and the
worst and mean of each column.
"""

import argparse
import statistics

import torch

from digits.latent_model import load_mnist_model
from digits.mnist import load_split
from geodesic_core import one_pass_evals, solve_bvp
from geodesic_core.progress import SOLVE_PASSES, estimated_fraction

PAIRS = ((3, 7), (0, 1), (11, 25), (40, 41), (5, 9), (12, 30), (2, 8), (17, 21))
LEVELS = ((0.8, 0.54), (0.6, 0.2))  # noise level, alpha: the embedded template's, and a lower noise level
FRAMES = (9, 17, 33)


def recorded_batches(model, a, b, frames: int, alpha: float, budget: int) -> list[int]:
    """The batch of every score call of one default solve."""
    field, batches = model.field, []
    score = field.score

    def counted(x, *args, **kwargs):
        batches.append(len(x))
        return score(x, *args, **kwargs)

    field.score = counted
    try:
        solve_bvp(field, a, b, n_points=frames, alpha=alpha, sphere=True, max_evals=budget)
    finally:
        field.score = score
    return batches


def bar_columns(batches: list[int], fraction) -> tuple[float, float, float]:
    """A bar that shows ``fraction(done)`` after every call and 100% at the end: its final jump, its largest
    step, and its mean distance from the true fraction done, in %."""
    total, done, shown = sum(batches), 0, [0.0]
    truth = [0.0]
    for batch in batches:
        done += batch
        shown.append(max(shown[-1], fraction(done)))
        truth.append(done / total)
    final_jump = 1.0 - shown[-1]
    largest = max(max(b - a for a, b in zip(shown, shown[1:], strict=False)), final_jump)
    off = statistics.fmean(abs(s - t) for s, t in zip(shown, truth, strict=True))
    return 100 * final_jump, 100 * largest, 100 * off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help=f"held-out pairs (at most {len(PAIRS)})")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, _ = load_split("held_out")
    rows = []
    print("noise frames pair       evals passes | estimate: end jump, largest step, mean off | budget bar: same")
    for noise_level, alpha in LEVELS:
        model = load_mnist_model(noise_level)
        for frames in FRAMES:
            budget = 2000 if frames < 33 else 4000
            expected = SOLVE_PASSES * one_pass_evals(frames)
            for i, j in PAIRS[:args.pairs]:
                a, b = (model.to_latents(images[k:k + 1])[0] for k in (i, j))
                batches = recorded_batches(model, a, b, frames, alpha, budget)
                total = sum(batches)
                row = (total / one_pass_evals(frames),
                       *bar_columns(batches, lambda done, e=expected, m=budget: estimated_fraction(done, e, m)),
                       *bar_columns(batches, lambda done, m=budget: min(done / m, 1.0)))
                rows.append(row)
                print(f"{noise_level:5} {frames:6} {i:3},{j:<3}   {total:7} {row[0]:6.1f} | "
                      + " ".join(f"{v:5.0f}%" for v in row[1:4]) + " | " + " ".join(f"{v:5.0f}%" for v in row[4:]),
                      flush=True)
    for name, pick in (("worst", max), ("mean", statistics.fmean)):
        columns = list(zip(*rows, strict=True))
        print(f"{name:>29} {pick(columns[0]):6.1f} | " + " ".join(f"{pick(c):5.0f}%" for c in columns[1:4]) + " | "
              + " ".join(f"{pick(c):5.0f}%" for c in columns[4:]))
    print(f"passes: fewest {min(r[0] for r in rows):.1f}, median {statistics.median(r[0] for r in rows):.1f}")


if __name__ == "__main__":
    main()
