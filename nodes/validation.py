"""The queue-time checks of every node, in one place: what POST /prompt refuses before anything runs.

Every node's ``validate_inputs(**inputs)`` calls ``check_queued``: each widget against the node's own
schema (range, NaN and inf, type, combo options), then the node's rules here that relate inputs
(guidance needs a negative, the budget must cover the frames, even-LPIPS decoding needs a VAE, two or more
frames and the LPIPS weights...). The run-time checks in the execute bodies and in geodesic_core stay as
the second line (connected widgets, the path's contents, API callers that skip validation).

Why it raises instead of returning the message: ComfyUI (0.3.75 and current, execution.validate_inputs)
attaches a returned message to EVERY argument of validate_inputs, so one bad max_evals came back as nine
errors attributed to frames, spacing, alpha... An exception is reported once ("Exception when validating
node" / "... inner node"), with our message as its details, which starts with the input it is about and
says what was expected. ``**inputs`` also makes ComfyUI leave every widget to us: it would otherwise let
NaN through its range check and not check V3 combo values at all.

At queue time ComfyUI passes an unconnected optional input not at all and a connected input (widget or
socket) as None: its value exists only when the node runs, so its checks are left to execution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from comfy_api.latest import io

from ..geodesic_core import GeodesicInputError, check_budget, one_pass_evals
from ..geodesic_core.lpips import weights_file
from .bridge import check_guidance
from .encode_decode import check_inversion_steps
from .perceptual import DECODE_SPACINGS

Rule = Callable[[dict], None]  # raises GeodesicInputError naming the input


def _widget_problem(spec: io.Input, value) -> str | None:
    if isinstance(spec, io.Combo.Input):
        if value not in spec.options:
            return f"expected one of {', '.join(map(repr, spec.options))}, got {value!r}"
    elif isinstance(spec, io.Float.Input | io.Int.Input):
        expected = f"a number from {spec.min:g} to {spec.max:g}"
        # ComfyUI converts numeric widgets before validation and leaves a value it cannot convert as sent.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected {expected}, got {value!r}"
        if not (math.isfinite(value) and spec.min <= value <= spec.max):
            return f"expected {expected}, got {value}"
    return None


def check_queued(node: type[io.ComfyNode], inputs: dict, *rules: Rule) -> bool:
    """What every node's ``validate_inputs`` returns: True, or it raises the first problem (see the module)."""
    for spec in node.define_schema().inputs:
        value = inputs.get(spec.id)
        problem = None if value is None else _widget_problem(spec, value)
        if problem:
            raise GeodesicInputError(f"{spec.id}: {problem}")
    for rule in rules:
        rule(inputs)
    return True


def connected(inputs: dict, name: str) -> bool:
    return name in inputs  # connected: None, unconnected: absent (see the module)


def guidance_needs_negative(inputs: dict) -> None:
    if inputs.get("guidance") is not None:
        check_guidance(inputs["guidance"], connected(inputs, "negative"))


def budget_covers_the_frames(inputs: dict) -> None:
    frames, max_evals = inputs.get("frames"), inputs.get("max_evals")
    if frames is not None and max_evals is not None:
        check_budget(max_evals, one_pass_evals(frames), f"the {frames} frames")


def global_search_needs_default_method(inputs: dict) -> None:
    if inputs.get("search") == "global" and inputs.get("method") == "paper":
        raise GeodesicInputError("search: the global search needs method 'default' (the paper's schedule only "
                                 "searches locally); set search to 'local' or method to 'default'")


def lpips_weights_installed(net_input: str) -> Rule:
    """The LPIPS weights of the chosen net (``net_input``'s value, "alex" when not set) are installed."""
    def rule(inputs: dict) -> None:
        net = inputs.get(net_input) or "alex"
        try:
            weights_file(net)
        except GeodesicInputError as error:
            raise GeodesicInputError(f"{net_input}: {error}") from None
    return rule


def even_decoding_rules(inputs: dict) -> None:
    """Decode Path with an even-LPIPS spacing: a VAE, 0 or at least 2 frames, and the LPIPS weights."""
    spacing = inputs.get("spacing")
    if spacing is None or DECODE_SPACINGS.get(spacing) is None:
        return
    if not connected(inputs, "vae"):
        raise GeodesicInputError(f"vae: spacing {spacing!r} measures decoded images; connect a VAE or use "
                                 f"spacing 'path'")
    if inputs.get("frames") == 1:
        raise GeodesicInputError(f"frames: spacing {spacing!r} needs 0 (as many as the path has) or at least 2 "
                                 f"frames, got 1")
    lpips_weights_installed("lpips_net")(inputs)


def lpips_when_images_given(inputs: dict) -> None:
    """Density Readout adds LPIPS columns (AlexNet) when its images input is connected."""
    if connected(inputs, "images"):
        try:
            weights_file("alex")
        except GeodesicInputError as error:
            raise GeodesicInputError(f"images: the LPIPS columns need the weights; {error}") from None


def one_source_of_keyframes(inputs: dict) -> None:
    if connected(inputs, "image") == connected(inputs, "latent"):
        raise GeodesicInputError("image / latent: connect exactly one of them (images to encode with the VAE, "
                                 "or clean latents such as a KSampler output)")
    if connected(inputs, "image") and not connected(inputs, "vae"):
        raise GeodesicInputError("vae: encoding an image needs the VAE (e.g. from Load Checkpoint)")


def inversion_steps(inputs: dict) -> None:
    if inputs.get("steps") is not None:
        check_inversion_steps(inputs["steps"])
