"""Default vs paper BVP solver: score evaluations, model calls, seconds, length, residual.

    bash dev.sh py -m benchmarks.solvers --threads 1      # prints the tables (about 2 minutes)
    bash dev.sh py -m benchmarks.solvers --digit-pairs 0  # only the analytic cases (a), (b)

Cases, all with 17 points: (a) a 2-D two-mode Gaussian mixture, (b) a 16,384-D mixture (an SD1.5 latent
at 512 px), with and without the sphere constraint, both analytic; (c) the learned density of the embedded
MNIST latent model (digits/latent_model.py: a diffusers VAE and a UNet on its 4x8x8 latents) with the
demo's field, alpha and noise level, between the DDIM-inverted latents of --digit-pairs held-out pairs
(digits.mnist.pick_pairs of the held-out labels, seed 0, default 8) rescaled to their common radius, with the sphere
constraint (the demo's and the paper's default) and, unless --digit-spheres sphere, without it.
"refined length" re-reads each returned 17-point path as a polyline sampled at 129 points, so a solver
cannot look short by hiding low-density stretches between its frames.
"field s" is the time spent inside score calls, "overhead" the rest of the solver's wall time.
"evals to paper length" is when the default solver's full-resolution path first comes within 0.5% of the
paper solver's final length (with its fraction of the paper's evaluations); the run then goes on until it
converges or stalls.
For (c), per pair and as median and max over pairs: "model calls" counts calls of the denoiser (one
batched UNet forward pass each, with the digits field's chunk size, printed above the table), "calls to
paper length" is that same first iterate counted in model calls, and a pair that never reaches the
paper's length ("not reached") counts as a failure. "paper its" is the paper solver's iterations out of
its 400 (fewer: its skip heuristic skipped the last level, ending the run early), "skips" how many of
them were skipped steps, "def conv" whether the default solver met its residual tolerance.
On one CPU thread (a) and (b) take about 5 s, (c) about 6 s per digit pair and sphere setting.

(d) the hard family of devtools/mixture_oracle.py: 24 mixtures of 6 unit-variance Gaussians in
1,024, 4,096 and 16,384 dimensions, sphere constraint on and off, with log-density ranges of thousands of
nats along the initial path and alpha times that range 6 to 14. Every returned path's length is measured
independently with the exact mixture density (`exact_path_length`: fine Gauss-Legendre quadrature along
the chords, or the great-circle arcs on the sphere), never with a solver's own bookkeeping. "best" is the
best known 17-point length (benchmarks/hard_family_best.json: an exact-density L-BFGS optimiser from many
starts, `python -m benchmarks.hard_mixtures --best`), "basin" the optimum that optimiser reaches from the
initial path alone (the local optimum of the basin the solvers start in). The readout columns compare `read_path` on the
initial path and on the default solver's path with the exact answers: the worst frame's log-density error
as a fraction of the exact range, and the length's relative error.

    bash dev.sh py -m benchmarks.solvers --family-only --threads 1             # only (d)
    bash dev.sh py -m benchmarks.solvers --family-only --problems d1024-line   # a subset of (d)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import statistics
import time

import torch

from benchmarks.hard_mixtures import best_known, matches
from devtools.mixture_oracle import (
    HardProblem,
    basin_optimum,
    exact_log_density,
    exact_path_length,
    hard_family,
)
from geodesic_core import GaussianMixtureField, read_path, solve_bvp
from geodesic_core.geometry import resample_polyline


class TimedField:
    """Wraps a field to measure the wall time spent in score calls."""

    def __init__(self, field):
        self.field, self.seconds = field, 0.0

    def score(self, x, t=None):
        t0 = time.perf_counter()
        s = self.field.score(x, t)
        self.seconds += time.perf_counter() - t0
        return s


def two_mode_2d():
    field = GaussianMixtureField(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 0.5)
    return field, torch.tensor([-1.5, 0.3]), torch.tensor([1.5, 0.3]), 0.5


def mixture_16k(d: int = 16384, components: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(components, d, generator=g)
    u = u / u.norm(dim=1, keepdim=True)
    means = 2.0 * u
    field = GaussianMixtureField(means, 1.0)
    a = means[0] + torch.randn(d, generator=g)
    b = means[1] + torch.randn(d, generator=g)
    return field, a, b, 1e-3


class CountingDenoiser:
    """Wraps a denoiser ``denoise(x, sigma, t)`` to record the batch size of every call: one call is one
    batched model forward pass."""

    def __init__(self, denoise):
        self.denoise, self.batches = denoise, []

    def __call__(self, x, sigma, t=None):
        self.batches.append(len(x))
        return self.denoise(x, sigma, t)


def run_case(name, field, a, b, alpha, sphere, n_points=17, counter: CountingDenoiser | None = None):
    """Both solvers on one pair. With ``counter`` (the denoiser behind ``field``) each row also gets its
    model calls, and the default row the model calls to the paper's length."""
    rows = []
    for method in ("paper", "default"):
        timed = TimedField(field)
        first_call = len(counter.batches) if counter is not None else 0
        t0 = time.perf_counter()
        res = solve_bvp(timed, a, b, n_points=n_points, alpha=alpha, sphere=sphere, method=method)
        wall = time.perf_counter() - t0
        batches = counter.batches[first_call:] if counter is not None else None
        fine = resample_polyline(res.points.reshape(n_points, -1), 8 * (n_points - 1) + 1)
        refined = read_path(field, fine.reshape(len(fine), *a.shape), alpha).length
        rows.append({"case": name, "method": method, "evals": res.score_evals, "wall": wall,
                     "field": timed.seconds, "length": res.readout.length, "refined": refined,
                     "residual": res.residual, "converged": res.converged, "history": res.history,
                     "iterations": res.iterations, "batches": batches, "calls": res.score_calls,
                     "model_calls": None if batches is None else len(batches)})
        if batches is not None and sum(batches) != res.score_evals:
            raise RuntimeError(f"{name} {method}: the denoiser saw {sum(batches)} points, the solver counted "
                               f"{res.score_evals} score evaluations")
    paper, default = rows
    # The goal's reading "reaches the paper's final length": the first full-resolution iterate of the
    # default solver within 0.5% of it (the run itself goes on to convergence).
    reached = [h["score_evals"] for h in default["history"]
               if h["points"] == n_points and h["length"] <= 1.005 * paper["length"]]
    default["evals_to_paper_length"] = reached[0] if reached else None
    default["calls_to_paper_length"] = None
    if reached and default["batches"] is not None:
        # An iterate's evaluation count falls on a call boundary: the calls up to it are the prefix of
        # the run's calls whose batch sizes add up to it.
        cumulative = list(itertools.accumulate(default["batches"]))
        default["calls_to_paper_length"] = cumulative.index(reached[0]) + 1
    return rows


