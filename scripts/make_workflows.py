"""Regenerate the example workflows (workflows/*.json, UI format) and their .jpg thumbnails.

    bash dev.sh py -m scripts.make_workflows

Starts a real ComfyUI with this pack (the same set-up as the tests), builds each workflow from the
server's own /object_info (so widget order matches the installed node schemas), then loads every
workflow into the real frontend in headless chromium and saves a screenshot of the graph as its
thumbnail. Only core nodes plus this pack's nodes are used.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from devtools.comfy_browser import fit_view, graph_clip, launch_chromium, load_workflow, open_app
from devtools.comfy_server import (
    CLIP_FILE,
    KEYFRAME_FILES,
    TEMPLATE_CHECKPOINT_NAME,
    WORKFLOWS_DIR,
    start_server,
    write_example_inputs,
)
from devtools.workflow_build import Link, Node, build_ui_workflow

THUMBNAIL_SIZE = (640, 400)
THUMBNAIL_VIEWPORT = {"width": 2200, "height": 1100}  # large enough that "fit view" keeps node text legible
PROMPT = "a handwritten digit, black ink on white paper"


def model_nodes() -> list[Node]:
    return [
        Node("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_CHECKPOINT_NAME}),
        Node("prompt", "CLIPTextEncode", {"text": PROMPT, "clip": Link("checkpoint", "CLIP")}),
    ]


def keyframe_images(files: tuple[str, ...]) -> list[Node]:
    """LoadImage per file, chained through ImageBatch into one batch whose order is the play order."""
    nodes = [Node(f"image_{i}", "LoadImage", {"image": name}) for i, name in enumerate(files)]
    batch = Link("image_0", "IMAGE")
    for i in range(1, len(files)):
        nodes.append(Node(f"batch_{i}", "ImageBatch", {"image1": batch, "image2": Link(f"image_{i}", "IMAGE")}))
        batch = Link(f"batch_{i}", "IMAGE")
    return nodes


def encode(images: Link) -> Node:
    return Node("encode", "DensityGeodesics_EncodeKeyframes",
                {"model": Link("checkpoint", "MODEL"), "positive": Link("prompt", "CONDITIONING"),
                 "image": images, "vae": Link("checkpoint", "VAE")})


def decode_and_save(path: Link, prefix: str) -> list[Node]:
    return [
        Node("decode", "DensityGeodesics_DecodePath",
             {"model": Link("checkpoint", "MODEL"), "path": path, "vae": Link("checkpoint", "VAE")}),
        Node("save", "SaveAnimatedWEBP", {"images": Link("decode", "images"), "filename_prefix": prefix,
                                          "fps": 8.0, "lossless": False, "quality": 90}),
    ]


def solve(keyframes: Link, frames: int, loop: bool) -> list[Node]:
    return [
        Node("solve", "DensityGeodesics_SolveBVP", {"model": Link("checkpoint", "MODEL"), "keyframes": keyframes,
                                                     "frames": frames, "loop": loop}),
        Node("solve_report", "PreviewAny", {"source": Link("solve", "report")}),
    ]


def interpolation() -> list[Node]:
    """Two images -> the density geodesic between them, 17 frames, as an animated WEBP."""
    return [*model_nodes(), *keyframe_images(KEYFRAME_FILES[:2]), encode(Link("batch_1", "IMAGE")),
            *solve(Link("encode", "path"), frames=17, loop=False),
            *decode_and_save(Link("solve", "path"), "geodesic_interpolation")]


def keyframes_loop() -> list[Node]:
    """Three keyframes in a closed loop: 24 frames that repeat seamlessly."""
    return [*model_nodes(), *keyframe_images(KEYFRAME_FILES), encode(Link("batch_2", "IMAGE")),
            *solve(Link("encode", "path"), frames=24, loop=True),
            *decode_and_save(Link("solve", "path"), "geodesic_loop")]


def extrapolation() -> list[Node]:
    """A 9-frame geodesic between two images, continued 8 frames past its end along the geodesic."""
    return [*model_nodes(), *keyframe_images(KEYFRAME_FILES[:2]), encode(Link("batch_1", "IMAGE")),
            *solve(Link("encode", "path"), frames=9, loop=False),
            Node("extrapolate", "DensityGeodesics_SolveIVP", {"model": Link("checkpoint", "MODEL"),
                                                               "path": Link("solve", "path"), "frames": 8}),
            Node("join", "DensityGeodesics_JoinKeyframes", {"first": Link("solve", "path"),
                                                             "second": Link("extrapolate", "path")}),
            *decode_and_save(Link("join", "path"), "geodesic_extrapolation")]


def video_analysis() -> list[Node]:
    """Frames of a clip (an animated image) -> per-frame density plot and the clip's geodesic efficiency."""
    return [*model_nodes(), Node("clip_frames", "LoadImage", {"image": CLIP_FILE}),
            encode(Link("clip_frames", "IMAGE")),
            Node("readout", "DensityGeodesics_DensityReadout", {"model": Link("checkpoint", "MODEL"),
                                                                 "path": Link("encode", "path")}),
            Node("save_plot", "SaveImage", {"images": Link("readout", "plot"),
                                            "filename_prefix": "video_density"}),
            Node("efficiency", "PreviewAny", {"source": Link("readout", "efficiency")}),
            Node("table", "PreviewAny", {"source": Link("readout", "table")})]


WORKFLOWS = {
    "geodesic_interpolation": interpolation,
    "geodesic_keyframes_loop": keyframes_loop,
    "geodesic_extrapolation": extrapolation,
    "video_density_analysis": video_analysis,
}


def write_thumbnails(server_url: str, workflows: dict[str, dict]) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = open_app(browser, server_url, THUMBNAIL_VIEWPORT)
            for name, workflow in workflows.items():
                load_workflow(page, workflow, name)
                fit_view(page)
                with tempfile.TemporaryDirectory() as scratch:
                    png = Path(scratch) / "graph.png"
                    page.screenshot(path=str(png), clip=graph_clip(page))
                    thumbnail = Image.open(png).convert("RGB")
                    thumbnail.thumbnail(THUMBNAIL_SIZE, Image.LANCZOS)
                    thumbnail.save(WORKFLOWS_DIR / f"{name}.jpg", quality=88)
        finally:
            browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as base:
        server = start_server(Path(base) / "comfy")
        try:
            write_example_inputs(server.input_dir)
            object_info = server.object_info()
            workflows = {name: build_ui_workflow(make(), object_info) for name, make in WORKFLOWS.items()}
            for name, workflow in workflows.items():
                (WORKFLOWS_DIR / f"{name}.json").write_text(json.dumps(workflow, indent=2) + "\n")
            write_thumbnails(server.url, workflows)
        finally:
            server.stop()
    print(f"wrote {len(WORKFLOWS)} workflows and thumbnails to {WORKFLOWS_DIR}")


if __name__ == "__main__":
    main()
