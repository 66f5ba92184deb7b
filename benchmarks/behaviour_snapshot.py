"""Numbers a refactor must not change, written to one JSON file, and a comparison of two such files.

    python -m benchmarks.behaviour_snapshot write before.json     # in the tree before the change
    python -m benchmarks.behaviour_snapshot write after.json      # in the tree after it
    python -m benchmarks.behaviour_snapshot compare before.json after.json

Snapshot (about 3 minutes on one CPU thread): the demo's results.json without its timing (default settings
but 9 frames), the batch tool's results rows without timings for two digit pairs and one closed loop of
three keyframes, and both solvers of benchmarks.solvers on its 2-D case (a) and one digit pair (c), sphere
on and off, without their timings.
"""

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
from pathlib import Path

# timings, and what names this run's temporary folder or process
TIMING_KEYS = {"seconds", "wall_seconds", "reused", "wall", "field", "batches", "output_dir", "worker", "files"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def demo_results(folder: Path) -> dict:
    from digits.main import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--out", str(folder / "demo"), "--frames", "9"]) == 0
    return without_timings(json.loads((folder / "demo" / "results.json").read_text()))


def batch_rows(folder: Path) -> list[dict]:
    import pandas as pd

    from geodesic_batch.cli import main, write_example_pairs

    pairs = folder / "pairs"
    write_example_pairs(pairs, 3, seed=0)
    images = sorted(str(p) for p in pairs.iterdir())
    manifest = folder / "items.csv"
    manifest.write_text("id,images,loop\n" + f"a,{images[0]};{images[1]},false\n" + f"b,{images[2]};{images[3]},false\n"
                        + f"loop,{images[0]};{images[2]};{images[4]},true\n")
    flags = ["--frames", "7", "--invert-steps", "6", "--decode-steps", "6", "--max-evals", "200", "--workers", "0"]
    assert main(["interpolate", str(manifest), "--out", str(folder / "batch"), *flags]) == 0
    table = pd.read_parquet(folder / "batch" / "results.parquet")
    rows = json.loads(table.to_json(orient="records"))
    return [without_timings({k: v for k, v in row.items() if k not in ("inputs", "key")}) for row in rows]


def solver_cases() -> list[dict]:
    from benchmarks.solvers import digits_case, run_case, two_mode_2d

    rows = [row | {"sphere": sphere} for sphere in (True, False) for row in run_case("2d", *two_mode_2d(), sphere)]
    rows += digits_case(1, (True, False))[0]
    return without_timings(rows)


def write(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snapshot = {"solvers": solver_cases(), "demo": demo_results(folder), "batch": batch_rows(folder)}
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        return found + [d for k in sorted(set(a) & set(b)) for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b))):
        return []
    return [] if a == b else [f"{where}: {a!r} != {b!r}"[:300]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("write", "compare"))
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.action == "write":
        write(args.files[0])
        return 0
    before, after = (json.loads(f.read_text()) for f in args.files)
    found = differences(before, after)
    print("\n".join(found) if found else "identical")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