def digits_case(n_pairs: int, spheres: tuple[bool, ...], n_points: int = 17) -> tuple[list[dict], dict]:
    """Both solvers on ``n_pairs`` held-out digit pairs of the embedded MNIST latent model (the demo's), set up as
    geodesic_pipeline.compare's compare_paths does (the model's field, alpha and noise level; both ends rescaled
    to their common radius). Returns the per-pair rows and the settings used."""
    from digits.latent_model import load_mnist_model
    from digits.mnist import load_split, pick_pairs
    from digits.settings import MNIST_DEFAULTS as defaults
    from geodesic_pipeline.compare import encode_pairs, to_common_radius

    model = load_mnist_model()
    images, labels = load_split("held_out")
    pairs = pick_pairs(labels, n_pairs, seed=0)
    counter = CountingDenoiser(model.denoise)
    field = dataclasses.replace(model, denoise=counter).field  # exactly the demo's DenoiserField
    latents = encode_pairs(model, images, pairs)
    rows = []
    for sphere in spheres:
        for (i, j), (start, end) in zip(pairs, latents, strict=True):
            a, b = to_common_radius(start, end)
            name = f"{i:3d}->{j:<3d} {labels[i]}->{labels[j]}"
            for row in run_case(name, field, a, b, defaults.alpha, sphere, n_points, counter):
                rows.append(row | {"sphere": sphere})
    settings = {"alpha": defaults.alpha, "noise_level": defaults.noise_level,
                "sigma": field.sigma, "chunk_size": field.chunk_size, "n_points": n_points}
    return rows, settings


def _fraction(count, total):
    return float("inf") if count is None else count / total


