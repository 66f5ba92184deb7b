"""Regenerate the templates (example_workflows/*.json, UI format) and the first template's .jpg thumbnail.

    bash dev.sh py -m scripts.make_workflows                    # templates, and the first one's thumbnail (runs it)
    bash dev.sh py -m scripts.make_workflows --skip-thumbnails  # only the templates

Starts a real ComfyUI with this pack (the same set-up as the tests) and builds each workflow from the
server's own /object_info, so widget order matches the installed node schemas. Only core nodes plus this
pack's nodes are used; each picture is scaled to one size (core Upscale Image), encoded by its own Encode
Keyframes with its own prompt, and the keyframes joined with Join Keyframes (core Batch Images would rescale
them silently, and current ComfyUI marks it deprecated).

Thumbnails are square (the template browser shows them so) and show no random weights' output. The first
template's is its own animation, run as opened through POST /prompt on the embedded model. The others need an
SD checkpoint, which cannot run where these are made (the test checkpoint has random weights): their thumbnail
is their graph as the real frontend opens it, captioned so, made from the real-browser test's screenshots by
scripts/make_readme_pictures.py (`graph_thumbnail`), which runs this script first.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from devtools.comfy_browser import VIEWPORT
from devtools.comfy_server import (
    CLIP_FILE,
    EMBEDDED_TEMPLATE,
    EXTRAPOLATION_TEMPLATE,
    INTERPOLATION_TEMPLATE,
    KEYFRAME_FILES,
    LOOP_TEMPLATE,
    TEMPLATE_CHECKPOINT_NAME,
    VIDEO_TEMPLATE,
    WORKFLOWS_DIR,
    ComfyServer,
    PromptResult,
    start_server,
    write_example_inputs,
)
from devtools.workflow_build import Link, Node, build_ui_workflow
from devtools.workflow_convert import ui_to_api
from digits.settings import MNIST_DEFAULTS, ODE_STEPS

THUMBNAIL_SIZE = 512
GRID = 3  # frames per row and column of the first template's thumbnail
THUMBNAIL_MARGIN = 12
CANVAS_COLOUR = (32, 32, 32)  # the frontend's canvas behind the graph
GRAPH_CAPTION = (("Needs an SD checkpoint", 32), ("the graph, not a result:", 24), ("none could run where this", 24),
                 ("picture was made", 24))  # (line, font size)
CAPTION_LINE_SPACING = 1.4
PROMPT = "a photo"  # neutral: fits any picture until the user describes theirs (the note says how)
# Every picture is scaled and centre-cropped to this size before it is encoded, so pictures of different sizes
# make keyframes of one latent size (SD1.5's training size; the note says what to set for other checkpoints).
KEYFRAME_SIZE = 512
SD_NOTE = (
    'Pick your checkpoint in Load Checkpoint and your pictures in the Load Image nodes.\n'
    '\n'
    'Prompts: each picture has its own. Replace the neutral "a photo" with what the picture shows, in a few '
    'words (e.g. "a photo of a red car", "a watercolour of a harbour"). The path blends the prompts from one '
    'keyframe to the next.\n'
    '\n'
    f'Sizes: Upscale Image scales and centre-crops every picture to {KEYFRAME_SIZE} x {KEYFRAME_SIZE}, so '
    'pictures of different sizes work. For another checkpoint set width and height on all of them to its '
    'size (SDXL: 1024 x 1024).\n'
    '\n'
    'No checkpoint at hand? Open "A first try, geodesic between two digits (embedded model, no '
    'checkpoint)".'
)
VIDEO_NOTE = (
    'Pick your checkpoint in Load Checkpoint and your clip in Load Image: it reads every frame of an animated '
    'WEBP or GIF (all frames of one size; SD1.5 works best near 512 x 512).\n'
    '\n'
    'Prompt: replace the neutral "a photo" with what the clip shows, in a few words; every frame is encoded '
    'with it.\n'
    '\n'
    'Density Readout plots the relative log density per frame and the geodesic distance along the clip; '
    'efficiency says how close the clip is to the geodesic between its ends (1 = a geodesic).\n'
    '\n'
    'No checkpoint at hand? Open "A first try, geodesic between two digits (embedded model, no '
    'checkpoint)".'
)
INTERPOLATION_FRAMES, LOOP_FRAMES, EXTRAPOLATION_BVP_FRAMES, EXTRAPOLATED_FRAMES = 17, 24, 9, 8
# The embedded-model template: two held-out digits (a 7 and a 2) and the settings chosen on training digits
# (docs/evaluation.md, "The embedded template's settings").
EMBEDDED_DIGITS = (0, 1)
EMBEDDED_SETTINGS = {"noise_level": MNIST_DEFAULTS.noise_level, "alpha": MNIST_DEFAULTS.alpha, "steps": ODE_STEPS,
                     "frames": INTERPOLATION_FRAMES}
EMBEDDED_NOTE = (
    'Runs as opened: no checkpoint, no input image; a few seconds on one CPU thread.\n'
    '\n'
    'The embedded model was trained on handwritten digits (MNIST); its MODEL, VAE and conditioning work '
    'with every Density Geodesics node and with KSampler / VAE Decode.\n'
    '\n'
    'What to change:\n'
    '- index on the two MNIST Test Digit nodes: other digits (0 to 9999; the label output says which '
    'digit).\n'
    '- frames on Geodesic Interpolation: more or fewer frames in the animation.\n'
    '- alpha on Geodesic Interpolation and Density Readout: higher weighs likely digits more, lower keeps the '
    'path straighter (0.54 was chosen on training digits). Or set strength (their last input; 0.1 is a start on '
    'any model) and the node picks alpha from the two digits.\n'
    '- noise_level on both Encode Keyframes: higher leaves the path more room, lower stays closer to the '
    'pixels.\n'
    '\n'
    'For your own images and an SD checkpoint, open "Geodesic interpolation between two images".'
)


# --- the workflows --------------------------------------------------------------------------------------
# Each template has three groups side by side: what goes in, the geodesic, what comes out.
INPUTS, GEODESIC, OUTPUTS = "Inputs", "Geodesic", "Outputs"
SOLVE_TEXT_LINES = 3  # Geodesic Interpolation's progress text ("segment 1/1, iteration 12: length ...")
# The widest rows of the tables the templates preview (nodes/plot.py), in characters: Preview as Text is made this
# wide so frontend 1.58 shows them unwrapped. The readout's "|log_p error |-1.234|largest bound of a frame's log_p|"
# with alpha as given (54), and with a compared geodesic its closure gap row (up to 101: "end log_p, path vs
# geodesic: quadrature up to 1e-05, model at least 1.2e-05"); Perceptual Metrics' "|pdv    |1.23e-05|0 = perfectly
# even steps|" (43).
READOUT_TABLE_COLUMNS = 55
COMPARED_READOUT_TABLE_COLUMNS = 101
METRICS_TABLE_COLUMNS = 43


def model_nodes(note: str = SD_NOTE) -> list[Node]:
    return [Node("note", "Note", {"text": note}, title="What to change", group=INPUTS),
            Node("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_CHECKPOINT_NAME}, group=INPUTS)]


def prompt_node(key: str, column: int) -> Node:
    return Node(key, "CLIPTextEncode", {"text": PROMPT, "clip": Link("checkpoint", "CLIP")}, group=INPUTS,
                column=column)


def encode_node(key: str, images: Link, prompt: str, column: int) -> Node:
    return Node(key, "DensityGeodesics_EncodeKeyframes",
                {"model": Link("checkpoint", "MODEL"), "positive": Link(prompt, "CONDITIONING"),
                 "image": images, "vae": Link("checkpoint", "VAE")}, group=INPUTS, column=column)


def keyframes(files: tuple[str, ...], image_columns: tuple[int, ...], prompt_column: int) -> tuple[list[Node], Link]:
    """Per file a Load Image (Inputs group, its column in `image_columns`), its Upscale Image to the common size
    (column 2), its prompt (column `prompt_column`: 2, below the Upscale Image, or 3) and its Encode Keyframes (the
    next column); the keyframes chained through Join Keyframes in play order (Geodesic group)."""
    nodes = []
    for i, (name, image_column) in enumerate(zip(files, image_columns, strict=True)):
        nodes += [Node(f"image_{i}", "LoadImage", {"image": name}, group=INPUTS, column=image_column),
                  Node(f"scale_{i}", "ImageScale", {"image": Link(f"image_{i}", "IMAGE"), "upscale_method": "lanczos",
                                                    "width": KEYFRAME_SIZE, "height": KEYFRAME_SIZE,
                                                    "crop": "center"}, group=INPUTS, column=2),
                  prompt_node(f"prompt_{i}", column=prompt_column),
                  encode_node(f"encode_{i}", Link(f"scale_{i}", "IMAGE"), f"prompt_{i}", column=prompt_column + 1)]
    joined = Link("encode_0", "path")
    for i in range(1, len(files)):
        nodes.append(Node(f"join_{i}", "DensityGeodesics_JoinKeyframes",
                          {"first": joined, "second": Link(f"encode_{i}", "path")}, group=GEODESIC))
        joined = Link(f"join_{i}", "path")
    return nodes, joined


def decode_and_save(path: Link, prefix: str) -> list[Node]:
    return [
        Node("decode", "DensityGeodesics_DecodePath",
             {"model": Link("checkpoint", "MODEL"), "path": path, "vae": Link("checkpoint", "VAE")}, group=OUTPUTS),
        Node("save", "SaveAnimatedWEBP", {"images": Link("decode", "images"), "filename_prefix": prefix,
                                          "fps": 8.0, "lossless": False, "quality": 90}, group=OUTPUTS),
    ]


def solve(keyframe_set: Link, frames: int, loop: bool) -> list[Node]:
    return [
        Node("solve", "DensityGeodesics_SolveBVP", {"model": Link("checkpoint", "MODEL"), "keyframes": keyframe_set,
                                                     "frames": frames, "loop": loop}, group=GEODESIC,
             text_lines=SOLVE_TEXT_LINES),
        Node("solve_report", "PreviewAny", {"source": Link("solve", "report")}, group=GEODESIC),
    ]


def interpolation() -> list[Node]:
    """Two images -> the density geodesic between them, 17 frames, as an animated WEBP, with the frames'
    perceptual smoothness (per-step LPIPS plot, PPL and PDV)."""
    nodes, joined = keyframes(KEYFRAME_FILES[:2], image_columns=(1, 1), prompt_column=2)
    return [*model_nodes(), *nodes, *solve(joined, frames=INTERPOLATION_FRAMES, loop=False),
            *decode_and_save(Link("solve", "path"), "geodesic_interpolation"),
            Node("metrics", "DensityGeodesics_PerceptualMetrics", {"images": Link("decode", "images")}, group=OUTPUTS,
                 column=1),
            Node("metrics_table", "PreviewAny", {"source": Link("metrics", "table")}, group=OUTPUTS, column=1,
                 text_columns=METRICS_TABLE_COLUMNS)]


def keyframes_loop() -> list[Node]:
    """Three keyframes in a closed loop: 24 frames that repeat seamlessly."""
    # Three Load Images are taller than the view: the third goes below Load Checkpoint.
    nodes, joined = keyframes(KEYFRAME_FILES, image_columns=(1, 1, 0), prompt_column=3)
    return [*model_nodes(), *nodes, *solve(joined, frames=LOOP_FRAMES, loop=True),
            *decode_and_save(Link("solve", "path"), "geodesic_loop")]


def extrapolation() -> list[Node]:
    """A 9-frame geodesic between two images, continued 8 frames past its end along the geodesic."""
    nodes, joined = keyframes(KEYFRAME_FILES[:2], image_columns=(1, 1), prompt_column=2)
    return [*model_nodes(), *nodes, *solve(joined, frames=EXTRAPOLATION_BVP_FRAMES, loop=False),
            Node("extrapolate", "DensityGeodesics_SolveIVP", {"model": Link("checkpoint", "MODEL"),
                                                               "path": Link("solve", "path"),
                                                               "frames": EXTRAPOLATED_FRAMES}, group=GEODESIC,
                 column=1),
            Node("join", "DensityGeodesics_JoinKeyframes", {"first": Link("solve", "path"),
                                                             "second": Link("extrapolate", "path")}, group=GEODESIC,
                 column=1),
            *decode_and_save(Link("join", "path"), "geodesic_extrapolation")]


def video_analysis() -> list[Node]:
    """Frames of a clip (an animated image) -> per-frame density plot and the clip's geodesic efficiency."""
    return [*model_nodes(VIDEO_NOTE), Node("clip_frames", "LoadImage", {"image": CLIP_FILE}, group=INPUTS, column=1),
            prompt_node("prompt", column=1),
            encode_node("encode", Link("clip_frames", "IMAGE"), "prompt", column=2),
            Node("readout", "DensityGeodesics_DensityReadout", {"model": Link("checkpoint", "MODEL"),
                                                                 "path": Link("encode", "path")}, group="Readout"),
            Node("save_plot", "SaveImage", {"images": Link("readout", "plot"),
                                            "filename_prefix": "video_density"}, group=OUTPUTS),
            # one column: the table is wide, and the opening view has room below, not beside
            Node("efficiency", "PreviewAny", {"source": Link("readout", "efficiency")}, group=OUTPUTS),
            Node("table", "PreviewAny", {"source": Link("readout", "table")}, group=OUTPUTS,
                 text_columns=COMPARED_READOUT_TABLE_COLUMNS)]


