"""Bad inputs: a clear error naming the input, when the node runs and when the prompt is queued."""
from __future__ import annotations

import pytest
import torch
from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete
from density_geodesics.geodesic_core import GeodesicInputError
from density_geodesics.nodes import (
    DecodePath,
    DensityReadout,
    EncodeKeyframes,
    JoinKeyframes,
    PathToLatent,
    SolveBVP,
    SolveIVP,
)
from inprocess_support import FAST_BVP, NOISE_LEVEL, SIZE, encode_keyframes, random_images


def test_clear_errors_for_bad_inputs(sd, keyframes):
    model = sd["model"]
    with pytest.raises(GeodesicInputError, match="positive: the conditioning is empty"):
        EncodeKeyframes.execute(model, [], NOISE_LEVEL, 2, 4, image=random_images(1, 0), vae=sd["vae"])
    one = encode_keyframes(sd, random_images(1, 9), sd["cat"])
    with pytest.raises(GeodesicInputError, match="keyframes: a geodesic between keyframes needs at least 2"):
        SolveBVP.execute(model, one, 5, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match="frames: expected a number from 3 to 4096, got 2"):
        SolveBVP.execute(model, keyframes, 2, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match="batch_size: expected a number from 0 to 256, got -1"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "batch_size": -1})
    four = JoinKeyframes.execute(keyframes, one)[0]
    with pytest.raises(GeodesicInputError, match="frames: 4 keyframes need at least 4 frames, got 3"):
        SolveBVP.execute(model, four, 3, False, "equal", **FAST_BVP)
    with pytest.raises(GeodesicInputError, match=r"latent: expected \[batch, 4, height, width\]"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent={"samples": torch.zeros(1, 16, 8, 8)})
    with pytest.raises(GeodesicInputError, match="image: connect an image .* or a latent"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4)
    with pytest.raises(GeodesicInputError, match="steps: the inversion needs at least 2 steps"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 1, 4, image=random_images(1, 0), vae=sd["vae"])
    wide = EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4,
                                   latent={"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 4)})[0]
    with pytest.raises(GeodesicInputError, match="second: latent size"):
        JoinKeyframes.execute(one, wide)
    other_level = encode_keyframes(sd, random_images(1, 9), sd["cat"], noise_level=0.5)
    with pytest.raises(GeodesicInputError, match="second: lies at noise level 0.5"):
        JoinKeyframes.execute(one, other_level)
    (v_model,) = ModelSamplingDiscrete().patch(model, "v_prediction", False)
    with pytest.raises(GeodesicInputError, match="keyframes: this path was made with .*EPS prediction"):
        SolveBVP.execute(v_model, keyframes, 5, False, "equal", **FAST_BVP)
    (zsnr_model,) = ModelSamplingDiscrete().patch(model, "eps", True)  # same family, other noise schedule
    with pytest.raises(GeodesicInputError, match="path: this path lies at noise level 0.6"):
        DecodePath.execute(zsnr_model, keyframes, 2, 4)
    with pytest.raises(GeodesicInputError, match="negative: guidance > 0 needs a negative conditioning"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "guidance": 2.0})
    with pytest.raises(GeodesicInputError, match="negative: the conditioning is empty"):
        SolveBVP.execute(model, keyframes, 5, False, "equal", **{**FAST_BVP, "guidance": 2.0}, negative=[])


BVP_WIDGETS = dict(frames=17, spacing="by distance", alpha=0.002, method="default", tolerance=1e-3, max_evals=2000,
                   guidance=0.0)


NEGATIVE_CONNECTED = {"negative": None}  # how ComfyUI passes a connected input at queue time (unconnected: absent)