def _reach_text(count, total):
    return "not reached" if count is None else f"{count} ({count / total:.3f})"


def _ratio_text(value, width):
    return f"{'not reached':>{width}}" if value == float("inf") else f"{value:{width}.3f}"


def print_digits(rows: list[dict], settings: dict) -> None:
    print()
    chunk = settings["chunk_size"]
    print(f"(c) embedded MNIST latent model (learned density): noise level {settings['noise_level']} "
          f"(sigma {settings['sigma']:.4f}), alpha {settings['alpha']}, {settings['n_points']} points, "
          f"held-out pairs from pick_pairs('held_out', P, seed=0); model calls = denoiser calls, chunk size "
          f"{'none (each score call is one batched call)' if chunk is None else chunk}")
    head = (f"{'sphere':6} {'pair':14} {'paper evals':>11} {'default evals':>13} {'evals d/p':>9} "
            f"{'length d/p':>10} {'evals to paper length':>22} {'paper calls':>11} {'default calls':>13} "
            f"{'calls d/p':>9} {'calls to paper length':>22} {'paper its':>9} {'skips':>5} {'def conv':>8}")
    print(head)
    print("-" * len(head))
    by_sphere: dict[bool, list[tuple[dict, dict]]] = {}
    for paper, default in zip(rows[::2], rows[1::2]):
        by_sphere.setdefault(paper["sphere"], []).append((paper, default))
        skips = paper["iterations"] - len(paper["history"])
        print(f"{str(paper['sphere']):6} {paper['case']:14} {paper['evals']:11d} {default['evals']:13d} "
              f"{default['evals'] / paper['evals']:9.3f} {default['length'] / paper['length']:10.4f} "
              f"{_reach_text(default['evals_to_paper_length'], paper['evals']):>22} "
              f"{paper['model_calls']:11d} {default['model_calls']:13d} "
              f"{default['model_calls'] / paper['model_calls']:9.3f} "
              f"{_reach_text(default['calls_to_paper_length'], paper['model_calls']):>22} "
              f"{paper['iterations']:9d} {skips:5d} {str(default['converged']):>8}")
    print()
    head = (f"{'sphere':6} {'stat':6} {'evals d/p':>9} {'length d/p':>10} {'evals to paper length frac':>27} "
            f"{'calls d/p':>9} {'calls to paper length frac':>27}")
    print(head)
    print("-" * len(head))
    for sphere, pairs in by_sphere.items():
        columns = {
            "evals": [d["evals"] / p["evals"] for p, d in pairs],
            "length": [d["length"] / p["length"] for p, d in pairs],
            "reach_evals": [_fraction(d["evals_to_paper_length"], p["evals"]) for p, d in pairs],
            "calls": [d["model_calls"] / p["model_calls"] for p, d in pairs],
            "reach_calls": [_fraction(d["calls_to_paper_length"], p["model_calls"]) for p, d in pairs],
        }
        for stat, fn in (("median", statistics.median), ("max", max)):
            v = {key: fn(values) for key, values in columns.items()}
            print(f"{str(sphere):6} {stat:6} {v['evals']:9.3f} {v['length']:10.4f} "
                  f"{_ratio_text(v['reach_evals'], 27)} {v['calls']:9.3f} {_ratio_text(v['reach_calls'], 27)}")
        n = len(pairs)
        reached = sum(d["evals_to_paper_length"] is not None for _, d in pairs)
        within_evals = sum(f <= 0.1 for f in columns["reach_evals"])
        within_calls = sum(f <= 0.1 for f in columns["reach_calls"])
        full_calls = sum(f <= 0.1 for f in columns["calls"])
        early = sum(p["iterations"] < 400 for p, _ in pairs)
        print(f"{str(sphere):6} pairs: {reached}/{n} reach the paper's final length, within 1/10 of the paper's "
              f"evals {within_evals}/{n}, of its model calls {within_calls}/{n}; the whole default run within "
              f"1/10 of the paper's model calls {full_calls}/{n}; paper run ended early by its skip heuristic "
              f"in {early}/{n}")


