"""The one device check: the full-size SD1.5-layout pipeline at 512 px and 17 frames with both
solvers, and the embedded learned model's evaluation counts, with the end-to-end time they imply.

    python3 -m benchmarks.gpu_check --out DIR                     # on a GPU (planned: under 8 minutes)
    bash dev.sh py -m benchmarks.gpu_check --tiny --out out/gpu   # proof of the script on the CPU, tiny sizes

Step 1 runs benchmarks/pipeline.py (in-process ComfyUI, random SD1.5-layout weights) and keeps its JSON:
seconds per stage (encode + invert, each solver, generate + decode), UNet calls and images (one image = one
evaluation), evaluations per second at the batch sizes the stage used, peak memory. Step 2 counts the
evaluations both solvers make on the embedded learned MNIST model (held-out pairs, the demo's settings;
counts do not depend on the device). On random weights the paper's skip rule ends its schedule early and
the default solver's iterations are those of a random density, so the script also prints the end-to-end
time IMPLIED by the learned model's counts at the measured evaluation rate: encode + learned evals / rate +
decode. It is labelled implied: no learned SD-scale model is offline here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

FULL = ["--arch", "sd15", "--size", "512", "--device", "cuda", "--frames", "17"]
TINY = ["--arch", "tiny", "--size", "64", "--device", "cpu", "--frames", "17", "--invert-steps", "2",
        "--decode-steps", "2", "--max-evals", "400", "--paper-max-evals", "400", "--skip-readout"]


def run_pipeline(tiny: bool, out: Path) -> dict:
    path = out / "pipeline.json"
    command = [sys.executable, "-m", "benchmarks.pipeline", *(TINY if tiny else FULL), "--json", str(path)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return json.loads(path.read_text())


def learned_counts(pairs: int) -> dict:
    """Median evaluations of both solvers on the embedded learned model (the MNIST latent model the demo runs;
    sphere on, as the demo)."""
    from benchmarks.solvers import digits_case

    rows, settings = digits_case(pairs, (True,))
    return {"pairs": pairs, "settings": settings,
            "paper_evals": statistics.median(r["evals"] for r in rows if r["method"] == "paper"),
            "default_evals": statistics.median(r["evals"] for r in rows if r["method"] == "default")}


def summarise(pipeline: dict, learned: dict) -> dict:
    stages = {s["stage"]: s for s in pipeline["stages"]}
    table = {}
    for name, s in stages.items():
        unet = s["calls"].get("unet", {})
        images, calls = unet.get("images", 0), unet.get("calls", 0)
        table[name] = {"wall_s": s["wall_s"], "unet_calls": calls, "unet_images": images,
                       "images_per_call": images / calls if calls else None,
                       "evals_per_s": images / s["wall_s"] if s["wall_s"] > 0 else None,
                       "peak_mib": s["peak_mib"]}
    out = {"stages": table, "ratios": pipeline["ratios"], "learned": learned}
    rate = table.get("solve_default", {}).get("evals_per_s")
    if rate:
        implied = {}
        for method in ("default", "paper"):
            solve_s = learned[f"{method}_evals"] / rate
            implied[method] = {"solve_s": solve_s,
                               "end_to_end_s": table["encode"]["wall_s"] + solve_s + table["decode"]["wall_s"]}
        out["implied"] = implied
    return out


def print_summary(summary: dict, device: str) -> None:
    print(f"\nstages on {device} (random SD1.5-layout weights)")
    print(f"{'stage':15} {'wall s':>8} {'UNet calls':>10} {'evals':>7} {'evals/call':>10} {'evals/s':>8} "
          f"{'peak MiB':>9}")
    for name, s in summary["stages"].items():
        per_call = "-" if s["images_per_call"] is None else f"{s['images_per_call']:.1f}"
        rate = "-" if s["evals_per_s"] is None else f"{s['evals_per_s']:.1f}"
        print(f"{name:15} {s['wall_s']:8.2f} {s['unet_calls']:10d} {s['unet_images']:7d} {per_call:>10} "
              f"{rate:>8} {s['peak_mib']:9.0f}")
    print(json.dumps(summary["ratios"], indent=1))
    learned = summary["learned"]
    print(f"\nembedded learned model, {learned['pairs']} held-out pairs (median evaluations): default "
          f"{learned['default_evals']:g}, paper {learned['paper_evals']:g} "
          f"(ratio {learned['default_evals'] / learned['paper_evals']:.3f})")
    for method, v in summary.get("implied", {}).items():
        print(f"IMPLIED end-to-end with the learned model's {method} evaluation count: {v['end_to_end_s']:.1f} s "
              f"(solve {v['solve_s']:.1f} s at the measured evaluation rate)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU: proves the script, times nothing")
    ap.add_argument("--out", type=Path, required=True, help="folder for pipeline.json and gpu_check.json")
    ap.add_argument("--digit-pairs", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = run_pipeline(args.tiny, args.out)
    summary = summarise(pipeline, learned_counts(args.digit_pairs))
    print_summary(summary, pipeline["device"])
    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
