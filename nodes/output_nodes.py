"""Nodes that turn a path into results: density/distance readout and decoded frames."""

from __future__ import annotations

from comfy_api.latest import io, ui

from . import inputs as shared
from .bridge import ModelCallSettings
from .encode_decode import decode_path
from .geodesics_on_model import DensitySettings, read_out
from .plot import density_plot, latent_rgb_preview, readout_table


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
            ],
            outputs=[
                shared.named_output(
                    io.Image, "plot",
                    "Plot of relative log density and cumulative geodesic distance per "
                    "frame."),
                shared.named_output(
                    io.String, "table",
                    "Per-frame table (frame, t, relative log density with its error bound, "
                    "cumulative distance) and the summary numbers, with the closure check."),
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
    def validate_inputs(cls, alpha, method, tolerance, guidance, accuracy=None,
                        negative=shared.UNCONNECTED) -> bool | str:
        return shared.queue_time_check(
            cls, dict(alpha=alpha, method=method, tolerance=tolerance, guidance=guidance, accuracy=accuracy),
            shared.guidance_check(guidance, negative))

    @classmethod
    def execute(cls, model, path, compare_geodesic, alpha, sphere, method, tolerance, max_evals, batch_size,
                guidance, accuracy=0.001, negative=None) -> io.NodeOutput:
        readout = read_out(model, path, compare_geodesic=compare_geodesic, method=method, tolerance=tolerance,
                           max_evals=max_evals, density=DensitySettings(alpha, sphere, accuracy),
                           calls=ModelCallSettings(guidance, negative, batch_size))
        plot = density_plot(readout)
        return io.NodeOutput(plot, readout_table(readout), readout.length, readout.efficiency,
                             readout.min_log_density, ui=ui.PreviewImage(plot, cls=cls))


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
                shared.path_input("path", "The path to decode (Solve BVP, Solve IVP, Encode Keyframes...)."),
                shared.steps_input("Denoising steps from the noise level to clean (deterministic DDIM)."),
                shared.batch_size_input(),
                io.Vae.Input("vae", optional=True,
                             tooltip="VAE to decode the frames to images. Without it, the image output is a "
                                     "rough colour preview computed from the latents."),
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
            ],
        )

    @classmethod
    def execute(cls, model, path, steps, batch_size, vae=None) -> io.NodeOutput:
        samples = decode_path(model, path, steps=steps, batch_size=batch_size)
        if vae is None:
            images = latent_rgb_preview(model, samples)
        else:
            images = vae.decode(samples)
            images = images.reshape(-1, *images.shape[-3:])
        return io.NodeOutput({"samples": samples}, images)
