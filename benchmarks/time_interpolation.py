"""Wall time of the interpolation template (example_workflows/) on a real ComfyUI server, split by stage.

    bash dev.sh py -m benchmarks.time_interpolation [--size 256] [--frames 17]

Runs the workflow with its own (user-facing) settings on the generated tiny SD1.5 checkpoint and
two size x size digit images, then reads the pack's per-stage log lines ("DensityGeodesics <stage>:
<s> s, <n> model calls, <m> latents evaluated") from the server log. Prints JSON and writes it to
test-artifacts/interpolation_timing.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from devtools.comfy_server import ARTIFACTS, INTERPOLATION_TEMPLATE, WORKFLOWS_DIR, start_server, write_example_inputs
from devtools.workflow_convert import ui_to_api

STAGE_LINE = re.compile(r"DensityGeodesics (\w+): ([\d.]+) s, (\d+) model calls, (\d+) latents evaluated")


def stage_timings(log: str) -> list[dict]:
    return [{"stage": stage, "seconds": float(seconds), "model_calls": int(calls), "latents": int(latents)}
            for stage, seconds, calls, latents in STAGE_LINE.findall(log)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="width = height of the two keyframe images")
    parser.add_argument("--frames", type=int, default=17)
    args = parser.parse_args()
    workflow = json.loads((WORKFLOWS_DIR / f"{INTERPOLATION_TEMPLATE}.json").read_text())
    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "comfy")
        try:
            write_example_inputs(server.input_dir, args.size)
            prompt = ui_to_api(workflow, server.object_info())
            solve = next(node for node in prompt.values() if node["class_type"] == "DensityGeodesics_SolveBVP")
            solve["inputs"]["frames"] = args.frames
            log_start = len(server.log_text())
            result = server.run(prompt, timeout_s=3600.0)
            if result.status != "success":
                raise SystemExit(f"the workflow failed: {result.error_message}\n{server.log_tail()}")
            messages = result.messages
            executed_s = (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000
            report = {"size": args.size, "frames": args.frames, "wall_s_post_to_history": round(result.wall_s, 2),
                      "server_execution_s": round(executed_s, 2), "cpu_count": os.cpu_count(),
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                      "stages": stage_timings(server.log_text()[log_start:]),
                      "settings": {node["class_type"]: {k: v for k, v in node["inputs"].items()
                                                        if not isinstance(v, list)}
                                   for node in prompt.values() if node["class_type"].startswith("DensityGeodesics")}}
        finally:
            server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "interpolation_timing.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
