"""An independent plausibility judge: a scikit-learn digit classifier, not the diffusion model.

It is trained on the same training split as the diffusion model (never on held-out digits) and reads
decoded frames on load_digits' own 0..16 scale. A frame is "confident" when the classifier gives one
class at least CONFIDENT_PROBABILITY.
"""

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from .data import load_split, model_images_to_digits

CONFIDENT_PROBABILITY = 0.9


@dataclass
class Verdict:
    labels: np.ndarray        # [N] most likely digit per frame
    confidence: np.ndarray    # [N] probability of that digit

    @property
    def mean_confidence(self) -> float:
        return float(self.confidence.mean())

    @property
    def fraction_confident(self) -> float:
        return float((self.confidence >= CONFIDENT_PROBABILITY).mean())


def train_judge() -> LogisticRegression:
    """Multinomial logistic regression on the training split (deterministic; about a second)."""
    images, labels = load_split("train")
    return LogisticRegression(max_iter=5000, C=0.1).fit(model_images_to_digits(images), labels)


def judge_frames(judge: LogisticRegression, images: torch.Tensor) -> Verdict:
    """Classify [N, 1, 8, 8] model images."""
    probabilities = judge.predict_proba(model_images_to_digits(images))
    return Verdict(labels=judge.classes_[probabilities.argmax(1)], confidence=probabilities.max(1))
