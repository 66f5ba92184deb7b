"""Regenerate the templates (example_workflows/*.json, UI format) and their .jpg thumbnails.

    bash dev.sh py -m scripts.make_workflows                    # templates and thumbnails (runs them)
    bash dev.sh py -m scripts.make_workflows --skip-thumbnails  # only the templates

Starts a real ComfyUI with this pack (the same set-up as the tests) and builds each workflow from the
server's own /object_info, so widget order matches the installed node schemas. Only core nodes plus this
pack's nodes are used; keyframes are encoded one image per Encode Keyframes and joined with Join
Keyframes, so images of different sizes meet the pack's own size check (core Batch Images would rescale
them silently, and current ComfyUI marks it deprecated).

Thumbnails show results, never the graph: the animations' frames come from the same solves on the
embedded digits model (a learned density, where frames are legible; the test checkpoint has random
weights), and the video template's thumbnail is the density plot the workflow itself writes when it
runs on the test server (random weights: its numbers mean nothing, its form is the real output). The
template browser shows thumbnails square, so they are square.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps, ImageSequence

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
from digits.data_8x8 import load_split
from digits.model_8x8 import load_8x8_model
from digits.settings import DEFAULTS_8X8, MNIST_DEFAULTS, ODE_STEPS
from geodesic_core import solve_bvp, solve_ivp
from geodesic_pipeline.keyframes import on_common_sphere

THUMBNAIL_SIZE = 512
GRID = 3  # frames per row and column of an animation's thumbnail
EXTRAPOLATED_BORDER = (251, 133, 0)  # frames past the last keyframe are framed in orange
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
KEYFRAME_CLASSES = (0, 3, 6)  # the digits the example keyframe images show (devtools.comfy_server.KEYFRAME_DIGITS)
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
    '- frames on Solve BVP: more or fewer frames in the animation.\n'
    '- alpha on Solve BVP and Density Readout: higher pulls the path harder through likely digits, lower '
    'keeps it straighter (0.54 was chosen on training digits).\n'
    '- noise_level on both Encode Keyframes: higher leaves the path more room, lower stays closer to the '
    'pixels.\n'
    '\n'
    'For your own images and an SD checkpoint, open "Geodesic interpolation between two images".'
)


# --- the workflows --------------------------------------------------------------------------------------
# Each template has three groups side by side: what goes in, the geodesic, what comes out.
INPUTS, GEODESIC, OUTPUTS = "Inputs", "Geodesic", "Outputs"


def model_nodes() -> list[Node]:
    return [Node("note", "Note", {"text": SD_NOTE}, title="What to change", group=INPUTS),
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
                                                     "frames": frames, "loop": loop}, group=GEODESIC),
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
            Node("metrics_table", "PreviewAny", {"source": Link("metrics", "table")}, group=OUTPUTS, column=1)]


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
    return [*model_nodes(), Node("clip_frames", "LoadImage", {"image": CLIP_FILE}, group=INPUTS, column=1),
            prompt_node("prompt", column=1),
            encode_node("encode", Link("clip_frames", "IMAGE"), "prompt", column=2),
            Node("readout", "DensityGeodesics_DensityReadout", {"model": Link("checkpoint", "MODEL"),
                                                                 "path": Link("encode", "path")}, group="Readout"),
            Node("save_plot", "SaveImage", {"images": Link("readout", "plot"),
                                            "filename_prefix": "video_density"}, group=OUTPUTS),
            Node("efficiency", "PreviewAny", {"source": Link("readout", "efficiency")}, group=OUTPUTS, column=1),
            Node("table", "PreviewAny", {"source": Link("readout", "table")}, group=OUTPUTS, column=1)]


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
                 group=GEODESIC),
            Node("solve_report", "PreviewAny", {"source": Link("solve", "report")}, group=GEODESIC),
            Node("decode", "DensityGeodesics_DecodePath", {"model": model, "path": Link("solve", "path"), "vae": vae,
                                                           "steps": EMBEDDED_SETTINGS["steps"]}, group=OUTPUTS),
            Node("save", "SaveAnimatedWEBP", {"images": Link("decode", "images"), "filename_prefix": "digits_geodesic",
                                              "fps": 8.0, "lossless": False, "quality": 90}, group=OUTPUTS),
            Node("readout", "DensityGeodesics_DensityReadout", {"model": model, "path": Link("solve", "path"),
                                                                "compare_geodesic": False, "alpha": alpha},
                 group=OUTPUTS, column=1),
            Node("save_plot", "SaveImage", {"images": Link("readout", "plot"), "filename_prefix": "digits_density"},
                 group=OUTPUTS, column=2),
            Node("table", "PreviewAny", {"source": Link("readout", "table")}, group=OUTPUTS, column=2)]


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


# --- thumbnails -----------------------------------------------------------------------------------------

def frame_grid(frames: torch.Tensor, extrapolated_from: int | None = None) -> Image.Image:
    """GRID x GRID frames spread evenly over the animation, dark ink on white like the example images."""
    picks = np.linspace(0, len(frames) - 1, GRID * GRID).round().astype(int)
    cell = THUMBNAIL_SIZE // GRID
    sheet = Image.new("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE), "white")
    for slot, index in enumerate(picks):
        ink = ((frames[index, 0].clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
        tile = ImageOps.invert(Image.fromarray(ink).convert("RGB")).resize((cell - 8, cell - 8), Image.NEAREST)
        x, y = (slot % GRID) * cell + 4, (slot // GRID) * cell + 4
        sheet.paste(tile, (x, y))
        if extrapolated_from is not None and index >= extrapolated_from:
            ImageDraw.Draw(sheet).rectangle((x, y, x + cell - 9, y + cell - 9), outline=EXTRAPOLATED_BORDER, width=5)
    return sheet


def digits_animation_thumbnails() -> dict[str, Image.Image]:
    """The three animation templates' solves on the embedded digits model, decoded."""
    model = load_8x8_model()
    images, labels = load_split("held_out")
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in KEYFRAME_CLASSES]
    keys = on_common_sphere(model.to_latents(images[picks]))

    def geodesic(a: torch.Tensor, b: torch.Tensor, frames: int):
        return solve_bvp(model.field, a, b, n_points=frames, alpha=DEFAULTS_8X8.alpha, sphere=True)

    interpolation_path = geodesic(keys[0], keys[1], INTERPOLATION_FRAMES).points
    segments = [geodesic(keys[k], keys[(k + 1) % 3], LOOP_FRAMES // 3 + 1).points[:-1] for k in range(3)]
    short = geodesic(keys[0], keys[1], EXTRAPOLATION_BVP_FRAMES)
    # Solve IVP's step: the geodesic's end tangent per frame step, shot for EXTRAPOLATED_FRAMES frames.
    step = short.end_tangent / (EXTRAPOLATION_BVP_FRAMES - 1)
    onward = solve_ivp(model.field, short.points[-1], step * EXTRAPOLATED_FRAMES, n_steps=EXTRAPOLATED_FRAMES,
                       alpha=DEFAULTS_8X8.alpha, sphere=True).points[1:]
    return {
        INTERPOLATION_TEMPLATE: frame_grid(model.to_images(interpolation_path)),
        LOOP_TEMPLATE: frame_grid(model.to_images(torch.cat(segments))),
        EXTRAPOLATION_TEMPLATE: frame_grid(model.to_images(torch.cat([short.points, onward])),
                                           extrapolated_from=EXTRAPOLATION_BVP_FRAMES),
    }


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


def density_plot_thumbnail(server: ComfyServer, workflow: dict, object_info: dict) -> Image.Image:
    """The plot the video template writes with its own settings, run on the test server."""
    prompt, result = run_template(server, workflow, object_info)
    (plot_node,) = [i for i, node in prompt.items() if node["class_type"] == "SaveImage"]
    (entry,) = result.output_files(plot_node)
    with Image.open(server.output_path(entry)) as plot:
        return ImageOps.pad(plot.convert("RGB"), (THUMBNAIL_SIZE, THUMBNAIL_SIZE), color="white")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.make_workflows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-thumbnails", action="store_true",
                        help="write the templates only and leave the thumbnails as they are (no runs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "comfy")
        try:
            write_example_inputs(server.input_dir)
            object_info = server.object_info()
            workflows = {name: build_ui_workflow(with_short_titles(make(), object_info), object_info)
                         for name, make in WORKFLOWS.items()}
            if not args.skip_thumbnails:
                thumbnails = {VIDEO_TEMPLATE: density_plot_thumbnail(server, workflows[VIDEO_TEMPLATE], object_info),
                              EMBEDDED_TEMPLATE: embedded_thumbnail(server, workflows[EMBEDDED_TEMPLATE], object_info)}
        finally:
            server.stop()
    if not args.skip_thumbnails:
        thumbnails |= digits_animation_thumbnails()
    for old in [*WORKFLOWS_DIR.glob("*.json"), *([] if args.skip_thumbnails else WORKFLOWS_DIR.glob("*.jpg"))]:
        old.unlink()
    for name, workflow in workflows.items():
        (WORKFLOWS_DIR / f"{name}.json").write_text(json.dumps(workflow, indent=2) + "\n")
        if not args.skip_thumbnails:
            thumbnails[name].save(WORKFLOWS_DIR / f"{name}.jpg", quality=88)
    print(f"wrote {len(WORKFLOWS)} templates{'' if args.skip_thumbnails else ' and thumbnails'} to {WORKFLOWS_DIR}")


if __name__ == "__main__":
    main()
