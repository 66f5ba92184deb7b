"""The queue-time checks of every node, in one place: what POST /prompt refuses before anything runs.

Every node's ``validate_inputs(**inputs)`` calls ``check_queued``: each widget against the node's own
schema (range, NaN and inf, type, combo options), then the node's rules here that relate inputs
(guidance needs a negative, the budget must cover the frames, even-LPIPS decoding needs a VAE, two or more
frames and the LPIPS weights...). The run-time checks in the execute bodies and in geodesic_core stay as
the second line (connected widgets, the path's contents, API callers that skip validation).

How a refusal reaches the user, and why it takes two steps. ComfyUI (0.3.75 to 0.33, execution.validate_inputs)
attaches a message that validate_inputs returns to EVERY argument it was given ("custom_validation_failed",
details "<argument> - <message>", extra_info.input_name <argument>), so one bad max_evals would come back as
a dozen errors, one on each input. A raised exception is reported once, but with no input_name, or, when the
node feeds another one, with the input name of that other node ("couldn't validate source: max_evals ...").
No signature avoids both: a relation (the budget and the frames) must read several inputs, and ComfyUI does
not pass the value of a socket, nor an unconnected input, at all. So validate_inputs returns the message,
which starts with the input it is about, and ``one_error_per_refusal`` (a middleware on the POST /prompt
answer, for the pack's nodes only) keeps one error per message, with input_name set to that input: the
frontend then rings that input (connected or not) and lists the message once. ``**inputs`` also makes
ComfyUI leave every widget to us: it would otherwise let NaN through its range check and, on 0.3.75, not
check V3 combo values at all.

At queue time ComfyUI passes an unconnected optional input not at all and a connected input (widget or
socket) as None: its value exists only when the node runs, so its checks are left to execution.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from comfy_api.latest import io

from ..geodesic_pipeline.core import GeodesicInputError, check_budget, weights_file
from ..geodesic_pipeline.keyframes import readout_evals
from .bridge import check_guidance
from .encode_decode import check_inversion_steps, check_one_source
from .perceptual import DECODE_SPACINGS, check_frames_for_spacing

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


def _socket_problem(spec: io.Input, value) -> str | None:
    # A socket's value comes from another node's output; ComfyUI hands a JSON literal in its place over as is.
    if isinstance(value, str | int | float | bool):
        return f"expected a link from another node's {spec.get_io_type()} output, got the value {value!r}"
    return None


def _input_problem(spec: io.Input, value) -> str | None:
    return (_widget_problem if isinstance(spec, io.WidgetInput) else _socket_problem)(spec, value)


def check_queued(node: type[io.ComfyNode], inputs: dict, *rules: Rule) -> bool | str:
    """What every node's ``validate_inputs`` returns: True, or the first problem, a message that starts with
    the input it names (see the module)."""
    try:
        for spec in node.define_schema().inputs:
            value = inputs.get(spec.id)
            problem = None if value is None else _input_problem(spec, value)
            if problem:
                raise GeodesicInputError(f"{spec.id}: {problem}")
        for rule in rules:
            rule(inputs)
    except GeodesicInputError as error:
        return str(error)
    return True


def _one_per_message(errors: list[dict], input_ids: set[str]) -> list[dict]:
    """ComfyUI's copies of one returned message (one per argument of validate_inputs) as one error on the
    input the message names; none where ComfyUI's own check already refused that input (a number it could
    not convert)."""
    def ours(error: dict) -> bool:
        argument = error.get("details", "").partition(" - ")[0]
        return error.get("type") == "custom_validation_failed" and argument in input_ids

    kept = [error for error in errors if not ours(error)]
    refused = {error.get("extra_info", {}).get("input_name") for error in kept}
    for error in filter(ours, errors):
        argument, _, message = error["details"].partition(" - ")
        named = message.partition(": ")[0]
        named = named if named in input_ids else argument
        if named not in refused:
            refused.add(named)
            kept.append({**error, "details": message, "extra_info": {**error.get("extra_info", {}),
                                                                     "input_name": named}})
    return kept


PROMPT_ROUTES = ("/prompt", "/api/prompt")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def one_error_per_refusal(nodes: Iterable[type[io.ComfyNode]]):
    """aiohttp middleware: in ComfyUI's answer to POST /prompt (HTTP 400, or 200 when only some outputs
    were refused), the errors of these nodes' validate_inputs come once each, on the input they name."""
    input_ids = {node.define_schema().node_id: {spec.id for spec in node.define_schema().inputs}
                 for node in nodes}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if (request.method != "POST" or request.path not in PROMPT_ROUTES or not isinstance(response, web.Response)
                or response.content_type != "application/json" or not response.body):
            return response
        answer = json.loads(response.body)
        node_errors = answer.get("node_errors") if isinstance(answer, dict) else None
        ours = [entry for entry in (node_errors or {}).values() if entry.get("class_type") in input_ids]
        if not ours:
            return response
        for entry in ours:
            entry["errors"] = _one_per_message(entry["errors"], input_ids[entry["class_type"]])
        return web.json_response(answer, status=response.status)

    return middleware


