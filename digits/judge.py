"""An independent plausibility judge: a scikit-learn digit classifier, not the diffusion model.

It is trained on the same training split as the diffusion model (never on held-out digits) and reads
decoded frames on load_digits' own 0..16 scale. A frame is "confident" when the classifier gives one
class at least CONFIDENT_PROBABILITY.
"""

import torch
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from geodesic_core import LPIPS, load_lpips
from geodesic_core.perceptual import interpolate_points, perceptual_metrics, retime
from geodesic_pipeline.compare import PathReport, Verdict
from geodesic_pipeline.model import DiffusersModel

from .data import load_split, model_images_to_digits

CONFIDENT_PROBABILITY = 0.9
# Re-timing variants compared on every path: (name, method, frames measured as a multiple of the path's N):
# the paper code's rescheduler as it ships (measures on the N frames it re-times), the same rule given our
# measurement budget (2N - 1 frames), and ours (the N frames plus N - 1 bisections of the largest steps).
RETIMINGS = (("official", "official", 1), ("official_2n", "official", 2), ("adaptive", "adaptive", 2))


def train_judge() -> LogisticRegression:
    """Multinomial logistic regression on the training split (deterministic; about a second)."""
    images, labels = load_split("train")
    return LogisticRegression(max_iter=5000, C=0.1).fit(model_images_to_digits(images), labels)


def judge_frames(judge: LogisticRegression, images: torch.Tensor) -> Verdict:
    """Classify [N, 1, 8, 8] model images."""
    probabilities = judge.predict_proba(model_images_to_digits(images))
    return Verdict(labels=judge.classes_[probabilities.argmax(1)], confidence=probabilities.max(1),
                   confident_probability=CONFIDENT_PROBABILITY)


def decode_and_judge(model: DiffusersModel, reports: dict[str, PathReport], judge, lpips: LPIPS | None = None) -> None:
    """Decode every path's points in one batch, let the independent classifier read the frames and measure
    the LPIPS between adjacent frames."""
    latents = torch.cat([report.latents for report in reports.values()])
    frames = model.to_images(latents).split([len(report.latents) for report in reports.values()])
    for report, path_frames in zip(reports.values(), frames, strict=True):
        report.frames = path_frames
        report.verdict = judge_frames(judge, path_frames)
        report.perceptual = perceptual_metrics(path_frames, lpips or load_lpips())


def retimed_variants(model: DiffusersModel, report: PathReport, judge, lpips: LPIPS) -> dict:
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
        inner = judge_frames(judge, result.frames[1:-1])
        numbers[name] = {**result.metrics.numbers(), "steps": result.metrics.steps.tolist(),
                         "mean_confidence": inner.mean_confidence, "fraction_confident": inner.fraction_confident,
                         "extra_decodes": result.renders, "t": result.t.tolist(), "frames": result.frames}
    return numbers