def embedded_digits() -> list[Node]:
    """Two held-out MNIST digits on the embedded model: encode, geodesic, decode to an animated WEBP, and the
    density readout of the path (plot and table). Needs no file."""
    model, vae, conditioning = (Link("embedded", name) for name in ("model", "vae", "conditioning"))
    nodes = [Node("note", "Note", {"text": EMBEDDED_NOTE}, title="Start here", group=INPUTS),
             Node("embedded", "DensityGeodesics_LoadEmbeddedModel", group=INPUTS)]
    for i, index in enumerate(EMBEDDED_DIGITS):
        nodes += [Node(f"digit_{i}", "DensityGeodesics_MnistTestDigit", {"index": index}, group=INPUTS, column=1),
                  Node(f"encode_{i}", "DensityGeodesics_EncodeKeyframes",
                       {"model": model, "positive": conditioning, "image": Link(f"digit_{i}", "image"), "vae": vae,
                        "noise_level": EMBEDDED_SETTINGS["noise_level"], "steps": EMBEDDED_SETTINGS["steps"]},
                       group=INPUTS, column=2)]
    alpha = EMBEDDED_SETTINGS["alpha"]
    return [*nodes,
            Node("join", "DensityGeodesics_JoinKeyframes", {"first": Link("encode_0", "path"),
                                                             "second": Link("encode_1", "path")}, group=GEODESIC),
            Node("solve", "DensityGeodesics_SolveBVP", {"model": model, "keyframes": Link("join", "path"),
                                                         "frames": EMBEDDED_SETTINGS["frames"], "alpha": alpha},
                 group=GEODESIC, text_lines=SOLVE_TEXT_LINES),
            Node("solve_report", "PreviewAny", {"source": Link("solve", "report")}, group=GEODESIC),
            Node("decode", "DensityGeodesics_DecodePath", {"model": model, "path": Link("solve", "path"), "vae": vae,
                                                           "steps": EMBEDDED_SETTINGS["steps"]}, group=OUTPUTS),
            Node("save", "SaveAnimatedWEBP", {"images": Link("decode", "images"), "filename_prefix": "digits_geodesic",
                                              "fps": 8.0, "lossless": False, "quality": 90}, group=OUTPUTS),
            Node("readout", "DensityGeodesics_DensityReadout", {"model": model, "path": Link("solve", "path"),
                                                                "compare_geodesic": False, "alpha": alpha},
                 group=OUTPUTS, column=1),
            # the readout's plot below it, its (wide) table below the animation: the opening view has room below,
            # not beside
            Node("save_plot", "SaveImage", {"images": Link("readout", "plot"), "filename_prefix": "digits_density"},
                 group=OUTPUTS, column=1),
            Node("table", "PreviewAny", {"source": Link("readout", "table")}, group=OUTPUTS,
                 text_columns=READOUT_TABLE_COLUMNS)]


