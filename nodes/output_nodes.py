"""Nodes that turn a path into results: density/distance readout and decoded frames."""

from __future__ import annotations

from comfy_api.latest import io, ui

from .flows import decode_path
from .inputs import (
    CATEGORY,
    alpha_input,
    batch_size_input,
    guidance_inputs,
    max_evals_input,
    method_input,
    model_input,
    path_input,
    sphere_input,
    steps_input,
    tolerance_input,
)
from .plot import density_plot, latent_rgb_preview
from .solves import FieldSettings, read_out


class DensityReadout(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_DensityReadout",
            display_name="Density Readout (Density Geodesics)",
            category=CATEGORY,
            description="Relative log density of every frame, geodesic length, and how close the path is to "
                        "the density geodesic between its ends (efficiency 1 = a geodesic). Works on any "
                        "path, e.g. the frames of a real video run through Encode Keyframes.",
            is_output_node=True,
            inputs=[
                model_input(),
                path_input("path", "Any path: a solved geodesic, or encoded video frames (2 or more)."),
                io.Boolean.Input("compare_geodesic", default=True,
                                 tooltip="Also solve the geodesic between the path's ends to report the "
                                         "efficiency (costs a BVP solve; off gives efficiency -1)."),
                alpha_input(),
                sphere_input(),
                method_input(),
                tolerance_input(),
                max_evals_input(),
                batch_size_input(),
                *guidance_inputs(),
            ],
            outputs=[
                io.Image.Output("plot", display_name="plot",
                                tooltip="Plot of relative log density and cumulative geodesic distance per "
                                        "frame."),
                io.String.Output("table", display_name="table",
                                 tooltip="Per-frame table (frame, t, relative log density, cumulative "
                                         "distance) and the summary numbers."),
                io.Float.Output("length", display_name="length",
                                tooltip="Geodesic (density-weighted) length of the path."),
                io.Float.Output("efficiency", display_name="efficiency",
                                tooltip="Length of the geodesic between the ends divided by the path's "
                                        "length (<= 1; 1 = the path is a geodesic; -1 when not compared)."),
                io.Float.Output("min_log_density", display_name="min_log_density",
                                tooltip="Lowest log density along the path relative to its first frame "
                                        "(a dip means the path passes through unlikely images)."),
            ],
        )

    @classmethod
    def execute(cls, model, path, compare_geodesic, alpha, sphere, method, tolerance, max_evals, batch_size,
                guidance, negative=None) -> io.NodeOutput:
        settings = FieldSettings(alpha, sphere, guidance, negative, batch_size)
        readout = read_out(model, path, compare_geodesic=compare_geodesic, method=method, tolerance=tolerance,
                           max_evals=max_evals, settings=settings)
        plot = density_plot(readout)
        return io.NodeOutput(plot, readout.table(), readout.length, readout.efficiency,
                             readout.min_log_density, ui=ui.PreviewImage(plot, cls=cls))


class DecodePath(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_DecodePath",
            display_name="Decode Path (Density Geodesics)",
            category=CATEGORY,
            description="Clean frames of a path: deterministic generation from its noise level with each "
                        "frame's own conditioning, as LATENT and (with a VAE) as IMAGE.",
            inputs=[
                model_input(),
                path_input("path", "The path to decode (Solve BVP, Solve IVP, Encode Keyframes...)."),
                steps_input("Denoising steps from the noise level to clean (deterministic DDIM)."),
                batch_size_input(),
                io.Vae.Input("vae", optional=True,
                             tooltip="VAE to decode the frames to images. Without it, the image output is a "
                                     "rough colour preview computed from the latents."),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="Clean latents of every frame (connect to VAE Decode or other "
                                         "latent nodes)."),
                io.Image.Output("images", display_name="images",
                                tooltip="Decoded frames (connect to Save Image, Preview Image or a video "
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
