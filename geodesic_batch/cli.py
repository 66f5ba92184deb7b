"""density-geodesics-batch (also ``python -m geodesic_batch``): data-set jobs on Ray Data.

    python -m geodesic_batch example-pairs out/digit_pairs            # held-out digit pairs as PNG files
    python -m geodesic_batch interpolate out/digit_pairs --out out/batch
    python -m geodesic_batch analyze clips/ --out out/analysis --address ray://head:10001 --workers 8 \\
        --gpus-per-worker 1 --model path/to/diffusers-folder

interpolate: a folder of images (taken two at a time in name order) or a CSV / JSONL manifest of pairs
or keyframe lists (optionally a closed loop). Each item gets linear, slerp and geodesic paths: strip.png,
linear/slerp/geodesic.webp and a results row. analyze: video files (MP4, WebM, GIF, ...) or folders of
frames; each clip gets its per-frame relative log density, geodesic length, efficiency against the
geodesic between its ends, and density.png. All rows go to OUT/results.parquet. A rerun skips finished
items. Exit status: 0 all done, 1 some items failed (counted in the summary), 2 unusable input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geodesic_pipeline.core import GeodesicInputError

from .engine import device_for, pool_size, run_on_ray, run_serial, start_ray
from .inputs import InputsError, ItemError, analyze_items, content_hash, interpolate_items
from .models import DIGITS, ModelError, load_model, model_defaults, model_identity
from .settings import FIELDS, Settings, SettingsError, as_dict, content_key, make_settings, read_config
from .store import BusyError, finished_row, locked, remove_partials, write_results

COMMANDS = ("interpolate", "analyze")


def progress(message: str) -> None:
    print(f"[geodesic_batch] {message}", file=sys.stderr, flush=True)


def plan(command: str, items: list, identity: str, settings: Settings) -> list[dict]:
    """Each item's results row as far as it is known before any model runs: ids, inputs, their content
    hashes, the key, settings. An unreadable input already fails here."""
    base = as_dict(settings) | {"model": identity}
    rows = []
    for item in items:
        row = base | {"item_id": item.item_id, "inputs": list(item.inputs), "loop": item.loop}
        try:
            row["input_sha256"] = [content_hash(Path(path)) for path in item.inputs]
            row["key"] = content_key(command, identity, row["input_sha256"], item.loop, settings)
        except ItemError as error:
            row |= {"status": "failed", "error": str(error), "reused": False}
        rows.append((item, row))
    return rows


def run_job(command: str, source: Path, out: Path, *, model_spec: str = DIGITS, settings: Settings | None = None,
            address: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0, num_cpus: int | None = None) -> list[dict]:
    """The whole job: plan, skip what is finished, run the rest on Ray (``workers`` 0: in this process),
    write results.parquet. Returns the rows in item order."""
    started = time.perf_counter()
    settings = (settings or Settings()).for_model(model_defaults(model_spec))
    items = (interpolate_items if command == "interpolate" else analyze_items)(source)
    identity = model_identity(model_spec)
    planned = plan(command, items, identity, settings)
    with locked(out):
        removed = remove_partials(out)
        if removed:
            progress(f"removed {removed} half-written item folder(s) left by an interrupted run")
        todo: dict[str, dict] = {}
        rows = []
        for item, row in planned:
            if "key" in row and (done := finished_row(out, row["key"])) is not None:
                row = done | {"item_id": item.item_id, "inputs": row["inputs"], "reused": True}
            elif "key" in row:
                todo.setdefault(row["key"], {"item": item.as_json(), "row": row})
            rows.append(row)
        progress(f"{command}: {len(items)} items, {len(rows) - len(todo)} already finished or unreadable, "
                 f"{len(todo)} to run")
        finished: dict[str, dict] = {}
        if todo and workers == 0:
            progress(f"running {len(todo)} items in this process (no Ray)")
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, int(cpus_per_worker)))
            try:
                model = load_model(model_spec, settings, device_for(gpus_per_worker))
                finished = {row["key"]: row for row in run_serial(command, model, list(todo.values()), settings, out)}
            finally:
                torch.set_num_threads(threads)
        elif todo:
            owns_ray = start_ray(address, num_cpus)
            try:
                pool = pool_size(workers, cpus_per_worker, gpus_per_worker, len(todo))
                progress(f"running {len(todo)} items on {pool} Ray worker(s)")
                for row in run_on_ray(command, model_spec, list(todo.values()), settings, out, workers=pool,
                                      cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker):
                    finished[row["key"]] = row
            finally:
                if owns_ray:
                    import ray

                    ray.shutdown()
        rows = [finished[row["key"]] | {"item_id": row["item_id"], "inputs": row["inputs"]}
                if row.get("key") in finished else row for row in rows]
        results = write_results(out, command, rows)
        remove_partials(out)
    print(summary(command, rows, results, time.perf_counter() - started))
    return rows


def summary(command: str, rows: list[dict], results: Path, seconds: float) -> str:
    failed = [row for row in rows if row["status"] != "ok"]
    reused = sum(1 for row in rows if row["status"] == "ok" and row.get("reused"))
    calls = sum(row.get("model_calls") or 0 for row in rows if not row.get("reused"))
    lines = [f"{command}: {len(rows)} items: {len(rows) - len(failed) - reused} done now, {reused} reused from "
             f"earlier runs, {len(failed)} failed; {calls} model calls; {seconds:.1f} s; results in {results}"]
    lines += [f"  failed {row['item_id']}: {row['error']}" for row in failed[:20]]
    if len(failed) > 20:
        lines.append(f"  ... and {len(failed) - 20} more (see the error column of {results})")
    return "\n".join(lines)


def write_example_pairs(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` pairs of held-out MNIST digits of different classes as 32x32 PNG files (the 28x28 digit padded
    with background, as the nodes and the demo give it to the model), named so that a folder listing takes
    them two at a time (pair_000_a.png, pair_000_b.png, ...)."""
    from digits.mnist import load_split, pick_pairs

    images, labels = load_split("held_out")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, pair in enumerate(pick_pairs(labels, count, seed)):
        for side, index in zip("ab", pair, strict=True):
            pixels = ((images[index, 0].numpy() + 1.0) * 127.5).round().astype(np.uint8)
            path = folder / f"pair_{n:03d}_{side}.png"
            Image.fromarray(pixels, "L").save(path)
            written.append(path)
    return written


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    helps = {"alpha": "density weight of the metric", "noise_level": "fraction of the noise schedule",
             "frames": "interpolate: points per path, keyframes included",
             "clip_frames": "analyze: frames taken evenly from each clip, 0 for all",
             "solver": "BVP solver (default or paper)", "tolerance": "solver's residual tolerance",
             "max_evals": "cap on the solver's score evaluations per item",
             "invert_steps": "DDIM steps from images to the noise level",
             "decode_steps": "DDIM steps back to images", "seed": "torch seed before every item",
             "prompt": "diffusers models: text condition (needs text_encoder/ and tokenizer/)"}
    kinds = {"float": float, "float | None": float, "int": int, "str": str, "int | None": int}
    for name, field in FIELDS.items():
        if name == "sphere":
            parser.add_argument("--sphere", action=argparse.BooleanOptionalAction, default=None,
                                help="keep the geodesic on the sphere through its ends (default: on for interpolate, "
                                     "off for analyze)")
            continue
        default = getattr(defaults, name)
        shown = "the model's own" if default is None else default
        parser.add_argument("--" + name.replace("_", "-"), type=kinds[field.type], default=None,
                            help=f"{helps[name]} (default {shown})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="density-geodesics-batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command, help=f"{command} every item of a data set")
        sub.add_argument("input", type=Path, help="folder or manifest (analyze: also one video)")
        sub.add_argument("--out", type=Path, required=True, help="output folder (reruns skip finished items)")
        sub.add_argument("--model", default=DIGITS,
                         help="'digits' (the embedded model, default) or a diffusers latent-diffusion folder")
        sub.add_argument("--config", type=Path, help="TOML or JSON file of settings; flags override it")
        sub.add_argument("--address", help="join this Ray cluster (default: start a local Ray)")
        sub.add_argument("--workers", type=int, help="Ray workers, each holding the model once (default: as many "
                                                     "as the CPUs or GPUs hold; 0: no Ray, in this process)")
        sub.add_argument("--cpus-per-worker", type=float, default=1.0,
                         help="CPUs each worker reserves, also its torch threads (default 1)")
        sub.add_argument("--gpus-per-worker", type=float, default=0.0,
                         help="GPUs each worker reserves (default 0: runs on the CPU)")
        sub.add_argument("--num-cpus", type=int, help="CPUs a local Ray may use (default: all)")
        add_settings_flags(sub)
    example = commands.add_parser("example-pairs", help="write held-out digit pairs as PNG files")
    example.add_argument("folder", type=Path)
    example.add_argument("--count", type=int, default=8, help="pairs to write (default 8)")
    example.add_argument("--seed", type=int, default=0, help="picks the pairs (default 0)")
    args = parser.parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 0:
        parser.error(f"--workers: expected 0 (no Ray) or a positive number, got {args.workers}")
    for name in ("count", "num_cpus"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(args, name)}")
    for name in ("cpus_per_worker", "gpus_per_worker"):
        if getattr(args, name, 0.0) < 0:
            parser.error(f"--{name.replace('_', '-')}: expected a non-negative number, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "example-pairs":
        written = write_example_pairs(args.folder, args.count, args.seed)
        progress(f"wrote {len(written)} images ({args.count} pairs) to {args.folder}")
        return 0
    try:
        config = read_config(args.config) if args.config else {}
        settings = make_settings(config, {name: getattr(args, name) for name in FIELDS}, args.command)
        rows = run_job(args.command, args.input, args.out, model_spec=args.model, settings=settings,
                       address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                       gpus_per_worker=args.gpus_per_worker, num_cpus=args.num_cpus)
    except (SettingsError, InputsError, ModelError, BusyError, GeodesicInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = sum(1 for row in rows if row["status"] != "ok")
    if failed:
        print(f"error: {failed} of {len(rows)} items failed (rows with status 'failed' in the results)",
              file=sys.stderr)
        return 1
    return 0
