"""Nodes that need no files: the embedded MNIST latent model as MODEL / VAE / CONDITIONING, and held-out MNIST
digits as images, so a workflow runs as opened without a checkpoint or an input image."""

from __future__ import annotations

from comfy_api.latest import io

from . import inputs as shared
from .embedded_model import load_embedded_model, mnist_test_digit
from .validation import checked_when_run


class LoadEmbeddedModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_LoadEmbeddedModel",
            display_name="Load Embedded MNIST Model (Density Geodesics)",
            category=shared.CATEGORY,
            description="The small latent diffusion model that ships with the pack, trained on handwritten digits "
                        "(MNIST) like Stable Diffusion at 32x32: a 4x8x8 latent, SD's epsilon schedule. No "
                        "checkpoint to download; runs in seconds on a CPU. Works with KSampler, VAE Decode and "
                        "every Density Geodesics node.",
            inputs=[],
            outputs=[
                shared.named_output(io.Model, "model", "The diffusion model (unconditional)."),
                shared.named_output(io.Vae, "vae", "Its VAE: 32x32 images <-> 4x8x8 latents; digits come out "
                                                   "grey as RGB."),
                shared.named_output(io.Conditioning, "conditioning",
                                    "The model takes no prompt: connect this wherever a positive (or "
                                    "negative) conditioning is asked for."),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(*load_embedded_model())


class MnistTestDigit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DensityGeodesics_MnistTestDigit",
            display_name="MNIST Test Digit (Density Geodesics)",
            category=shared.CATEGORY,
            description="One of the 10,000 held-out MNIST digits (never seen in training) as a 32x32 image for the "
                        "embedded model: an input that needs no file.",
            inputs=[io.Int.Input("index", default=0, min=0, max=9999,
                                 tooltip="Which held-out digit (0 to 9999); the label output says which digit "
                                         "it shows.")],
            outputs=[
                shared.named_output(io.Image, "image", "The digit, white on black, 32x32."),
                shared.named_output(io.Int, "label", "The digit it shows (0 to 9), as labelled in MNIST."),
            ],
        )

    @classmethod
    @checked_when_run
    def execute(cls, index) -> io.NodeOutput:
        return io.NodeOutput(*mnist_test_digit(index))