# The goals for (d)
LENGTH_SLACK = 1.0                        # default length <= paper length x this, on every problem
EVALS_GOAL, EVALS_STRETCH = 0.3, 0.2      # median default/paper evaluations (and the moonshot)
EVALS_MAX = 1.0                           # max default/paper evaluations
CALLS_GOAL = 0.1                          # median default/paper batched score calls
CONVERGED_GOAL = 0.9                      # fraction of problems on which the default solver converges
BASIN_GOAL = 1.02                         # median default length / the starting basin's optimum


def readout_errors(problem: HardProblem, points: torch.Tensor) -> tuple[float, float, int]:
    """`read_path` against the exact answers on ``points``: (max over frames of |log density error| /
    exact log-density range, relative error of the length, the readout's score evaluations)."""
    exact = exact_log_density(problem.field, points)
    readout = read_path(problem.field, points, problem.alpha, sphere=problem.sphere)
    density_error = float((readout.log_density - exact).abs().max() / (exact.max() - exact.min()))
    exact_length = exact_path_length(problem.field, points, problem.alpha, sphere=problem.sphere)
    return density_error, readout.length / exact_length - 1, readout.score_evals


def hard_family_case(name_filter: str = "", with_global: bool = True) -> list[dict]:
    """Both solvers (and the global search, ``with_global``) on every problem of the hard family that `matches`
    ``name_filter``."""
    known = best_known()
    rows = []
    for problem in hard_family():
        if not matches(problem.name, name_filter):
            continue
        record = known.get(problem.name, {})
        row = {"problem": problem, "best": record.get("length"), "basin": record.get("from_initial_path"),
               "readout_initial": readout_errors(problem, problem.initial_path())}
        runs = [("paper", "paper", "local"), ("default", "default", "local")]
        for name, method, search in runs + ([("global", "default", "global")] if with_global else []):
            t0 = time.perf_counter()
            res = solve_bvp(problem.field, problem.start, problem.end, n_points=17, alpha=problem.alpha,
                            sphere=problem.sphere, method=method, search=search)
            wall = time.perf_counter() - t0
            exact = exact_path_length(problem.field, res.points, problem.alpha, sphere=problem.sphere)
            row[name] = {"evals": res.score_evals, "calls": res.score_calls, "wall": wall, "length": exact,
                         "reported": res.readout.length,
                         "converged": res.converged, "iterations": res.iterations, "residual": res.residual,
                         "outcome": res.outcome.value, "route": res.route, "history": res.history}
            if name == "default":
                row["readout_default"] = readout_errors(problem, res.points)
        # When the default's full-resolution iterates first read within 0.5% of the paper's final length
        # (the iterates' own cheap readings; the returned path is measured exactly above).
        reached = [h["score_evals"] for h in row["default"]["history"]
                   if h["points"] == 17 and h["length"] <= LENGTH_SLACK * row["paper"]["reported"]]
        row["default"]["evals_to_paper_length"] = reached[0] if reached else None
        rows.append(row)
        print(f"  {problem.name}: paper {row['paper']['wall']:.1f} s, default {row['default']['wall']:.1f} s"
              + (f", global {row['global']['wall']:.1f} s" if with_global else ""), flush=True)
    return rows


def _best_text(length: float, best: float | None, width: int) -> str:
    return f"{'-':>{width}}" if best is None else f"{length / best:{width}.3f}"


