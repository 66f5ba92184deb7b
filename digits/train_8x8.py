"""Train the 8x8 digits diffusion model (reproducible from --seed; minutes on a 2-core CPU), with the MNIST
model's training recipe (train_mnist.py: loss, learning-rate schedule, EMA).

    python -m digits.train_8x8        # writes digits/weights/digits_unet.{safetensors,json}
"""

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from .data_8x8 import HELD_OUT_FRACTION, SPLIT_SEED, load_split
from .latent_model import SCHEDULER_CONFIG, build_scheduler
from .model_8x8 import METADATA_FILE, UNET_CONFIG, WEIGHTS_FILE, build_unet
from .train_mnist import denoising_loss, evaluation_loss, learning_rate, update_ema

EVAL_SEED = 12345
EVAL_REPEATS = 8  # 8 noise draws per image: the held-out loss estimate then varies by < 1% between seeds


def train(*, seed: int, steps: int, batch_size: int, peak_lr: float, ema_decay: float,
          log_every: int) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_images, _ = load_split("train")
    held_out_images, _ = load_split("held_out")
    unet, scheduler = build_unet(), build_scheduler()
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=peak_lr, weight_decay=1e-4)
    warmup_steps = max(1, steps // 20)
    started = time.time()
    cpu_started = time.process_time()
    running = None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak_lr, warmup_steps)
        batch_idx = torch.randint(0, len(train_images), (batch_size,), generator=generator)
        loss = denoising_loss(unet, scheduler, train_images[batch_idx], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        update_ema(ema, unet, ema_decay)
        loss_value = loss.item()
        running = loss_value if running is None else 0.98 * running + 0.02 * loss_value
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.time() - started
            print(f"[digits.train_8x8] step {step + 1}/{steps} loss(avg) {running:.4f} "
                  f"{elapsed:.0f}s elapsed, eta {elapsed / (step + 1) * (steps - step - 1):.0f}s",
                  file=sys.stderr, flush=True)
    train_wall_s = time.time() - started
    train_cpu_s = time.process_time() - cpu_started
    ema.eval()
    untrained = build_unet().eval()  # same shape, fresh init: the "no learning" reference loss
    losses = {
        name: evaluation_loss(model, scheduler, images, seed=EVAL_SEED, repeats=EVAL_REPEATS)
        for name, model, images in [
            ("final_train_loss", ema, train_images),
            ("final_held_out_loss", ema, held_out_images),
            ("untrained_held_out_loss", untrained, held_out_images),
        ]
    }
    metadata = {
        "command": "python -m digits.train_8x8 " + " ".join(sys.argv[1:]),
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "peak_lr": peak_lr,
        "ema_decay": ema_decay,
        "weights": "EMA of the trained parameters",
        "data": {"source": "sklearn.datasets.load_digits (8x8, scaled to [-1, 1])",
                 "split_seed": SPLIT_SEED, "held_out_fraction": HELD_OUT_FRACTION,
                 "n_train": len(train_images), "n_held_out": len(held_out_images)},
        "loss": "MSE of epsilon prediction, uniform timesteps; evaluated over "
                f"{EVAL_REPEATS} seeded draws per image (seed {EVAL_SEED})",
        **{name: round(value, 5) for name, value in losses.items()},
        "train_wall_s": round(train_wall_s, 1),
        "train_cpu_s": round(train_cpu_s, 1),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "unet_config": UNET_CONFIG,
        "scheduler_config": SCHEDULER_CONFIG,
        "n_parameters": sum(p.numel() for p in ema.parameters()),
        "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__},
    }
    return ema, metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE,
                        help="safetensors path; the metadata JSON is written next to it")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ema, metadata = train(seed=args.seed, steps=args.steps, batch_size=args.batch_size, peak_lr=args.lr,
                          ema_decay=args.ema_decay, log_every=args.log_every)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(args.out))
    metadata_file = args.out.with_suffix(".json") if args.out != WEIGHTS_FILE else METADATA_FILE
    metadata_file.write_text(json.dumps(metadata, indent=2) + "\n")
    print(json.dumps({k: metadata[k] for k in metadata if "loss" in k or k.startswith("train_")}, indent=2))


if __name__ == "__main__":
    main()
