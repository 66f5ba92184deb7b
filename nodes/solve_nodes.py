"""Nodes that solve geodesics: through keyframes (BVP) and onward from a path's end (IVP)."""

from __future__ import annotations

from comfy_api.latest import io

from ..geodesic_pipeline.keyframes import SPACINGS, GeodesicSettings
from . import inputs as shared
from .bridge import ModelCallSettings
from .geodesics_on_model import extrapolate, solve_keyframes
from .validation import (
    budget_covers_the_frames,
    check_queued,
    checked_when_run,
    global_search_needs_default_method,
    guidance_needs_negative,
)

VELOCITY_SOURCES = ("end tangent", "last two frames")
DIRECTIONS = ("forward", "backward")


class SolveBVP(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_SolveBVP",
            display_name="Geodesic Interpolation (BVP, Density Geodesics)",
            category=shared.CATEGORY,
            description="Density geodesic through every keyframe in order with an exact number of frames; "
                        "the conditioning blends from each keyframe's prompt to the next. Decode the path to get "
                        "the frames.",
            inputs=[
                shared.model_input(),
                shared.path_input("keyframes", "Two or more keyframes (Encode Keyframes, Join Keyframes)."),
                io.Int.Input("frames", default=17, min=3, max=4096,
                             tooltip="Exact number of output frames, keyframes included (each appears "
                                     "once)."),
                io.Boolean.Input("loop", default=False,
                                 tooltip="Close the path back to the first keyframe; the repeated first "
                                         "frame is left out so the frames loop seamlessly."),
                io.Combo.Input("spacing", options=list(SPACINGS), default=SPACINGS[0],
                               tooltip="How frames are shared between keyframe segments: in proportion to "
                                       "the distance between keyframes, or the same number per segment."),
                shared.alpha_input(),
                *shared.solver_inputs(),
                shared.sphere_input(),
                *shared.field_tail_inputs(),
                shared.accuracy_input(),
                shared.search_input(),
                shared.strength_input("between consecutive keyframes"),
            ],
            outputs=[
                shared.path_output("The geodesic path (noisy latents with per-frame conditioning and densities)."),
                shared.named_output(
                    io.String, "report",
                    "Per segment: frames, length, residual, convergence, evaluations; with a strength, the "
                    "alpha it gave."),
                shared.named_output(
                    io.Float, "alpha",
                    "The density weight the path was solved with (strength's, or alpha as given): connect it "
                    "to another node's alpha to read or continue the path in the same metric.",
                    output_id="solved_alpha"),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, guidance_needs_negative, budget_covers_the_frames,
                            global_search_needs_default_method)

    @classmethod
    @checked_when_run
    def execute(cls, model, keyframes, frames, loop, spacing, alpha, method, tolerance, max_evals, sphere,
                batch_size, guidance, accuracy=0.001, search="local", strength=0.0, negative=None) -> io.NodeOutput:
        settings = GeodesicSettings(alpha, sphere, method, tolerance, accuracy, search, max_evals, strength or None)
        path, report, solved_alpha = solve_keyframes(
            model, keyframes, frames=frames, loop=loop, spacing=spacing, settings=settings,
            calls=ModelCallSettings(guidance, negative, batch_size))
        return io.NodeOutput(path, report, solved_alpha)


class SolveIVP(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_SolveIVP",
            display_name="Geodesic Extrapolation (IVP, Density Geodesics)",
            category=shared.CATEGORY,
            description="Continue a path past its last frame (or before its first) along the density "
                        "geodesic, at the path's own frame spacing.",
            inputs=[
                shared.model_input(),
                shared.path_input("path", "Path or keyframes (at least two frames) to continue."),
                io.Int.Input("frames", default=8, min=1, max=4096,
                             tooltip="Number of new frames to extrapolate."),
                io.Combo.Input("velocity_from", options=list(VELOCITY_SOURCES), default=VELOCITY_SOURCES[0],
                               tooltip="Direction to shoot in: the geodesic's end tangent (from Geodesic "
                                       "Interpolation; falls back to the last two frames) or the last two "
                                       "frames."),
                io.Combo.Input("direction", options=list(DIRECTIONS), default=DIRECTIONS[0],
                               tooltip="forward: after the last frame. backward: before the first frame "
                                       "(new frames are returned in playing order)."),
                shared.alpha_input(),
                shared.sphere_input(),
                *shared.field_tail_inputs(),
                shared.strength_input(),
            ],
            outputs=[
                shared.path_output("The new frames only (join with the input path to play them together)."),
                shared.named_output(
                    io.Float, "alpha", "The density weight the frames were shot with (strength's, or alpha as given).",
                    output_id="solved_alpha"),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, guidance_needs_negative)

    @classmethod
    @checked_when_run
    def execute(cls, model, path, frames, velocity_from, direction, alpha, sphere, batch_size, guidance,
                strength=0.0, negative=None) -> io.NodeOutput:
        new_path, solved_alpha = extrapolate(
            model, path, frames=frames, use_tangent=velocity_from == VELOCITY_SOURCES[0],
            backward=direction == DIRECTIONS[1], settings=GeodesicSettings(alpha, sphere, strength=strength or None),
            calls=ModelCallSettings(guidance, negative, batch_size))
        return io.NodeOutput(new_path, solved_alpha)
