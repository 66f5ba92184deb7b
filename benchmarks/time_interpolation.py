"""Wall time and model evaluations of a template (example_workflows/) on a real ComfyUI server, by stage.

    bash dev.sh py -m benchmarks.time_interpolation [--template embedded] [--threads 1] [--size 256] [--frames 17]

Runs the workflow through POST /prompt with its own (user-facing) settings: the interpolation template on
the generated tiny SD1.5 checkpoint and two size x size digit images, the embedded template exactly as it
opens (its model and digits need no file). Reads the pack's per-stage log lines ("DensityGeodesics <stage>:
<s> s, <n> model calls, <m> latents evaluated") from the server log. Prints JSON and writes it to
test-artifacts/<template>_timing.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from devtools.comfy_harness import COMFY_DIR
from devtools.comfy_server import (
    ARTIFACTS,
    EMBEDDED_TEMPLATE,
    INTERPOLATION_TEMPLATE,
    WORKFLOWS_DIR,
    start_server,
    write_example_inputs,
)
from devtools.workflow_convert import ui_to_api

STAGE_LINE = re.compile(r"DensityGeodesics (\w+): ([\d.]+) s, (\d+) model calls, (\d+) latents evaluated")
TEMPLATES = {"interpolation": INTERPOLATION_TEMPLATE, "embedded": EMBEDDED_TEMPLATE}


def stage_timings(log: str) -> list[dict]:
    return [{"stage": stage, "seconds": float(seconds), "model_calls": int(calls), "latents": int(latents)}
            for stage, seconds, calls, latents in STAGE_LINE.findall(log)]


def comfyui_version() -> str:
    version = re.search(r'__version__ = "([^"]+)"', (COMFY_DIR / "comfyui_version.py").read_text())
    return version.group(1) if version else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", choices=TEMPLATES, default="interpolation")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the server (torch's threads); default: torch's own choice")
    parser.add_argument("--size", type=int, default=256,
                        help="width = height of the interpolation template's two keyframe images")
    parser.add_argument("--frames", type=int, default=None, help="Geodesic Interpolation's frames "
                        "(default: the template's)")
    args = parser.parse_args()
    workflow = json.loads((WORKFLOWS_DIR / f"{TEMPLATES[args.template]}.json").read_text())
    server_env = {} if args.threads is None else {"OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "comfy", extra_env=server_env)
        try:
            write_example_inputs(server.input_dir, args.size)
            prompt = ui_to_api(workflow, server.object_info())
            solve = next(node for node in prompt.values() if node["class_type"] == "DensityGeodesics_SolveBVP")
            if args.frames is not None:
                solve["inputs"]["frames"] = args.frames
            log_start = len(server.log_text())
            result = server.run(prompt, timeout_s=3600.0)
            if result.status != "success":
                raise SystemExit(f"the workflow failed: {result.error_message}\n{server.log_tail()}")
            messages = result.messages
            executed_s = (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000
            report = {"template": TEMPLATES[args.template], "comfyui": comfyui_version(),
                      "server_threads": server_env.get("OMP_NUM_THREADS", "default"),
                      "frames": solve["inputs"]["frames"], "wall_s_post_to_history": round(result.wall_s, 2),
                      "server_execution_s": round(executed_s, 2), "cpu_count": os.cpu_count(),
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                      "stages": stage_timings(server.log_text()[log_start:]),
                      "settings": {node["class_type"]: {k: v for k, v in node["inputs"].items()
                                                        if not isinstance(v, list)}
                                   for node in prompt.values() if node["class_type"].startswith("DensityGeodesics")}}
            if args.template == "interpolation":
                report["size"] = args.size
        finally:
            server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{args.template}_timing.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
