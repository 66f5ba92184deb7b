"""Nodes that make and combine keyframe sets: encode images or latents, join sets, path -> LATENT."""

from __future__ import annotations

from comfy_api.latest import io

from ..geodesic_pipeline.core import GeodesicInputError
from ..geodesic_pipeline.defaults import PAPER_DEFAULTS
from . import inputs as shared
from .encode_decode import check_one_source, encode_latents
from .model_facts import check_path_for, latent_from_model_space
from .path import GeodesicPath, check_conditioning, join_paths
from .validation import check_queued, checked_when_run, inversion_steps, one_source_of_keyframes

# The pack's noisy LATENT outputs carry their noise level under this key, next to the very tensor it
# describes: a node that makes new latents from them (a KSampler copies the dict and replaces "samples")
# leaves the mark behind on the old tensor, so only the untouched noisy output is recognised.
NOISY_MARK = "density_geodesics_noisy"


def noisy_latent(model, path: GeodesicPath) -> dict:
    samples = latent_from_model_space(model, path.points)
    return {"samples": samples, NOISY_MARK: {"samples": samples, "noise_level": path.noise_level}}


def _clean_latents(image, vae, latent):
    check_one_source(image is not None, latent is not None)
    if latent is not None:
        mark = latent.get(NOISY_MARK)
        if mark is not None and mark["samples"] is latent["samples"]:
            raise GeodesicInputError(
                f"latent: these latents are already noisy (a noisy_latent output, at noise level "
                f"{mark['noise_level']:g}) and would be inverted a second time; connect that node's path "
                f"output to the next Density Geodesics node instead, or clean latents (VAE Encode, KSampler) here")
        return latent["samples"]
    if vae is None:
        raise GeodesicInputError("vae: encoding an image needs the VAE (e.g. from Load Checkpoint)")
    return vae.encode(image[:, :, :, :3])


class EncodeKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_EncodeKeyframes",
            display_name="Encode Keyframes (Density Geodesics)",
            category=shared.CATEGORY,
            description="Deterministically invert images (or clean latents) to a noise level of the model: "
                        "the space where density geodesics are solved. Every image of the batch is one keyframe "
                        "with this prompt's conditioning.",
            inputs=[
                shared.model_input(),
                io.Conditioning.Input(
                    "positive", tooltip="Prompt conditioning of these keyframes (used for the inversion and "
                                        "carried along; join sets with different prompts to interpolate)."),
                io.Float.Input(
                    "noise_level", default=PAPER_DEFAULTS.noise_level, min=0.05, max=0.95, step=0.01,
                    tooltip="Fraction of the noise schedule to invert to (the paper's default 0.6 = 60%). "
                            "Later nodes check that paths match it."),
                shared.steps_input("Inversion steps from clean to the noise level (deterministic DDIM)."),
                shared.batch_size_input(),
                io.Image.Input("image", optional=True,
                               tooltip="One image or a batch of keyframes (e.g. video frames), in order."),
                io.Vae.Input("vae", optional=True,
                             tooltip="VAE that encodes the images (needed with image)."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Clean latents instead of images (e.g. a KSampler output)."),
            ],
            outputs=[
                shared.path_output("Keyframes at the noise level: connect to Geodesic Interpolation, Join Keyframes, "
                                   "Density Readout or Decode Path."),
                shared.named_output(
                    io.Latent, "noisy_latent",
                    "The same noisy keyframes as a plain LATENT."),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_queued(cls, inputs, inversion_steps, one_source_of_keyframes)

    @classmethod
    @checked_when_run
    def execute(cls, model, positive, noise_level, steps, batch_size, image=None, vae=None,
                latent=None) -> io.NodeOutput:
        check_conditioning(positive, "positive")
        samples = _clean_latents(image, vae, latent)
        path = encode_latents(model, samples, positive, noise_level=noise_level, steps=steps,
                              batch_size=batch_size)
        return io.NodeOutput(path, noisy_latent(model, path))


class JoinKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_JoinKeyframes",
            display_name="Join Keyframes (Density Geodesics)",
            category=shared.CATEGORY,
            description="Concatenate two keyframe sets (or paths), keeping each point's own conditioning, so "
                        "every keyframe can have its own prompt. Chain several to add more keyframes.",
            inputs=[
                shared.path_input("first", "Keyframes (or path) that come first."),
                shared.path_input("second", "Keyframes (or path) that follow; same model, noise level and size."),
            ],
            outputs=[shared.path_output("The joined keyframes, in order.")],
        )

    @classmethod
    @checked_when_run
    def execute(cls, first, second) -> io.NodeOutput:
        for name, value in (("first", first), ("second", second)):
            if not isinstance(value, GeodesicPath):
                raise GeodesicInputError(f"{name}: expected keyframes from a Density Geodesics node, got "
                                         f"{type(value).__name__}")
        return io.NodeOutput(join_paths(first, second, ("first", "second")))


class PathToLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_PathToLatent",
            display_name="Path to Noisy Latent (Density Geodesics)",
            category=shared.CATEGORY,
            description="The path's points as a plain LATENT batch (still noisy, at the path's noise level), "
                        "e.g. for KSampler Advanced starting at the matching step.",
            inputs=[
                shared.model_input(),
                shared.path_input(),
            ],
            outputs=[
                shared.named_output(
                    io.Latent, "noisy_latent",
                    "Noisy latents of every point, in ComfyUI's LATENT convention."),
                shared.named_output(
                    io.Float, "noise_level",
                    "The path's noise level (fraction of the schedule)."),
            ],
        )

    @classmethod
    @checked_when_run
    def execute(cls, model, path) -> io.NodeOutput:
        check_path_for(model, path, "path")
        return io.NodeOutput(noisy_latent(model, path), path.noise_level)