def with_short_titles(spec: list[Node], object_info: dict) -> list[Node]:
    """The pack's nodes titled by their names without the pack's, which the node's badge shows: narrower nodes,
    and the names the README and the notes use."""
    for node in spec:
        if node.type.startswith("DensityGeodesics_") and node.title is None:
            name = object_info[node.type]["display_name"]
            node.title = name.replace(" (Density Geodesics)", "").replace(", Density Geodesics)", ")")
    return spec


WORKFLOWS = {
    EMBEDDED_TEMPLATE: embedded_digits,
    INTERPOLATION_TEMPLATE: interpolation,
    LOOP_TEMPLATE: keyframes_loop,
    EXTRAPOLATION_TEMPLATE: extrapolation,
    VIDEO_TEMPLATE: video_analysis,
}
SD_TEMPLATES = [name for name in WORKFLOWS if name != EMBEDDED_TEMPLATE]  # need an SD checkpoint to run


# --- thumbnails -----------------------------------------------------------------------------------------

def run_template(server: ComfyServer, workflow: dict, object_info: dict) -> tuple[dict, PromptResult]:
    prompt = ui_to_api(workflow, object_info)
    result = server.run(prompt, timeout_s=600.0)
    if result.status != "success":
        raise RuntimeError(f"a template failed on the test server: {result.error_message}")
    return prompt, result


