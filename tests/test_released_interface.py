"""Workflows made with the released pack still load and run: every node of version 0.2.0, with exactly the
inputs it had then, on the real server.

tests/released_nodes_0.2.0.json is the pack's part of /object_info as 0.2.0 served it (from the tree of
commit cbe90d0, the last change to 0.2.0's CHANGELOG entry; each input's type, default and choices). Inputs
added since (e.g. Geodesic Interpolation's optional `strength`) are absent from it, as from the workflows
and API prompts saved then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.comfy_server import ComfyServer

RELEASED = json.loads((Path(__file__).with_name("released_nodes_0.2.0.json")).read_text())

# Node id in the prompt -> (node type, links: input -> [source id, output slot], widgets set away from their
# released defaults to keep the run CPU-sized). Every released node once, on the embedded model; the chain
# ends in output nodes, so each node runs.
PROMPT_PLAN = {
    "model": ("DensityGeodesics_LoadEmbeddedModel", {}, {}),
    "digit_a": ("DensityGeodesics_MnistTestDigit", {}, {"index": 0}),
    "digit_b": ("DensityGeodesics_MnistTestDigit", {}, {"index": 1}),
    "key_a": ("DensityGeodesics_EncodeKeyframes",
              {"model": ["model", 0], "positive": ["model", 2], "image": ["digit_a", 0], "vae": ["model", 1]},
              {"steps": 2}),
    "key_b": ("DensityGeodesics_EncodeKeyframes",
              {"model": ["model", 0], "positive": ["model", 2], "image": ["digit_b", 0], "vae": ["model", 1]},
              {"steps": 2}),
    "join": ("DensityGeodesics_JoinKeyframes", {"first": ["key_a", 0], "second": ["key_b", 0]}, {}),
    "solve": ("DensityGeodesics_SolveBVP", {"model": ["model", 0], "keyframes": ["join", 0]},
              {"frames": 5, "max_evals": 200, "tolerance": 0.05}),
    "respace": ("DensityGeodesics_RespacePath", {"model": ["model", 0], "path": ["solve", 0]}, {"frames": 5}),
    "extend": ("DensityGeodesics_SolveIVP", {"model": ["model", 0], "path": ["respace", 0]}, {"frames": 2}),
    "readout": ("DensityGeodesics_DensityReadout", {"model": ["model", 0], "path": ["extend", 0]},
                {"max_evals": 200, "tolerance": 0.05}),
    "decode": ("DensityGeodesics_DecodePath", {"model": ["model", 0], "path": ["solve", 0], "vae": ["model", 1]},
               {"steps": 2}),
    "lpips": ("DensityGeodesics_PerceptualMetrics", {"images": ["decode", 1]}, {}),
    "to_latent": ("DensityGeodesics_PathToLatent", {"model": ["model", 0], "path": ["solve", 0]}, {}),
    "noisy_images": ("VAEDecode", {"samples": ["to_latent", 0], "vae": ["model", 1]}, {}),
    "preview": ("PreviewImage", {"images": ["noisy_images", 0]}, {}),
}


def released_prompt() -> dict:
    """The API prompt of PROMPT_PLAN: each pack node with every released widget (its released default unless
    the plan sets it) and the plan's links, nothing newer."""
    prompt = {}
    for node_id, (node_type, links, widgets) in PROMPT_PLAN.items():
        inputs = dict(links)
        if node_type in RELEASED:
            specs = {name: spec for part in RELEASED[node_type]["inputs"].values() for name, spec in part.items()}
            inputs |= {name: widgets.get(name, spec["default"]) for name, spec in specs.items() if "default" in spec}
        else:
            inputs |= widgets
        prompt[node_id] = {"class_type": node_type, "inputs": inputs}
    return prompt


def test_the_prompt_holds_every_released_node_and_only_released_inputs():
    prompt = released_prompt()
    assert {node["class_type"] for node in prompt.values()} >= set(RELEASED)
    for node_id, node in prompt.items():
        if node["class_type"] in RELEASED:
            released = RELEASED[node["class_type"]]["inputs"]
            known = {name for part in released.values() for name in part}
            assert set(node["inputs"]) <= known, node_id
            assert set(released.get("required", {})) <= set(node["inputs"]), node_id


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> dict:
    return comfy_server.object_info()


@pytest.mark.parametrize("node_type", RELEASED)
def test_every_released_input_and_output_is_still_there(object_info: dict, node_type: str):
    """Same node id; every released input under its name and type, its released default still a valid value;
    no input required that was not; the released outputs first, in their order (new ones are appended)."""
    assert node_type in object_info, f"{node_type}: the node is gone"
    current, released = object_info[node_type], RELEASED[node_type]
    specs = {name: spec for part in ("required", "optional") for name, spec in current["input"].get(part, {}).items()}
    was_required = set(released["inputs"].get("required", {}))
    for name, spec in (item for inputs in released["inputs"].values() for item in inputs.items()):
        assert name in specs, f"{node_type}.{name}: the input is gone"
        kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
        assert kind == spec["type"], f"{node_type}.{name}: type {kind}, released {spec['type']}"
        if "options" in spec:
            assert set(spec["options"]) <= set(options["options"]), f"{node_type}.{name}: a choice is gone"
        if isinstance(spec.get("default"), int | float) and not isinstance(spec["default"], bool):
            assert options.get("min", -float("inf")) <= spec["default"] <= options.get("max", float("inf")), \
                f"{node_type}.{name}: the released default {spec['default']} is out of range now"
    newly_required = set(current["input"].get("required", {})) - was_required
    assert not newly_required, f"{node_type}: inputs required now that were not: {sorted(newly_required)}"
    assert current["output"][: len(released["outputs"])] == released["outputs"], f"{node_type}: outputs changed"


def test_a_released_prompt_of_every_node_runs(comfy_server: ComfyServer):
    result = comfy_server.run(released_prompt(), timeout_s=600)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    assert result.output_files("preview"), "the chain through Path to Noisy Latent wrote no image"
    assert result.outputs.get("readout") and result.outputs.get("lpips"), result.outputs.keys()
