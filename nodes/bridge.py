"""The sampler bridge: work run with a ``denoise(x, sigma, t) -> x0`` callable over the MODEL the workflow loaded.

All work runs inside a custom ``comfy.samplers.Sampler`` driven by ``comfy.samplers.CFGGuider``, the
way ComfyUI's own sampling and training nodes call a model: ComfyUI loads the weights (no second
copy), applies LoRAs, object patches, hooks and model-option wrappers, converts the conditioning and
batches cond/uncond. Inside, the guider turns a batch of noisy latents into CFG'd x0 estimates; our
denoiser swaps in per-point blended conditioning before each call. Cancel is checked before every
model call, and every call advances the node's progress bar with a latent preview. What the pack asks
of the model itself (identity, noise convention, sigmas, latent space) is in nodes/model_facts.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import comfy.model_management
import comfy.samplers
import comfy.utils
import latent_preview
import server
import torch
from comfy_execution.utils import get_executing_context
from torch import Tensor

from ..geodesic_pipeline.core import Denoiser, GeodesicInputError, estimated_fraction
from .comfy_internals import free_memory, sampling_conds, set_sampling_conds
from .conditioning import KeyframeConds
from .path import ConditioningSchedule, check_conditioning

if TYPE_CHECKING:
    from comfy.model_patcher import ModelPatcher

Work = Callable[[Denoiser, torch.device], "T"]
T = TypeVar("T")


@dataclass(frozen=True)
class ModelCallSettings:
    """How the model is called for a density: guidance against a negative prompt, and latents per call."""

    guidance: float = 0.0
    negative: list | None = None
    batch_size: int = 0


def _unique_conditionings(schedule: ConditioningSchedule) -> tuple[list[list], Tensor]:
    """Distinct conditioning objects (by identity: ComfyUI passes one object per upstream output) and
    the index of each knot's conditioning among them."""
    unique: list[list] = []
    knot_index = []
    for conditioning in schedule.conditionings:
        match = next((i for i, u in enumerate(unique) if u is conditioning), None)
        if match is None:
            unique.append(conditioning)
            match = len(unique) - 1
        knot_index.append(match)
    return unique, torch.tensor(knot_index, dtype=torch.long)


