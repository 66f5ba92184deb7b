"""A judge of realism independent of the diffusion model: a small CNN digit classifier trained on the MNIST
train split only (``python -m digits.train_mnist --stage judge``; its held-out accuracy is in
digits/weights/mnist_model.json).

Per frame it gives the top-class confidence; a frame is "confident" at CONFIDENT_PROBABILITY or more. Its
64-number penultimate layer is the feature space of ``frechet_distance``, a Frechet distance between a set of
frames and the held-out digits. That distance is NON-STANDARD: it stands in for FID (whose Inception weights
cannot be had offline) and is comparable only with itself, on this judge.
"""

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from geodesic_core import LPIPS, load_lpips
from geodesic_core.perceptual import interpolate_points, perceptual_metrics, retime
from geodesic_pipeline.compare import PathReport, Verdict
from geodesic_pipeline.model import DiffusersModel

from .latent_files import WEIGHTS_DIR
from .mnist import load_split, to_native

JUDGE_FILE = WEIGHTS_DIR / "mnist_judge.safetensors"
FEATURES = 64
CONFIDENT_PROBABILITY = 0.9


class DigitJudge(nn.Module):
    """[B, 1, 28, 28] digits in [-1, 1] -> 10 logits; ``features`` gives the 64 numbers the logits read."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def features(self, digits: torch.Tensor) -> torch.Tensor:
        return self.body(digits)

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(digits))


@dataclass
class JudgeVerdict(Verdict):
    """The pipeline's Verdict with the judge's features of every frame (for the Frechet distance)."""

    features: np.ndarray = None  # [N, 64] penultimate-layer features

    def interior(self) -> "JudgeVerdict":
        """The verdict on the frames between the two ends."""
        return dataclasses.replace(self, labels=self.labels[1:-1], confidence=self.confidence[1:-1],
                                   features=self.features[1:-1])


def load_judge(weights_file=JUDGE_FILE) -> DigitJudge:
    judge = DigitJudge()
    judge.load_state_dict(load_file(str(weights_file)))
    return judge.eval().requires_grad_(False)


@torch.no_grad()
def judge_images(judge: DigitJudge, images: torch.Tensor, batch_size: int = 1000) -> JudgeVerdict:
    """Read [N, 1, 32, 32] model images (or [N, 1, 28, 28] digits) in [-1, 1]."""
    digits = to_native(images) if images.shape[-1] != 28 else images
    features = torch.cat([judge.features(batch.float()) for batch in digits.split(batch_size)])
    probabilities = judge.head(features).softmax(1)
    confidence, labels = probabilities.max(1)
    return JudgeVerdict(labels.numpy(), confidence.numpy(), CONFIDENT_PROBABILITY, features.double().numpy())


def frechet_distance(features_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^1/2), the FID formula on judge features (NON-STANDARD)."""
    mean_a, cov_a = features_a.mean(0), np.cov(features_a, rowvar=False)
    # tr (C_a C_b)^1/2 is the sum of the square roots of C_a C_b's eigenvalues, which are real and >= 0 for
    # two covariances; a path's 15 frames give a singular C_a, where a matrix square root would be unstable.
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0.0)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sqrt(eigenvalues).sum())


@lru_cache(maxsize=1)
def held_out_statistics(weights_file=JUDGE_FILE) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the judge's features over all 10,000 held-out digits (about 1 s)."""
    images, _ = load_split("held_out")
    features = judge_images(load_judge(weights_file), images).features
    return features.mean(0), np.cov(features, rowvar=False)


# Re-timing variants compared on every path: (name, method, frames measured as a multiple of the path's N):
# the paper code's rescheduler as it ships (measures on the N frames it re-times), the same rule given our
# measurement budget (2N - 1 frames), and ours (the N frames plus N - 1 bisections of the largest steps).
RETIMINGS = (("official", "official", 1), ("official_2n", "official", 2), ("adaptive", "adaptive", 2))


def decode_and_judge(model: DiffusersModel, reports: dict[str, PathReport], judge: DigitJudge,
                     lpips: LPIPS | None = None) -> None:
    """Decode every path's points in one batch, let the independent classifier read the frames and measure
    the LPIPS between adjacent frames."""
    latents = torch.cat([report.latents for report in reports.values()])
    frames = model.to_images(latents).split([len(report.latents) for report in reports.values()])
    for report, path_frames in zip(reports.values(), frames, strict=True):
        report.frames = path_frames
        report.verdict = judge_images(judge, path_frames)
        report.perceptual = perceptual_metrics(path_frames, lpips or load_lpips())


def retimed_variants(model: DiffusersModel, report: PathReport, judge: DigitJudge, lpips: LPIPS) -> dict:
    """PPL, PDV and the judge's confidence of the plain decoded frames and of every re-timing in RETIMINGS,
    with the extra frames each re-timing decoded. Latents between path points are interpolated linearly."""
    n = len(report.latents)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)

    def render(positions: Tensor) -> Tensor:
        return model.to_images(interpolate_points(report.latents, t, positions))

    plain = report.perceptual
    numbers = {"plain": {**plain.numbers(), "steps": plain.steps.tolist(), "extra_decodes": 0}}
    for name, method, multiple in RETIMINGS:
        result = retime(render, n, method=method, measure=multiple * n - (multiple - 1), initial=(t, report.frames),
                        lpips=lpips)
        inner = judge_images(judge, result.frames[1:-1])
        numbers[name] = {**result.metrics.numbers(), "steps": result.metrics.steps.tolist(),
                         "mean_confidence": inner.mean_confidence, "fraction_confident": inner.fraction_confident,
                         **realism(inner),
                         "extra_decodes": result.renders, "t": result.t.tolist(), "frames": result.frames}
    return numbers


def realism(verdict: JudgeVerdict) -> dict:
    """The judge's minimum confidence over ``verdict``'s frames and the (NON-STANDARD) Frechet distance of
    their features to the held-out digits'."""
    mean, cov = held_out_statistics()
    return {"min_confidence": float(verdict.confidence.min()),
            "frechet_distance": frechet_distance(verdict.features, mean, cov)}
