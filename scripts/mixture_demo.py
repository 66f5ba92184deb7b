"""The geodesic vs the straight line on an analytic 2-D mixture: writes a PNG and prints the numbers.

    bash dev.sh py -m scripts.mixture_demo [--out out/mixture] [--alpha 1.0] [--points 33]

Eight Gaussians on a ring; the straight line between two of them crosses the empty centre, the density
geodesic goes round the ring. Runs in a second; needs only torch and matplotlib.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from geodesic_core import GaussianMixtureField, lerp, read_path, solve_bvp


def ring_mixture(n: int = 8, radius: float = 2.0, std: float = 0.5) -> GaussianMixtureField:
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return GaussianMixtureField(radius * torch.stack([angles.cos(), angles.sin()], 1), std)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/mixture"))
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--points", type=int, default=33)
    args = ap.parse_args()

    field = ring_mixture()
    a, b = torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([-2.0, 0.3], dtype=torch.float64)
    geo = solve_bvp(field, a, b, n_points=args.points, alpha=args.alpha)
    line_points = lerp(a, b, torch.linspace(0, 1, args.points, dtype=torch.float64))
    line = read_path(field, line_points, args.alpha)

    args.out.mkdir(parents=True, exist_ok=True)
    xs = torch.linspace(-3.2, 3.2, 300, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    log_p = field.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).reshape(300, 300)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 5))
    ax.imshow(log_p.numpy(), extent=(-3.2, 3.2, -3.2, 3.2), origin="lower", cmap="viridis")
    ax.plot(line_points[:, 0], line_points[:, 1], "o-", color="white", ms=3, label="straight line")
    ax.plot(geo.points[:, 0], geo.points[:, 1], "o-", color="orange", ms=3, label="density geodesic")
    ax.set_title(f"log density, alpha = {args.alpha}")
    ax.legend(loc="lower left")
    ax2.plot(geo.t, geo.readout.log_density, color="orange", label=f"geodesic (length {geo.readout.length:.2f})")
    ax2.plot(geo.t, line.log_density, color="gray", label=f"straight line (length {line.length:.2f})")
    ax2.set_xlabel("path position t")
    ax2.set_ylabel("log p(x(t)) - log p(x(0))")
    ax2.legend()
    fig.tight_layout()
    png = args.out / "mixture_geodesic.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)

    print(f"{'path':15} {'length':>9} {'min rel. log p':>15} {'score evals':>12}")
    print(f"{'straight line':15} {line.length:9.3f} {float(line.log_density.min()):15.2f} {line.score_evals:12d}")
    geo_readout = geo.readout
    print(f"{'geodesic':15} {geo_readout.length:9.3f} {float(geo_readout.log_density.min()):15.2f} "
          f"{geo.score_evals:12d}")
    print(f"geodesic converged: {geo.converged} (residual {geo.residual:.1e}); wrote {png}")


if __name__ == "__main__":
    main()