class NodeBar:
    """The node's progress bar over its work, counted in units (latents evaluated, frames through LPIPS), with a
    latent preview of the latest x0 estimate where ``previews_of`` names the model (the frontend draws it on the
    node, which grows to show it).

    ``total`` is the most units the work can take and ``expected`` what it usually does (None: exactly
    ``total``); the bar shows ``estimated_fraction`` of its ``total``, never past it and never backwards, and
    ``finish`` fills it when the work stops before its budget is spent (a solve that converges). A node whose
    work is several runs (decoding, then measuring) shares one bar among them, so it fills once."""

    def __init__(self, total: int, expected: int | None = None, previews_of: ModelPatcher | None = None):
        self.total = max(total, 1)
        self.expected = expected
        self.bar = comfy.utils.ProgressBar(self.total)
        self.with_preview = None if previews_of is None else latent_preview.prepare_callback(previews_of, self.total)
        self.done = 0
        self.shown = 0
        self.last_preview: Tensor | None = None

    def advance(self, units: int, denoised: Tensor | None = None) -> None:
        """``units`` more done; ``denoised``, x0 estimates of the latest model call, gives the preview."""
        self.done += units
        if denoised is not None:
            self.last_preview = denoised[denoised.shape[0] // 2:][:1]
        fraction = estimated_fraction(self.done, self.expected, self.total)
        self.shown = max(self.shown, min(math.floor(fraction * self.total), self.total))
        self._show(self.shown)

    def finish(self) -> None:
        if self.shown < self.total:
            self.shown = self.total
            self._show(self.total)

    def _show(self, value: int) -> None:
        # Work between model calls (LPIPS) shows the latest preview again: there is no newer picture to show.
        if self.with_preview is not None and self.last_preview is not None:
            self.with_preview(value - 1, self.last_preview, None, self.total)
        else:
            self.bar.update_absolute(value, self.total)


def show_progress_text(text: str) -> None:
    """Text under the running node's title in the ComfyUI frontend (nothing outside a server run)."""
    context = get_executing_context()
    prompt_server = getattr(server.PromptServer, "instance", None)
    if context is not None and prompt_server is not None:
        prompt_server.send_progress_text(text, context.node_id)


def is_cancel(error: BaseException) -> bool:
    """ComfyUI's interrupt exception, raised on Cancel by its checks and the pack's. Known by its name, the same
    in every version, where its module is not (comfy.model_management; comfy.interruption in 0.12.1)."""
    return type(error).__name__ == "InterruptProcessingException"


def stop_if_cancelled(status: str) -> None:
    """On Cancel: "cancelled (<status>)" under the node's title, then ComfyUI's interrupt exception (0.12.1's
    processing_interrupted() answers None, so the flag cannot be read first)."""
    try:
        comfy.model_management.throw_exception_if_processing_interrupted()
    except Exception as error:
        if is_cancel(error):
            show_progress_text(f"cancelled ({status})")
        raise


def check_guidance(guidance: float, negative_connected: bool) -> None:
    if not math.isfinite(guidance) or guidance < 0:
        raise GeodesicInputError(f"guidance: expected a finite number >= 0, got {guidance}")
    if guidance > 0 and not negative_connected:
        raise GeodesicInputError("negative: guidance > 0 needs a negative conditioning; connect one or set "
                                 "guidance to 0")


def fitting_batch(model: ModelPatcher, latent_shape: tuple[int, ...], wanted: int, cap: int,
                  images_per_latent: int, device: torch.device) -> int:
    """Latents per model call: at most ``wanted`` and ``cap`` (0: no cap), and few enough that ComfyUI's
    estimate of the model's working memory, with the 1.5x margin its own cond batching uses, fits in the
    device's free memory now (asked as the running ComfyUI asks it). Never below 1: a single latent is what
    ComfyUI itself would attempt."""
    batch = min(wanted, cap) if cap > 0 else wanted
    free = free_memory(model, device)
    while batch > 1 and model.memory_required([batch * images_per_latent, *latent_shape]) * 1.5 > free:
        batch -= 1
    return max(batch, 1)


class _WorkSampler(comfy.samplers.Sampler):
    """Runs ``work(denoise, device)`` where ComfyUI would run a sampling loop; keeps its result."""

    def __init__(self, work: Work, schedule: ConditioningSchedule, knot_index: Tensor, keys: list[str],
                 bar: NodeBar, batch_limit: Callable[[int, torch.device], int]):
        self.work = work
        self.schedule = schedule
        self.knot_index = knot_index
        self.keys = keys
        self.bar = bar
        self.batch_limit = batch_limit
        self.result = None
        self.calls = 0
        self.evaluated = 0

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        original_conds = sampling_conds(model_wrap)
        keyframes = KeyframeConds([original_conds[key] for key in self.keys])
        negative = original_conds.get("negative")

        def denoise_batch(x: Tensor, sigma: float, t: Tensor) -> Tensor:
            comfy.model_management.throw_exception_if_processing_interrupted()
            before, after, weight = self.schedule.locate(t)
            positive = keyframes.blend(self.knot_index[before], self.knot_index[after], weight)
            set_sampling_conds(model_wrap, {"positive": positive, "negative": negative})
            sigma_batch = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=torch.float32)
            denoised = model_wrap(x.float(), sigma_batch, **extra_args).to(x.dtype)
            self.calls += 1
            self.evaluated += x.shape[0]
            self.bar.advance(x.shape[0], denoised)
            return denoised

        def denoise(x: Tensor, sigma: float, t: Tensor | None) -> Tensor:
            t = torch.zeros(x.shape[0]) if t is None else t
            size = self.batch_limit(x.shape[0], x.device)
            if size >= len(x):
                return denoise_batch(x, sigma, t)
            return torch.cat([denoise_batch(x[i:i + size], sigma, t[i:i + size]) for i in range(0, len(x), size)])

        try:
            self.result = self.work(denoise, noise.device)
        finally:
            set_sampling_conds(model_wrap, original_conds)
        # The real output travels in self.result; the guider only needs a tensor of the latent's shape.
        return torch.zeros_like(noise)