def check_started(node: type[io.ComfyNode], inputs: dict) -> None:
    """The queue-time widget and socket checks again when the node starts, now that every value is there:
    a value that came over a link (a Primitive node's 30000000 into ``frames``) or a JSON null that
    ComfyUI could not tell from a link at queue time. Raises the first problem, naming the input, before
    anything is allocated or the model is called."""
    for spec in node.define_schema().inputs:
        if spec.id not in inputs:
            continue  # an optional input left unconnected: its default applies
        value = inputs[spec.id]
        if value is None and (spec.optional and not isinstance(spec, io.WidgetInput)):
            continue  # an optional socket given nothing is an unconnected one
        problem = (f"expected {'a value' if isinstance(spec, io.WidgetInput) else 'a link'}, got nothing (null)"
                   if value is None else _input_problem(spec, value))
        if problem:
            raise GeodesicInputError(f"{spec.id}: {problem}")


def checked_when_run(execute: Callable) -> Callable:
    """Decorates a node's ``execute`` (under ``@classmethod``) with ``check_started``."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def run(cls, *args, **kwargs):
        check_started(cls, signature.bind(cls, *args, **kwargs).arguments)
        return execute(cls, *args, **kwargs)

    return run


def connected(inputs: dict, name: str) -> bool:
    return name in inputs  # connected: None, unconnected: absent (see the module)


def guidance_needs_negative(inputs: dict) -> None:
    if inputs.get("guidance") is not None:
        check_guidance(inputs["guidance"], connected(inputs, "negative"))


def budget_covers_the_frames(inputs: dict) -> None:
    """Against the fewest keyframes, 2: how many keyframes come is known only when the solve runs."""
    frames, max_evals, loop = inputs.get("frames"), inputs.get("max_evals"), bool(inputs.get("loop"))
    strength = bool(inputs.get("strength"))
    if frames is not None and max_evals is not None:
        check_budget(max_evals, readout_evals(frames, 2, loop, strength=strength),
                     f"the {frames} frames{' of a loop' * loop}{' and the pull for strength' * strength}")


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


def decoding_rules(inputs: dict) -> None:
    """Decode Path: ``frames`` only with an even-LPIPS spacing, which needs a VAE, 0 or at least 2 frames,
    and the LPIPS weights."""
    spacing = inputs.get("spacing", "path")
    if spacing is None:
        return
    check_frames_for_spacing(spacing, inputs.get("frames"))
    if DECODE_SPACINGS.get(spacing) is None:
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
    check_one_source(connected(inputs, "image"), connected(inputs, "latent"))
    if connected(inputs, "image") and not connected(inputs, "vae"):
        raise GeodesicInputError("vae: encoding an image needs the VAE (e.g. from Load Checkpoint)")


def inversion_steps(inputs: dict) -> None:
    if inputs.get("steps") is not None:
        check_inversion_steps(inputs["steps"])
