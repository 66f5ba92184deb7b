"""Does one ``strength`` bend paths about equally on every model? A table over models and settings.

    bash dev.sh py -m benchmarks.strength [--models embedded,sd15-tiny,sd15,sdxl] [--pairs 2] [--threads 1]

For each model and keyframe pair, Encode Keyframes and Geodesic Interpolation run through the nodes' own
execute() with each setting (a relative ``strength``, or an absolute ``alpha``), and the solved path is compared
with the great circle between the same keyframes, both read out by the Density Readout code in the solve's alpha:

- pull: how far the density bends the geodesic off the great circle per unit alpha, to first order (what a
  strength divides by: alpha = strength / pull), and "first order" = alpha x pull, the bend that predicts;
- R: the log-density range along the great circle (nats): the scale of log p on that model;
- bend: the largest distance of a frame from the keyframes' plane, over the chord between them;
- lift: how much more probable the path's interior frames are than the great circle's, on average, in units of R;
- gain: 1 - length of the path / length of the great circle, in the solve's metric (0: no shorter);
- evals, residual, stop: the solve's model evaluations (the strength's range readout included), its residual
  (scale-free: 0 on a geodesic, 1 at most) and why the solver stopped.

Models: the embedded MNIST latent model (held-out test digits, its template's noise level 0.8), the tests'
tiny SD1.5-layout checkpoint, and full-size SD1.5- and SDXL-layout checkpoints with random weights (written by
benchmarks/make_checkpoints.py to --checkpoints on first use; SDXL needs about 12 GiB of memory). Their
keyframes are two smooth synthetic images at --size pixels. Random weights make a density with no meaning for
images, but with the real architecture's scale: that scale is what a strength has to absorb.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from devtools import comfy_harness as harness
from devtools.markdown_tables import markdown_tables

from .pipeline_stages import checkpoint_for, keyframe_images, node_inputs

# Each "strength S" or "alpha A": the node input it sets.
SETTINGS = ("strength 0.1", "strength 0.3", "strength 1", "alpha 0.002", "alpha 0.54")
STOPS = {"converged": "converged", "best path this model allows": "floor", "stopped improving": "stalled",
         "max_evals": "budget", "stopped early": "stopped", "schedule": "schedule"}
ARCHES = {"sd15-tiny": "tiny", "sd15": "sd15", "sdxl": "sdxl"}


@dataclass(frozen=True)
class Row:
    model: str
    pair: int
    setting: str
    alpha: float
    pull: float
    log_density_range: float
    bend: float
    lift: float
    gain: float
    evals: int
    residual: float
    stop: str
    seconds: float

    def line(self) -> str:
        return (f"| {self.model} | {self.pair} | {self.setting} | {self.alpha:.3g} | {self.pull:.3g} | "
                f"{self.alpha * self.pull:.3f} | {self.bend:.3f} | {self.log_density_range:.3g} | {self.lift:+.2f} | "
                f"{self.gain:+.3f} | {self.evals} | {self.residual:.2g} | {self.stop} | {self.seconds:.0f} |")


HEADER = ("| model | pair | setting | alpha | pull | first order | bend | R (nats) | lift (R) | gain | evals | "
          "residual | stop | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def great_circle_like(path, frames: int):
    geometry = harness.import_pack_module("geodesic_core.geometry")
    ts = torch.linspace(0.0, 1.0, frames)
    points = geometry.slerp(path.points[0], path.points[-1], ts.double()).float()
    return path.with_points(points, path.t[0] + ts * (path.t[-1] - path.t[0]))


def measure(model_name: str, pair: int, setting: str, keyframes, model, pull: float, frames: int,
            batch_size: int, max_evals: int) -> Row:
    pack = harness.import_pack_module("nodes")
    on_model = harness.import_pack_module("nodes.geodesics_on_model")
    bridge = harness.import_pack_module("nodes.bridge")
    keyframe_settings = harness.import_pack_module("geodesic_pipeline.keyframes")
    strength = harness.import_pack_module("geodesic_pipeline.strength")
    name, value = setting.split()
    overrides = {name: float(value)}
    start = time.perf_counter()
    inputs = node_inputs(pack.SolveBVP, model=model, keyframes=keyframes, frames=frames, batch_size=batch_size,
                         max_evals=max_evals, **overrides)
    path, report, alpha = pack.SolveBVP.execute(**inputs).result[:3]
    seconds = time.perf_counter() - start
    read = keyframe_settings.GeodesicSettings(alpha, inputs["sphere"], accuracy=inputs["accuracy"],
                                              max_evals=inputs["max_evals"])
    calls = bridge.ModelCallSettings(inputs["guidance"], None, batch_size)
    geodesic = on_model.read_along(model, path, settings=read, calls=calls).readout
    circle = on_model.read_along(model, great_circle_like(path, frames), settings=read, calls=calls).readout
    range_ = float(circle.log_density.max() - circle.log_density.min())
    lift = float(geodesic.log_density[1:-1].mean() - circle.log_density[1:-1].mean()) / range_
    solves = [(STOPS[next(p for p in STOPS if p in line)], int(n)) for line, n in
              re.findall(r"(residual [^\n]*) (\d+) score evaluations in", report)]
    calibration = re.search(r"\((\d+) score evaluations\)", report)
    evals = sum(n for _, n in solves) + (int(calibration.group(1)) if calibration else 0)
    stop = "/".join(sorted({words for words, _ in solves}))
    residual = max(float(r) for r in re.findall(r"residual ([0-9.eE+-]+)", report))
    print(report, flush=True)
    bend = strength.bend(path.points, sphere=inputs["sphere"])
    return Row(model_name, pair, setting, alpha, pull, range_, bend, lift, 1.0 - geodesic.length / circle.length,
               evals, residual, stop, seconds)


def read_pull(keyframes, model) -> tuple[float, float]:
    """The pull between the keyframes as a strength reads it (Density Readout on the two keyframes with strength
    1, whose alpha is then 1 / pull), and the seconds it took."""
    pack = harness.import_pack_module("nodes")
    start = time.perf_counter()
    table = pack.DensityReadout.execute(**node_inputs(pack.DensityReadout, model=model, path=keyframes,
                                                      compare_geodesic=False, strength=1.0)).args[1]
    alpha = {row["number"]: row for row in markdown_tables(table)[1]}["alpha"]
    return float(re.match(r"= strength 1 / pull (\S+)", alpha["meaning"])[1]), time.perf_counter() - start


def pull_line(model_name: str, pair: int, keyframes, pull: float, seconds: float, size: int) -> str:
    latent = "x".join(str(n) for n in keyframes.points.shape[1:])
    return (f"| {model_name} | {size if model_name != 'embedded' else 32} | {latent} | {pair} | {pull:.4g} | "
            f"{0.1 / pull:.4g} | {seconds:.0f} |")


PULL_HEADER = ("| model | pixels | latent | pair | pull | alpha at strength 0.1 | s |\n"
               "|---|---|---|---|---|---|---|")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: object
    vae: object
    positive: list
    noise_level: float


def load_model(model_name: str, checkpoints: Path) -> LoadedModel:
    """One model, loaded once for all its pairs (an SDXL layout takes about 12 GiB)."""
    pack = harness.import_pack_module("nodes")
    if model_name == "embedded":
        model, vae, positive = pack.LoadEmbeddedModel.execute().result
        return LoadedModel(model_name, model, vae, positive, 0.8)
    model, clip, vae = harness.load_checkpoint(checkpoint_for(ARCHES[model_name], checkpoints, harness.COMFY_DIR))
    return LoadedModel(model_name, model, vae, harness.encode_prompt(clip, "a photograph"), 0.6)


def keyframes_of(loaded: LoadedModel, pair: int, size: int):
    """Keyframe pair ``pair`` encoded by the node at the model's noise level."""
    pack = harness.import_pack_module("nodes")
    if loaded.name == "embedded":
        images = [pack.MnistTestDigit.execute(index=i).result[0] for i in (2 * pair, 2 * pair + 1)]
    else:
        first, second = keyframe_images(size)
        images = [first[None], second[None]] if pair % 2 == 0 else [second.flip(1)[None], first.flip(0)[None]]
    encoded = [pack.EncodeKeyframes.execute(**node_inputs(
        pack.EncodeKeyframes, model=loaded.model, positive=loaded.positive, image=image, vae=loaded.vae,
        noise_level=loaded.noise_level)).result[0] for image in images]
    return pack.JoinKeyframes.execute(**node_inputs(pack.JoinKeyframes, first=encoded[0],
                                                    second=encoded[1])).result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="embedded,sd15-tiny,sd15,sdxl")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=128, help="SD keyframe images' side in pixels")
    parser.add_argument("--checkpoints", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--max-evals", type=int, default=2000, help="the solve's budget (the node's default: 2000)")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--pull-only", action="store_true",
                        help="only the pull between each pair of keyframes (no solves)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    harness.import_comfy()
    rows = []
    for model_name in args.models.split(","):
        loaded = load_model(model_name, args.checkpoints)
        model = loaded.model
        for pair in range(args.pairs):
            with torch.inference_mode():
                keyframes = keyframes_of(loaded, pair, args.size)
                pull, seconds = read_pull(keyframes, model)
                if args.pull_only:
                    rows.append(pull_line(model_name, pair, keyframes, pull, seconds, args.size))
                    print(rows[-1], flush=True)
                    continue
                for setting in args.settings.split(","):
                    try:
                        rows.append(measure(model_name, pair, setting, keyframes, model, pull, args.frames,
                                            args.batch_size, args.max_evals))
                        print(rows[-1].line(), flush=True)
                    except Exception as error:  # noqa: BLE001 - a refused setting is a row of the table too
                        print(f"| {model_name} | {pair} | {setting} | refused: {error} |", flush=True)
        del loaded, model  # before the next model loads
    if args.pull_only:
        print(PULL_HEADER, *rows, sep="\n")
        return
    print(HEADER)
    for row in rows:
        print(row.line())
    finite = [r for r in rows if math.isfinite(r.bend)]
    for setting in args.settings.split(","):
        bends = [r.bend for r in finite if r.setting == setting]
        if bends:
            print(f"{setting}: bend from {min(bends):.3f} to {max(bends):.3f} "
                  f"(ratio {max(bends) / max(min(bends), 1e-12):.1f})")


if __name__ == "__main__":
    main()