# (node, changed widgets, other inputs, start of the message ComfyUI shows when the prompt is queued)
QUEUE_TIME_ERRORS = [
    (SolveBVP, {"guidance": 2.0}, {}, "negative: guidance > 0 needs a negative conditioning"),
    (SolveBVP, {"guidance": float("nan")}, NEGATIVE_CONNECTED, "guidance: expected a number from 0 to 30, got nan"),
    (SolveBVP, {"tolerance": float("nan")}, {}, "tolerance: expected a number from 1e-06 to 1, got nan"),
    (SolveBVP, {"alpha": float("inf")}, {}, "alpha: expected a number from 1e-06 to 10, got inf"),
    (SolveBVP, {"alpha": "abc"}, {}, "alpha: expected a number from 1e-06 to 10, got 'abc'"),
    (SolveBVP, {"spacing": "evenly"}, {}, "spacing: expected one of 'by distance', 'equal', got 'evenly'"),
    (SolveBVP, {"method": "adam"}, {}, "method: expected one of 'default', 'paper', got 'adam'"),
    (SolveBVP, {"frames": 2}, {}, "frames: expected a number from 3 to 4096, got 2"),
    (SolveBVP, {"max_evals": 16}, {},
     "max_evals: a budget of 16 score evaluations cannot read out the 17 frames even once (65"),
    (SolveBVP, {"accuracy": float("nan")}, {}, "accuracy: expected a number from 1e-05 to 0.5, got nan"),
]


@pytest.mark.parametrize("node, changes, others, message", QUEUE_TIME_ERRORS,
                         ids=[f"{next(iter(c))}={next(iter(c.values()))}" for _, c, _, _ in QUEUE_TIME_ERRORS])
def test_validate_inputs_names_the_widget(node, changes, others, message):
    refusal = node.validate_inputs(**{**BVP_WIDGETS, **changes}, **others)
    assert isinstance(refusal, str) and refusal.startswith(message), refusal


def test_validate_inputs_accepts_defaults_connected_negatives_and_links():
    assert SolveBVP.validate_inputs(**BVP_WIDGETS) is True
    assert SolveBVP.validate_inputs(**{**BVP_WIDGETS, "guidance": 2.0}, **NEGATIVE_CONNECTED) is True
    # Connected widgets arrive as None at queue time: they are checked when the node runs.
    assert SolveBVP.validate_inputs(**{**BVP_WIDGETS, "guidance": None, "frames": None}) is True
    ivp = dict(velocity_from="end tangent", direction="forward", alpha=0.002, guidance=0.0)
    assert SolveIVP.validate_inputs(**ivp) is True
    for changes, message in [({"direction": "sideways"}, "direction: expected one of 'forward', 'backward', got"),
                             ({"velocity_from": "velocity"}, "velocity_from: expected one of")]:
        assert SolveIVP.validate_inputs(**{**ivp, **changes}).startswith(message)
    readout = dict(alpha=0.002, method="default", tolerance=1e-3, guidance=0.0)
    for changes, message in [({"tolerance": float("nan")}, "tolerance:"), ({"accuracy": 0.9}, "accuracy:"),
                             ({"guidance": 1.0}, "negative: guidance > 0"), ({"method": "x"}, "method:")]:
        assert DensityReadout.validate_inputs(**{**readout, **changes}).startswith(message)
    assert EncodeKeyframes.validate_inputs(noise_level=float("nan"), steps=2, image=None, vae=None).startswith(
        "noise_level: expected a number from 0.05")


def test_noisy_latent_fed_back_into_encode_is_refused(sd, keyframes):
    model = sd["model"]
    noisy = EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, image=random_images(1, 7),
                                    vae=sd["vae"]).args[1]
    with pytest.raises(GeodesicInputError, match="latent: these latents are already noisy .* noise level 0.6"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=noisy)
    path_latent = PathToLatent.execute(model, keyframes).args[0]
    with pytest.raises(GeodesicInputError, match="latent: these latents are already noisy"):
        EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=path_latent)
    # A KSampler copies the LATENT dict and puts its new (clean) samples in: those encode normally.
    sampled = {**noisy, "samples": noisy["samples"] * 0.5}
    assert len(EncodeKeyframes.execute(model, sd["cat"], NOISE_LEVEL, 2, 4, latent=sampled)[0]) == 1