def run_with_denoiser(model: ModelPatcher, schedule: ConditioningSchedule, work: Work, *, stage: str,
                      latent_shape: tuple[int, ...], batch_size: int, largest_batch: int, total_evals: int,
                      sigma: float, negative: list | None = None, guidance: float = 0.0,
                      expected_evals: int | None = None, preview: bool = True, bar: NodeBar | None = None) -> T:
    """Call ``work(denoise, device)`` with the loaded model ready; return what it returns.

    ``denoise(x, sigma, t)`` gives the x0 estimate for model-space latents ``x`` [B, C, H, W] on
    ``device``, conditioned per sample on the schedule at ``t`` (None: the first keyframe's).
    ``guidance`` g > 0 uses ComfyUI's CFG with scale 1 + g against ``negative``: since the score is
    affine in x0, CFG on x0 equals score guidance s + g (s - s_neg) in one batched model call.
    ``denoise`` splits a batch into model calls of at most ``batch_size`` latents (0: as many as fit in
    memory, see ``fitting_batch``); ``largest_batch``, the most latents the work passes at once, sizes
    ComfyUI's memory estimate when it loads the model. ``total_evals`` is the most latents the work may
    evaluate and ``expected_evals`` how many it usually does (None: exactly ``total_evals``): the node's bar
    shows the estimate (``NodeBar``), with latent previews where ``preview``, and is full when the work ends.
    Where this work is one part of the node's, ``bar`` is the node's bar instead: its owner sized it for all
    the parts, and fills it when they are done. ``stage`` names the work in the
    log line with its time and model-call count. Path positions ``t`` stay on the CPU: conditioning is looked up
    there, so a GPU run needs no host synchronisation per call.
    """
    if batch_size < 0:
        raise GeodesicInputError(f"batch_size: expected 0 (automatic) or a positive number, got {batch_size}")
    check_guidance(guidance, negative is not None)
    if negative is not None:
        check_conditioning(negative, "negative")
    unique, knot_index = _unique_conditionings(schedule)
    keys = [f"keyframe_{i}" for i in range(len(unique))]
    conds = dict(zip(keys, unique, strict=True))
    if negative is not None:
        conds["negative"] = negative
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds(conds)
    guider.set_cfg(1.0 + guidance)
    images_per_latent = 2 if guidance > 0 else 1
    own_bar = bar is None
    if own_bar:
        bar = NodeBar(total_evals, expected_evals, model if preview else None)

    def batch_limit(wanted: int, device: torch.device) -> int:
        return fitting_batch(model, latent_shape, wanted, batch_size, images_per_latent, device)

    sampler = _WorkSampler(work, schedule, knot_index, keys, bar, batch_limit)
    load_batch = min(largest_batch, batch_size) if batch_size > 0 else largest_batch
    placeholder = torch.zeros((max(load_batch, 1), *latent_shape))
    started = time.perf_counter()
    try:
        guider.sample(placeholder, placeholder, sampler, torch.tensor([sigma, 0.0]), disable_pbar=True, seed=0)
    except Exception as error:
        # Raised by the check before each model call, by ComfyUI's progress hook, or inside the model call
        # (0.12.1 checks at every op).
        if is_cancel(error):
            show_progress_text(f"cancelled ({stage}, after {sampler.evaluated} evaluations)")
        raise
    if own_bar:
        bar.finish()
    logging.info("DensityGeodesics %s: %.2f s, %d model calls, %d latents evaluated", stage,
                 time.perf_counter() - started, sampler.calls, sampler.evaluated)
    return sampler.result
