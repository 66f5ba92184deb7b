"""The hard mixture family's facts, and its best known 17-point paths (hard_family_best.json).

    bash dev.sh py -m benchmarks.hard_mixtures            # the family's facts, one row per problem (3 s)
    bash dev.sh py -m benchmarks.hard_mixtures --best     # recompute hard_family_best.json (~30-40 min)

The family and its exact references are devtools/mixture_oracle.py's.

Best known paths (`best_path`, cached by `--best` in hard_family_best.json, read by `best_known`):
the exact length of the 17-point piecewise path (chords / arcs, the same curve the benchmark measures) is
minimised over its 15 interior points by L-BFGS with strong-Wolfe line search, in float64, with autograd
through the exact quadrature (panels refined at every evaluation to 1e-8, so the optimiser cannot exploit
quadrature error), on the sphere through x = r y / |y|. The search runs in the 8-D span of the ends and
the means (`Subspace`: exact for the lengths of paths in it; without the sphere the best path provably lies
in it, and both solvers' iterates stay in it). Starts: the initial path, the paper and default solvers'
results (current `solve_bvp`), and the polylines through each of the four intermediate means; each start
gets 60 iterations, the two shortest and the initial path then run to convergence. The JSON records which
start won, and the converged length from the initial path alone (`from_initial_path`: the local optimum
of the basin both solvers start in; the best paths mostly detour through an intermediate component).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from devtools.mixture_oracle import (
    COMPONENTS,
    FAMILY_SEEDS,
    N_POINTS,
    HardProblem,
    PathOptimiser,
    Subspace,
    exact_path_length,
    hard_family,
    hardness,
    problem_name,
    solver_ends,
)
from geodesic_core.geometry import resample_polyline

BEST_JSON = Path(__file__).with_name("hard_family_best.json")


@dataclass
class BestPath:
    points: Tensor        # [N, dim] float64
    length: float         # exact_path_length of points
    start: str            # which starting path led to it
    iterations: int       # L-BFGS iterations of that run
    evaluations: int      # length-and-gradient evaluations of that run
    from_initial: float   # the converged length from the initial path alone: the local optimum of the
    #                       basin the solvers start in (the best path may lie in another basin)



def polyline_via(a: Tensor, b: Tensor, waypoint: Tensor, sphere: bool, n_points: int = N_POINTS) -> Tensor:
    """A starting path from ``a`` through ``waypoint`` to ``b`` with evenly spaced points (projected
    radially onto the sphere |x| = |a| with ``sphere``)."""
    out = resample_polyline(torch.stack([a, waypoint, b]), n_points)
    return out * (a.norm() / out.norm(dim=1, keepdim=True)) if sphere else out


def starting_paths(problem: HardProblem, subspace: Subspace, supplied: dict[str, Tensor]) -> dict[str, Tensor]:
    """The initial path, every ``supplied`` path (e.g. the solvers' results) projected onto S, and the
    polylines through each of the four intermediate component means (all in S coordinates)."""
    a, b = (subspace.coordinates(x[None])[0] for x in solver_ends(problem))
    starts = {"initial path": subspace.coordinates(problem.initial_path())}
    for name, path in supplied.items():
        coords = subspace.coordinates(path)
        if problem.sphere:
            coords = coords * (a.norm() / coords.norm(dim=1, keepdim=True))
        starts[name] = torch.cat([a[None], coords[1:-1], b[None]])
    for k in range(2, COMPONENTS):
        starts[f"via mean {k}"] = polyline_via(a, b, subspace.field.means[k], problem.sphere)
    return starts


def best_path(problem: HardProblem, supplied: dict[str, Tensor] | None = None, *, screen_iterations: int = 60,
              finalists: int = 2, max_iterations: int = 20000) -> BestPath:
    """The shortest 17-point path found by L-BFGS from every starting path (`starting_paths`): each start
    gets ``screen_iterations`` iterations, the ``finalists`` shortest and the initial path then run on to
    convergence; the winner is measured again with the full-dimensional exact length."""
    subspace = Subspace.of(problem)
    a, b = (subspace.coordinates(x[None])[0] for x in solver_ends(problem))
    runs = {}
    for name, initial in starting_paths(problem, subspace, supplied or {}).items():
        runs[name] = PathOptimiser(subspace.field, a, b, initial, problem.alpha, sphere=problem.sphere)
        runs[name].run(screen_iterations)
    screened = {name: run.length() for name, run in runs.items()}
    best = None
    finalists_and_initial = sorted(screened, key=screened.get)[:finalists]
    finalists_and_initial += [] if "initial path" in finalists_and_initial else ["initial path"]
    for name in finalists_and_initial:
        run = runs[name]
        run.run(max_iterations)
        length = run.length()
        if best is None or length < best.length:
            best = BestPath(run.path().detach(), length, name, run.iterations, run.evaluations, math.nan)
    best.from_initial = runs["initial path"].length()
    points = subspace.lift(best.points)
    points[0], points[-1] = solver_ends(problem)
    best.points = points
    best.length = exact_path_length(problem.field, points, problem.alpha, sphere=problem.sphere)
    return best


def compute_best(problems: list[HardProblem], path: Path = BEST_JSON) -> dict:
    """Best known 17-point path of every problem, from the starts of `starting_paths` with both solvers'
    results (current `solve_bvp`) supplied; written to ``path`` as JSON (lengths only: paths are
    recomputable)."""
    from geodesic_core import solve_bvp

    records = {}
    for problem in problems:
        t0 = time.perf_counter()
        supplied, solver_lengths = {}, {}
        for method in ("paper", "default"):
            res = solve_bvp(problem.field, problem.start, problem.end, n_points=N_POINTS, alpha=problem.alpha,
                            sphere=problem.sphere, method=method)
            supplied[method] = res.points
            solver_lengths[method] = exact_path_length(problem.field, res.points, problem.alpha,
                                                       sphere=problem.sphere)
        best = best_path(problem, supplied)
        records[problem.name] = {
            "length": best.length, "start": best.start, "lbfgs_iterations": best.iterations,
            "lbfgs_evaluations": best.evaluations, "from_initial_path": best.from_initial,
            "initial_path_length": exact_path_length(problem.field, problem.initial_path(), problem.alpha,
                                                     sphere=problem.sphere),
            "paper_length": solver_lengths["paper"], "default_length": solver_lengths["default"],
            "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{problem.name:20} best {best.length:12.6g} from {best.start:12} ({best.iterations} L-BFGS iterations)"
              f"  paper {solver_lengths['paper']:12.6g}  default {solver_lengths['default']:12.6g}"
              f"  {records[problem.name]['seconds']:.0f} s", flush=True)
        data = _write_best(path, records)
    return data


_FAMILY_ORDER = {problem_name(dim, sphere, seed): i for i, (dim, sphere, seed) in enumerate(
    (dim, sphere, seed) for (dim, sphere), seeds in FAMILY_SEEDS.items() for seed in seeds)}


def _write_best(path: Path, records: dict) -> dict:
    """Merge ``records`` into the JSON at ``path`` (after every problem: a long run can be split by name)."""
    old = json.loads(path.read_text())["problems"] if path.exists() else {}
    data = {"how": "python -m benchmarks.hard_mixtures --best: see best_path (L-BFGS on the exact length in "
                   "the 8-D span of ends and means, from the initial path, both solvers' paths and the "
                   "polylines via each intermediate mean; 60 screening iterations each, the 2 best and the "
                   "initial path run to convergence: from_initial_path is the optimum of the solvers' "
                   "starting basin)",
            "problems": dict(sorted((old | records).items(), key=lambda item: _FAMILY_ORDER.get(item[0], 0)))}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def matches(name: str, pattern: str) -> bool:
    """Whether a problem name contains one of the comma-separated parts of ``pattern`` ("" matches all)."""
    return any(part in name for part in pattern.split(","))


def best_known(path: Path = BEST_JSON) -> dict[str, dict]:
    """Problem name -> its record in the committed cache (`compute_best`): "length" (the best known
    17-point length), "from_initial_path", "start", ..."""
    return json.loads(path.read_text())["problems"] if path.exists() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--best", action="store_true",
                    help=f"recompute the best known paths (minutes per problem) into {BEST_JSON.name}")
    ap.add_argument("--problems", default="", metavar="TEXT[,TEXT...]",
                    help="only problems whose name contains one of these texts (e.g. d1024,d4096-line)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    problems = [p for p in hard_family() if matches(p.name, args.problems)]
    if args.best:
        compute_best(problems)
        return
    head = (f"{'problem':20} {'alpha':>8} {'range nats':>10} {'alpha*range':>11} {'trap err':>9} {'err/range':>9} "
            f"{'frame':>5} {'exact length':>13} {'trap/exact':>10} {'hard':>5}")
    print(head)
    print("-" * len(head))
    for p in problems:
        h = hardness(p)
        print(f"{p.name:20} {p.alpha:8.2e} {h.log_density_range:10.0f} {p.alpha * h.log_density_range:11.2f} "
              f"{h.max_error:9.0f} {h.relative_error:9.3f} {h.worst_frame:5d} {h.exact_length:13.5g} "
              f"{h.trapezoid_length / h.exact_length:10.3f} {str(h.hard):>5}")


if __name__ == "__main__":
    main()