def print_hard_family(rows: list[dict]) -> None:
    if not rows:
        print("\n(d) hard family: no problem matches --problems")
        return
    with_global = "global" in rows[0]
    print()
    print("(d) hard family (devtools/mixture_oracle.py): lengths measured with the exact density; ratios "
          "default/paper (d/p), to the best known 17-point length (/best) and to the optimum of the starting "
          "basin (/basin); calls = batched score calls")
    head = (f"{'problem':17} {'alpha':>7} {'paper evals':>11} {'def evals':>9} {'evals d/p':>9} {'paper calls':>11} "
            f"{'def calls':>9} {'calls d/p':>9} {'to paper len':>12} {'length d/p':>10} {'paper/best':>10} "
            f"{'def/best':>8} {'def/basin':>9} {'def outcome':>11} {'def its':>7} {'def s':>6} {'def rep/exact':>13}"
            + (f" | {'glob evals/p':>12} {'glob/best':>9} {'glob route':>12} {'glob s':>6}" if with_global else "")
            + f" | {'readout init: dens':>18} {'len':>7} {'evals':>6} | {'readout def: dens':>17} {'len':>7} "
              f"{'evals':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        p, d, prob = r["paper"], r["default"], r["problem"]
        (di, li, ei), (dd, ld, ed) = r["readout_initial"], r["readout_default"]
        reach = d["evals_to_paper_length"]
        reach_txt = "-" if reach is None else f"{reach / p['evals']:.3f}"
        line = (f"{prob.name:17} {prob.alpha:7.1e} {p['evals']:11d} {d['evals']:9d} {d['evals'] / p['evals']:9.3f} "
                f"{p['calls']:11d} {d['calls']:9d} {d['calls'] / p['calls']:9.3f} {reach_txt:>12} "
                f"{d['length'] / p['length']:10.4f} {_best_text(p['length'], r['best'], 10)} "
                f"{_best_text(d['length'], r['best'], 8)} {_best_text(d['length'], r['basin'], 9)} "
                f"{d['outcome']:>11} {d['iterations']:7d} {d['wall']:6.1f} {d['reported'] / d['length']:13.3f}")
        if with_global:
            gl = r["global"]
            line += (f" | {gl['evals'] / p['evals']:12.3f} {_best_text(gl['length'], r['best'], 9)} "
                     f"{gl['route'].replace('via waypoint ', 'wp '):>12} {gl['wall']:6.1f}")
        print(line + f" | {di:18.3f} {li:+7.3f} {ei:6d} | {dd:17.3f} {ld:+7.3f} {ed:6d}")
    n = len(rows)
    length_ratios = [r["default"]["length"] / r["paper"]["length"] for r in rows]
    evals_ratios = [r["default"]["evals"] / r["paper"]["evals"] for r in rows]
    calls_ratios = [r["default"]["calls"] / r["paper"]["calls"] for r in rows]
    converged = sum(r["default"]["converged"] for r in rows)
    floors = sum(r["default"]["outcome"] == "floor" for r in rows)
    with_best = [r for r in rows if r["best"] is not None]
    to_best = [r["default"]["length"] / r["best"] for r in with_best]
    with_basin = [r for r in rows if r["basin"] is not None]
    to_basin = [r["default"]["length"] / r["basin"] for r in with_basin]
    paper_to_basin = [r["paper"]["length"] / r["basin"] for r in with_basin]
    print()
    print(f"summary over {n} problems:")
    print(f"  length default/paper   median {statistics.median(length_ratios):.4f}, max {max(length_ratios):.4f}; "
          f"goal <= {LENGTH_SLACK} on every problem: {sum(x <= LENGTH_SLACK for x in length_ratios)}/{n}")
    print(f"  evals default/paper    median {statistics.median(evals_ratios):.3f} (goal <= {EVALS_GOAL}, moonshot "
          f"{EVALS_STRETCH}), max {max(evals_ratios):.3f} (goal <= {EVALS_MAX}); problems within the median "
          f"goal {sum(x <= EVALS_GOAL for x in evals_ratios)}/{n}")
    print(f"  calls default/paper    median {statistics.median(calls_ratios):.3f}, max {max(calls_ratios):.3f} "
          f"(goal <= {CALLS_GOAL})")
    print(f"  default converged      {converged}/{n} (goal >= {CONVERGED_GOAL:.0%}); floor on {floors}/{n} "
          f"(goal 0: every field here is exact)")
    if with_basin:
        print(f"  default / basin optimum median {statistics.median(to_basin):.4f} (goal <= {BASIN_GOAL}), max "
              f"{max(to_basin):.4f}; paper / basin optimum median {statistics.median(paper_to_basin):.4f}, max "
              f"{max(paper_to_basin):.4f}")
    if with_best:
        print(f"  default / best known   median {statistics.median(to_best):.3f}, max {max(to_best):.3f}")
        beaten = [r["problem"].name for r in with_best
                  if min(r["paper"]["length"], r["default"]["length"]) < r["best"] * (1 - 1e-6)]
        if beaten:
            print(f"  a solver beat the best known length on {', '.join(beaten)}: rerun "
                  f"python -m benchmarks.hard_mixtures --best")
    if with_global:
        global_evals = [r["global"]["evals"] / r["paper"]["evals"] for r in rows]
        global_to_best = [r["global"]["length"] / r["best"] for r in with_best]
        detours = sum(r["global"]["route"] != "direct" for r in rows)
        print(f"  global search          evals / paper median {statistics.median(global_evals):.3f}, max "
              f"{max(global_evals):.3f}; a waypoint route won on {detours}/{n}"
              + (f"; global / best known median {statistics.median(global_to_best):.3f}" if with_best else ""))
    counts = collections.Counter(r["default"]["outcome"] for r in rows)
    print(f"  default outcomes       {', '.join(f'{o} {c}' for o, c in sorted(counts.items()))}")
    reached = [r["default"]["evals_to_paper_length"] / r["paper"]["evals"] for r in rows
               if r["default"]["evals_to_paper_length"] is not None]
    if reached:
        print(f"  evals to the paper's length / paper's evals: median {statistics.median(reached):.3f} over the "
              f"{len(reached)}/{n} problems whose default iterates reach it")
    goals = {"length <= paper": all(x <= LENGTH_SLACK for x in length_ratios),
             "evals median": statistics.median(evals_ratios) <= EVALS_GOAL,
             "evals max": max(evals_ratios) <= EVALS_MAX,
             "calls": statistics.median(calls_ratios) <= CALLS_GOAL,
             "converged": converged >= CONVERGED_GOAL * n and floors == 0,
             "basin": bool(with_basin) and statistics.median(to_basin) <= BASIN_GOAL}
    print(f"  goals met: {sum(goals.values())}/{len(goals)} ("
          + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in goals.items()) + ")")
    readouts = {"initial path": [r["readout_initial"] for r in rows],
                "default's path": [r["readout_default"] for r in rows]}
    for what, errors in readouts.items():
        dens = [e[0] for e in errors]
        lens = [abs(e[1]) for e in errors]
        evals = [e[2] for e in errors]
        print(f"  read_path on the {what:14}: log-density error / range median {statistics.median(dens):.3f}, "
              f"max {max(dens):.3f} (goal <= 0.01); |length error| median {statistics.median(lens):.3f}, "
              f"max {max(lens):.3f} (goal <= 0.01); score evaluations median {statistics.median(evals):g}, "
              f"max {max(evals)}")


