"""Peak memory (RSS) of the Perceptual Metrics node's LPIPS over many frames, each case in a fresh process.

    python -m benchmarks.perceptual_memory                      # the cases in CASES
    python -m benchmarks.perceptual_memory --case 300 128 vgg   # one case: frames, px, net

A case builds N random frames (a ComfyUI IMAGE [N, px, px, 3] in [0, 1]), runs the node's own path
(nodes.perceptual.image_metrics: LPIPS on ComfyUI's torch device, CPU here) and prints one JSON line: the
peak RSS of the process (ru_maxrss), the RSS before LPIPS started, the IMAGE's own size and the time.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from devtools.comfy_harness import ROOT, import_comfy, import_pack_module

CASES = [(300, 128, "vgg"), (100, 512, "vgg")]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def run_case(frames: int, size: int, net: str) -> dict:
    import torch

    import_comfy()
    perceptual = import_pack_module("nodes.perceptual")
    torch.manual_seed(0)
    images = torch.rand(frames, size, size, 3)
    lpips = perceptual.lpips_on_device(net)  # weights loaded before the baseline: they are not per-frame memory
    # Frames per LPIPS pass the node will use (asked the same way just before it runs).
    chunk = None
    if hasattr(perceptual, "lpips_chunk"):
        chunk = perceptual.lpips_chunk(lpips, perceptual.image_frames(images))
    baseline = rss_mib()
    started = time.perf_counter()
    metrics = perceptual.image_metrics(images, net)
    seconds = time.perf_counter() - started
    return {"frames": frames, "px": size, "net": net, "torch_threads": torch.get_num_threads(), "chunk": chunk,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_lpips_mib": round(baseline, 1), "image_mib": images.numel() * 4 / 2**20,
            "seconds": round(seconds, 1), "ppl": round(metrics.ppl, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=3, metavar=("FRAMES", "PX", "NET"), help="run one case in this process")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), int(args.case[1]), args.case[2])), flush=True)
        return
    for frames, size, net in CASES:
        subprocess.run([sys.executable, "-m", "benchmarks.perceptual_memory", "--case", str(frames), str(size), net],
                       cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