def embedded_thumbnail(server: ComfyServer, workflow: dict, object_info: dict) -> Image.Image:
    """The embedded template's own animation, run as opened on the server: GRID x GRID of its frames."""
    log_start = len(server.log_text())
    prompt, result = run_template(server, workflow, object_info)
    print(f"{EMBEDDED_TEMPLATE}: {result.wall_s:.1f} s through POST /prompt")
    for line in server.log_text()[log_start:].splitlines():
        if "DensityGeodesics" in line and "latents evaluated" in line:
            print("  " + line.strip())
    (save_node,) = [i for i, node in prompt.items() if node["class_type"] == "SaveAnimatedWEBP"]
    (entry,) = result.output_files(save_node)
    with Image.open(server.output_path(entry)) as animation:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(animation)]
    picks = np.linspace(0, len(frames) - 1, GRID * GRID).round().astype(int)
    cell = THUMBNAIL_SIZE // GRID
    sheet = Image.new("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE), "white")
    for slot, index in enumerate(picks):
        tile = frames[index].resize((cell - 8, cell - 8), Image.NEAREST)
        sheet.paste(tile, ((slot % GRID) * cell + 4, (slot // GRID) * cell + 4))
    return sheet


def graph_thumbnail(name: str, screenshot: Path) -> Image.Image:
    """A template that needs an SD checkpoint: its groups as the pinned frontend draws them on opening (the
    real-browser test's screenshot of a VIEWPORT-sized window, at the file's own view), above a caption that says
    that this is the graph, not a result."""
    workflow = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())
    scale, (offset_x, offset_y) = workflow["extra"]["ds"]["scale"], workflow["extra"]["ds"]["offset"]
    right = max(x + w for x, _, w, _ in (group["bounding"] for group in workflow["groups"]))
    bottom = max(y + h for _, y, _, h in (group["bounding"] for group in workflow["groups"]))
    with Image.open(screenshot) as shot:
        if shot.size != (VIEWPORT["width"], VIEWPORT["height"]):
            raise ValueError(f"{screenshot}: {shot.size}, not the {VIEWPORT} window the view was laid out for")
        box = [round(x * scale) for x in (offset_x, offset_y, right + offset_x, bottom + offset_y)]
        graph = shot.convert("RGB").crop((box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4))
    width = THUMBNAIL_SIZE - 2 * THUMBNAIL_MARGIN
    graph = graph.resize((width, round(graph.height * width / graph.width)), Image.LANCZOS)
    caption_height = sum(round(size * CAPTION_LINE_SPACING) for _, size in GRAPH_CAPTION)
    top = (THUMBNAIL_SIZE - graph.height - 2 * THUMBNAIL_MARGIN - caption_height) // 2  # the whole block centred
    sheet = Image.new("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE), CANVAS_COLOUR)
    sheet.paste(graph, (THUMBNAIL_MARGIN, top))
    draw = ImageDraw.Draw(sheet)
    top += graph.height + 2 * THUMBNAIL_MARGIN
    for line, size in GRAPH_CAPTION:
        draw.text((THUMBNAIL_SIZE // 2, top), line, fill="white", font=ImageFont.load_default(size), anchor="ma")
        top += round(size * CAPTION_LINE_SPACING)
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.make_workflows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-thumbnails", action="store_true",
                        help="write the templates only and leave the thumbnail as it is (no run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "comfy")
        try:
            write_example_inputs(server.input_dir)
            object_info = server.object_info()
            workflows = {name: build_ui_workflow(with_short_titles(make(), object_info), object_info)
                         for name, make in WORKFLOWS.items()}
            thumbnail = None if args.skip_thumbnails else \
                embedded_thumbnail(server, workflows[EMBEDDED_TEMPLATE], object_info)
        finally:
            server.stop()
    for old in [*WORKFLOWS_DIR.glob("*.json"), *WORKFLOWS_DIR.glob("*.jpg")]:
        if old.stem not in WORKFLOWS:
            old.unlink()
    for name, workflow in workflows.items():
        (WORKFLOWS_DIR / f"{name}.json").write_text(json.dumps(workflow, indent=2) + "\n")
    if thumbnail is not None:
        thumbnail.save(WORKFLOWS_DIR / f"{EMBEDDED_TEMPLATE}.jpg", quality=88)
    print(f"wrote {len(WORKFLOWS)} templates{'' if thumbnail is None else ' and the first one’s thumbnail'} to "
          f"{WORKFLOWS_DIR}; the others' thumbnails come from the browser: python -m scripts.make_readme_pictures")


if __name__ == "__main__":
    main()
