"""Round-trip error of inversion then decoding against ODE steps, DDIM (order 1) against Heun (order 2).

    bash dev.sh py -m benchmarks.ode_steps            # the embedded MNIST latent model, 16 held-out digits

Each digit's latent (the VAE's encoding) is inverted to the demo's noise level and generated back with the same
schedule; the table gives the relative RMS error of the round trip in latent space and the model evaluations per
image it cost (counted at the denoiser). Heun spends two evaluations per step (one on the step to sigma = 0), so
compare rows at equal evaluations, not equal steps.
"""

from __future__ import annotations

import argparse

import torch

from digits.latent_model import build_scheduler, load_mnist_model
from digits.mnist import load_split
from geodesic_core import generate, invert
from geodesic_core.diffusers_adapter import denoising_sigmas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--steps", default="3,5,10,20,40")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_mnist_model()
    scheduler = build_scheduler()
    images, _ = load_split("held_out")
    with torch.no_grad():
        clean = model.encode(images[: args.images])
    evals = []

    def counted(x, sigma, t=None):
        evals.append(len(x))
        return model.denoise(x, sigma, t)

    print(f"sigma {model.sigma:.4f}, {len(clean)} held-out images")
    print(f"{'order':>5} {'steps':>5} {'evals/image':>11} {'round-trip rel. error':>21}")
    for order in (1, 2):
        for steps in (int(s) for s in args.steps.split(",")):
            evals.clear()
            schedule = denoising_sigmas(scheduler, model.sigma, steps)
            with torch.no_grad():
                back = generate(counted, invert(counted, clean, schedule.flip(0), order=order), schedule, order=order)
            error = float((back - clean).norm() / clean.norm())
            print(f"{order:5d} {steps:5d} {sum(evals) / len(clean):11.0f} {error:21.2e}", flush=True)


if __name__ == "__main__":
    main()
