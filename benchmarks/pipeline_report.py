"""The pipeline benchmark's report: machine, per-stage table, batch-size comparison and ratios."""

from __future__ import annotations

import datetime
import os
import platform

import psutil
import torch

from .pipeline_stages import StageResult


def machine_description(device: torch.device) -> dict:
    info = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_mem_gib"] = round(props.total_memory / 2**30, 1)
    return info


def in_model_ratio(*stages: StageResult) -> float:
    """Stage CPU seconds over CPU seconds inside model forward passes, measured in the same run (immune
    to other jobs on a shared machine); NaN where calls were not timed (GPU: timing them would sync)."""
    inside = sum(s.inside_cpu_s for s in stages)
    return sum(s.cpu_s for s in stages) / inside if inside > 0 else float("nan")


def format_table(stages: list[StageResult], memory_label: str) -> str:
    header = (f"{'stage':<16}{'wall s':>9}{'floor s':>9}{'x floor':>8}{'cpu s':>9}{'floor cpu':>10}"
              f"{'x floor':>8}{'in-model cpu':>13}{'x in-model':>11}{'UNet calls':>11}{'UNet imgs':>10}"
              f"{'imgs/call':>22}{'VAE calls':>10}{memory_label:>15}")
    lines = [header, "-" * len(header)]
    for s in stages:
        unet = s.calls.get("unet", {})
        vae_calls = sum(v["calls"] for k, v in s.calls.items() if k.startswith("vae"))
        histogram = ",".join(f"{k}x{v}" for k, v in unet.get("images_per_call", {}).items())
        lines.append(f"{s.stage:<16}{s.wall_s:>9.2f}{s.floor_s:>9.2f}{s.wall_s / s.floor_s:>8.3f}"
                     f"{s.cpu_s:>9.2f}{s.floor_cpu_s:>10.2f}{s.cpu_s / s.floor_cpu_s:>8.3f}"
                     f"{s.inside_cpu_s:>13.2f}{in_model_ratio(s):>11.3f}"
                     f"{s.unet_calls:>11}{s.unet_images:>10}{histogram:>22}{vae_calls:>10}{s.peak_mib:>15.0f}")
    return "\n".join(lines)


def format_batch_comparison(stages: list[StageResult], other: list[StageResult], batch: int, other_batch: int,
                            memory_label: str) -> str:
    """The pipeline's stages at two batch sizes: wall seconds, UNet calls and peak memory, with ratios."""
    by_name = {s.stage: s for s in other}
    header = (f"{'stage':<16}{f'wall s @{batch}':>12}{f'wall s @{other_batch}':>12}{'ratio':>8}"
              f"{f'UNet calls @{batch}':>16}{f'UNet calls @{other_batch}':>16}"
              f"{f'{memory_label} @{batch}':>22}{f'@{other_batch}':>8}")
    lines = [f"batch_size {batch} vs {other_batch} (ratio = wall @{batch} / wall @{other_batch})", header,
             "-" * len(header)]
    for s in stages:
        o = by_name.get(s.stage)
        if o is not None:
            lines.append(f"{s.stage:<16}{s.wall_s:>12.2f}{o.wall_s:>12.2f}{s.wall_s / o.wall_s:>8.3f}"
                         f"{s.unet_calls:>16}{o.unet_calls:>16}{s.peak_mib:>22.0f}{o.peak_mib:>8.0f}")
    mine = [s for s in stages if s.stage in by_name]
    total, total_other = sum(s.wall_s for s in mine), sum(by_name[s.stage].wall_s for s in mine)
    lines.append(f"{'pipeline':<16}{total:>12.2f}{total_other:>12.2f}{total / total_other:>8.3f}")
    return "\n".join(lines)


def ratios(stages: list[StageResult]) -> dict:
    by_name = {s.stage: s for s in stages}
    pipeline = [s for s in stages if s.stage != "solve_paper"]
    out = {"pipeline_over_floor_wall": sum(s.wall_s for s in pipeline) / sum(s.floor_s for s in pipeline),
           "pipeline_over_floor_cpu": sum(s.cpu_s for s in pipeline) / sum(s.floor_cpu_s for s in pipeline),
           "pipeline_over_in_model_cpu": in_model_ratio(*pipeline),
           "pipeline_wall_s": sum(s.wall_s for s in pipeline),
           "pipeline_peak_mib": max(s.peak_mib for s in pipeline)}
    default, paper = by_name.get("solve_default"), by_name.get("solve_paper")
    if default and paper:
        out["default_over_paper_unet_images"] = default.unet_images / paper.unet_images
        out["default_over_paper_unet_calls"] = default.unet_calls / paper.unet_calls
        out["default_over_paper_wall"] = default.wall_s / paper.wall_s
        for key in ("solver_length", "readout_length"):
            out[f"{key}_default"] = default.extra.get(key)
            out[f"{key}_paper"] = paper.extra.get(key)
    return out