# (e): the SD1.5-sized mixture (16,384-D latents of a 512 px image, 6 unit components, the paper's alpha 0.002,
# sphere on); (f): alpha times the initial path's log-density range 70, where a one-leaf layout is far off.
STRESS = (("(e) SD1.5-sized, alpha 0.002", "d16384-sphere-s0", None), ("(e) SD1.5-sized, alpha 0.002",
          "d16384-sphere-s1", None), ("(f) alpha x range 70", "d4096-line-s0", 70.0),
          ("(f) alpha x range 70", "d4096-sphere-s0", 70.0))


def stress_cases() -> list[dict]:
    """Cases (e) and (f): both solvers, lengths measured exactly, against the optimum of the starting basin
    (L-BFGS on the exact length from the initial path, in the span of the ends and the means)."""
    family = {p.name: p for p in hard_family()}
    rows = []
    for case, name, alpha_times_range in STRESS:
        problem = family[name]
        exact = exact_log_density(problem.field, problem.initial_path())
        span = float(exact.max() - exact.min())
        alpha = 0.002 if alpha_times_range is None else alpha_times_range / span
        problem = dataclasses.replace(problem, alpha=alpha)
        row = {"case": case, "problem": name, "alpha": alpha, "alpha_range": alpha * span}
        for method in ("paper", "default"):
            t0 = time.perf_counter()
            res = solve_bvp(problem.field, problem.start, problem.end, n_points=17, alpha=alpha,
                            sphere=problem.sphere, method=method)
            row[method] = {"evals": res.score_evals, "calls": res.score_calls, "outcome": res.outcome.value,
                           "wall": time.perf_counter() - t0, "points": res.points,
                           "length": exact_path_length(problem.field, res.points, alpha, sphere=problem.sphere)}
        row["basin"], _ = basin_optimum(problem)
        rows.append(row)
        print(f"  {case} {name}: basin optimum {row['basin']:.6g}", flush=True)
    return rows


