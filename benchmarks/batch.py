"""Items per second of `geodesic_batch interpolate`: the plain single-process loop against Ray Data with 1 and
2 workers, side by side in one run, and Ray's fixed start-up cost.

    python -m benchmarks.batch [--pairs 8] [--frames 9] [--invert-steps 10] [--decode-steps 10] [--num-cpus 2]

Every variant runs the same job (held-out digit pairs written by `example-pairs`, the same settings) into
its own fresh output folder through `run_job`, so each pays everything a user's run pays: planning,
hashing, model loading, the work, publishing and the Parquet table. The loop loads the model once in this
process (`--workers 0`); a Ray variant starts a private local Ray (`ray.init`, timed apart) and loads the
model once in each worker. Prints one table; writes it with every row's numbers to --out as JSON.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from geodesic_batch.cli import run_job, write_example_pairs
from geodesic_batch.engine import start_ray
from geodesic_batch.settings import Settings


def timed_job(pairs: Path, out: Path, settings: Settings, workers: int) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    rows = run_job("interpolate", pairs, out, settings=settings, workers=workers)
    seconds = time.perf_counter() - started
    failed = [row["error"] for row in rows if row["status"] != "ok"]
    if failed:
        raise RuntimeError(f"benchmark items failed: {failed}")
    return seconds, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--invert-steps", type=int, default=10)
    parser.add_argument("--decode-steps", type=int, default=10)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs the local Ray may use (default 2)")
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks/batch.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the loop's process: one thread, as each Ray worker (--cpus-per-worker 1)
    settings = Settings(frames=args.frames, invert_steps=args.invert_steps, decode_steps=args.decode_steps)
    scratch = Path(tempfile.mkdtemp(prefix="batch-benchmark-"))
    try:
        pairs = scratch / "pairs"
        write_example_pairs(pairs, args.pairs, seed=0)
        results = {}
        seconds, rows = timed_job(pairs, scratch / "loop", settings, workers=0)
        results["loop"] = {"workers": 0, "ray_start_s": 0.0, "job_s": seconds, "rows": rows}
        for workers in (1, 2):
            import ray

            started = time.perf_counter()
            start_ray(None, args.num_cpus)
            ray_start = time.perf_counter() - started
            try:
                seconds, rows = timed_job(pairs, scratch / f"ray{workers}", settings, workers=workers)
            finally:
                ray.shutdown()
            results[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = {
                "workers": workers, "ray_start_s": ray_start, "job_s": seconds, "rows": rows}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    loop_rate = args.pairs / results["loop"]["job_s"]
    header = (f"{'variant':<16} {'ray.init s':>10} {'job s':>7} {'total s':>8} {'items/s':>8} {'x loop':>7} "
              f"{'item s':>7} {'fixed s':>8} {'calls/item':>10} {'images/item':>11}")
    lines = [f"{args.pairs} digit pairs, {args.frames} frames, {args.invert_steps} inversion / {args.decode_steps} "
             f"decode steps, local Ray with {args.num_cpus} CPUs", header, "-" * len(header)]
    for name, result in results.items():
        rows = result["rows"]
        total = result["ray_start_s"] + result["job_s"]
        item_seconds = sum(row["wall_seconds"] for row in rows) / len(rows)
        # what the job cost beyond its items' own work, spread over the workers (1 for the loop)
        fixed = total - item_seconds * len(rows) / max(result["workers"], 1)
        rate = len(rows) / total
        result |= {"total_s": total, "items_per_s": rate, "ratio_to_loop": rate / loop_rate,
                   "mean_item_s": item_seconds, "fixed_s": fixed,
                   "calls_per_item": sum(row["model_calls"] for row in rows) / len(rows),
                   "images_per_item": sum(row["model_images"] for row in rows) / len(rows)}
        lines.append(f"{name:<16} {result['ray_start_s']:>10.2f} {result['job_s']:>7.2f} {total:>8.2f} {rate:>8.3f} "
                     f"{rate / loop_rate:>7.2f} {item_seconds:>7.2f} {fixed:>8.2f} {result['calls_per_item']:>10.1f} "
                     f"{result['images_per_item']:>11.1f}")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"table": table, "settings": settings.__dict__, "results": results}, indent=2,
                                   default=str) + "\n")


if __name__ == "__main__":
    main()
