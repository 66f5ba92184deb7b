"""What a path readout costs on the embedded MNIST latent model, and how well its two straight paths agree.

    bash dev.sh py -m benchmarks.readout_on_digits [--pairs 4] [--threads 1]

For held-out digits 2k and 2k+1 (pair k) at the model's noise level, on their common sphere: the readout of
slerp (sphere constraint on) and of the straight line (off), 17 frames, accuracy 1e-3, at the model's alpha:
model evaluations, the largest bound on a frame's log p, and the closure gap between the two paths' end
values (both end at the same latent, so an exact density would give one value; the readout's bounds say
how much of the gap the quadrature can explain, the rest is the learned score not being a gradient).
"""

from __future__ import annotations

import argparse

import torch

from digits.latent_model import load_mnist_model
from digits.mnist import load_split
from digits.settings import MNIST_DEFAULTS
from geodesic_pipeline.compare import to_common_radius
from geodesic_pipeline.core import core, geometry

FRAMES, ACCURACY = 17, 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_mnist_model(MNIST_DEFAULTS.noise_level)
    images, _ = load_split("held_out")
    ts = torch.linspace(0.0, 1.0, FRAMES, dtype=torch.float64)
    print("| pair | slerp evals | slerp bound | line evals | line bound | closure gap (nats) | bounds |\n"
          "|---|---|---|---|---|---|---|")
    for pair in range(args.pairs):
        with torch.inference_mode():
            ends = model.invert(model.encode(images[2 * pair: 2 * pair + 2]))
            a, b = to_common_radius(ends[0], ends[1])
            slerp = core.read_path(model.field, geometry.slerp(a, b, ts), MNIST_DEFAULTS.alpha, sphere=True,
                                   tol=ACCURACY)
            line = core.read_path(model.field, geometry.lerp(a, b, ts), MNIST_DEFAULTS.alpha, sphere=False,
                                  tol=ACCURACY)
        gap = abs(float(slerp.log_density[-1] - line.log_density[-1]))
        explained = float(slerp.log_density_error[-1] + line.log_density_error[-1])
        print(f"| {pair} | {slerp.score_evals} | {float(slerp.log_density_error.max()):.1e} | {line.score_evals} | "
              f"{float(line.log_density_error.max()):.1e} | {gap:.3f} | {explained:.1e} |", flush=True)


if __name__ == "__main__":
    main()