def print_stress(rows: list[dict]) -> None:
    print()
    head = (f"{'case':30} {'problem':17} {'alpha':>8} {'a x range':>9} {'paper evals':>11} {'def evals':>9} "
            f"{'evals d/p':>9} {'calls d/p':>9} {'length d/p':>10} {'def/basin':>9} {'paper/basin':>11} "
            f"{'def outcome':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        p, d = r["paper"], r["default"]
        print(f"{r['case']:30} {r['problem']:17} {r['alpha']:8.2e} {r['alpha_range']:9.1f} {p['evals']:11d} "
              f"{d['evals']:9d} {d['evals'] / p['evals']:9.3f} {d['calls'] / p['calls']:9.3f} "
              f"{d['length'] / p['length']:10.4f} {d['length'] / r['basin']:9.4f} {p['length'] / r['basin']:11.4f} "
              f"{d['outcome']:>11}")


def print_digits_cases(args: argparse.Namespace) -> None:
    spheres = (True, False) if args.digit_spheres == "both" else (True,)
    print_digits(*digits_case(args.digit_pairs, spheres))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--digit-pairs", type=int, default=8, metavar="P",
                    help="held-out digit pairs for case (c); 0 skips it")
    ap.add_argument("--digit-spheres", choices=("both", "sphere"), default="both",
                    help="case (c) with and without the sphere constraint, or only with it")
    ap.add_argument("--digits-only", action="store_true", help="only case (c)")
    ap.add_argument("--family-only", action="store_true", help="only case (d), the hard family")
    ap.add_argument("--no-global", action="store_true", help="case (d) without the global search")
    ap.add_argument("--stress-only", action="store_true",
                    help="only cases (e) and (f): an SD1.5-sized mixture at the paper's alpha, and alpha x range 70")
    ap.add_argument("--problems", default="", metavar="TEXT",
                    help="case (d): only problems whose name contains TEXT, or one of comma-separated TEXTs "
                         "(e.g. d1024, sphere, d4096-line,d16384-sphere)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.digits_only:
        print_digits_cases(args)
        return
    if args.family_only:
        print_hard_family(hard_family_case(args.problems, not args.no_global))
        return
    if args.stress_only:
        print_stress(stress_cases())
        return
    rows = []
    f2, a2, b2, al2 = two_mode_2d()
    rows += run_case("(a) 2-D two modes", f2, a2, b2, al2, sphere=False)
    f16, a16, b16, al16 = mixture_16k()
    rows += run_case("(b) 16384-D, 8 comps", f16, a16, b16, al16, sphere=False)
    rows += run_case("(b) 16384-D, sphere", f16, a16, b16, al16, sphere=True)

    head = (f"{'case':22} {'method':8} {'evals':>6} {'calls':>6} {'wall s':>7} {'field s':>7} {'overhead':>8} "
            f"{'length':>9} {'refined':>9} {'residual':>9} conv")
    print(head)
    print("-" * len(head))
    for r in rows:
        over = (r["wall"] - r["field"]) / r["wall"]
        print(f"{r['case']:22} {r['method']:8} {r['evals']:6d} {r['calls']:6d} {r['wall']:7.3f} {r['field']:7.3f} "
              f"{over:8.1%} "
              f"{r['length']:9.4f} {r['refined']:9.4f} {r['residual']:9.2e} {r['converged']}")
    print()
    print(f"{'case':22} {'evals default/paper':>20} {'wall default/paper':>19} {'length default/paper':>21} "
          f"{'refined default/paper':>22} {'evals to paper length':>22}")
    for paper, default in zip(rows[::2], rows[1::2]):
        reach = default["evals_to_paper_length"]
        reach_txt = "not reached" if reach is None else f"{reach} ({reach / paper['evals']:.3f})"
        print(f"{paper['case']:22} {default['evals'] / paper['evals']:20.3f} {default['wall'] / paper['wall']:19.3f} "
              f"{default['length'] / paper['length']:21.4f} {default['refined'] / paper['refined']:22.4f} "
              f"{reach_txt:>22}")
    if args.digit_pairs > 0:
        print_digits_cases(args)
    print_hard_family(hard_family_case(args.problems, not args.no_global))
    print_stress(stress_cases())


if __name__ == "__main__":
    main()
