"""Regenerate every picture of the README and the node help pages from the code, into web/docs/images/, and
the templates with their thumbnails (scripts/make_workflows.py) first, so the screenshots show them.

    python -m scripts.make_readme_pictures                 # everything (20-30 minutes on 2 busy cores)
    python -m scripts.make_readme_pictures --skip-browser  # only what needs no browser (the first template still
                                                           # runs on a ComfyUI server for its thumbnail)
    python -m scripts.make_readme_pictures --skip-demos    # only the templates and what the browser shows

web/docs/ is the pack's WEB_DIRECTORY, so ComfyUI serves these files to the help pages; the README shows
the same files. The help pages show the *_narrow versions of the demo and settings pictures: the same figures
laid out for their side panel, about 280 px wide (the help page cannot link to a larger picture: on frontend
1.32 such a link leads nowhere). The ComfyUI screenshots come from the real-browser test (tests/test_browser.py writes
them to test-artifacts/browser/), run here through pytest rather than a second browser harness; the
thumbnails of the templates that need an SD checkpoint are made from them (their graph, captioned so)."""

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image, ImageSequence

from devtools.comfy_server import EXTRAPOLATION_TEMPLATE, LOOP_TEMPLATE, VIDEO_TEMPLATE
from digits.latent_model import load_mnist_model
from digits.main import main as digits_demo
from digits.mnist import load_split, pick_pairs
from digits.render import NARROW_DPI, NARROW_INCHES, NARROW_TEXT_CHARS, frame_colormap, tile_frames
from digits.settings import MNIST_DEFAULTS
from geodesic_core import solve_bvp
from geodesic_pipeline.compare import to_common_radius
from scripts.make_workflows import SD_TEMPLATES, WORKFLOWS_DIR, graph_thumbnail
from scripts.make_workflows import main as make_workflows

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "web" / "docs" / "images"
SCREENSHOTS = ROOT / "test-artifacts" / "browser"
# Browser screenshots in the README and help pages: test screenshot name -> picture name. PNG and GIF only:
# aiohttp, which serves WEB_DIRECTORY, sends .webp as application/octet-stream on Python 3.11.
# The SD templates are shown as loaded (their graph): a real SD checkpoint cannot run here, and the test
# checkpoint's random weights would show noise.
BROWSER_PICTURES = {
    "embedded_template_ran.png": "comfyui_embedded.png",
    f"{LOOP_TEMPLATE}.png": "comfyui_keyframes_loop.png",
    f"{EXTRAPOLATION_TEMPLATE}.png": "comfyui_extrapolation.png",
    f"{VIDEO_TEMPLATE}.png": "comfyui_video_density.png",
}
BROWSER_TESTS = "embedded_template_runs or workflow_loads"
SETTINGS_FRAMES = 11  # frames per row in the alpha / noise-level picture
NOISE_LEVEL, ALPHA = MNIST_DEFAULTS.noise_level, MNIST_DEFAULTS.alpha
SETTINGS_ROWS = [(NOISE_LEVEL, 0.05), (NOISE_LEVEL, ALPHA), (NOISE_LEVEL, 4 * ALPHA), (0.4, ALPHA), (0.6, ALPHA)]
NOISY_LEVELS = (0.2, 0.4, 0.6, 0.8)


def progress(message: str) -> None:
    print(f"[pictures] {message}", file=sys.stderr, flush=True)


def demo_pictures(work: Path) -> None:
    out = work / "digits"
    if digits_demo(["--out", str(out), "--narrow-pictures"]) != 0:
        raise RuntimeError("the digits demo failed")
    for suffix in ("", "_narrow"):
        shutil.copy(out / f"strip{suffix}.png", IMAGES / f"digits_strip{suffix}.png")
        shutil.copy(out / f"density{suffix}.png", IMAGES / f"digits_density{suffix}.png")
        with Image.open(out / f"animation{suffix}.webp") as animation:
            frames = [frame.convert("L") for frame in ImageSequence.Iterator(animation)]
            duration = animation.info["duration"]
        frames[0].save(IMAGES / f"digits_geodesic{suffix}.gif", save_all=True, append_images=frames[1:],
                       duration=duration, loop=0)


def mixture_picture(work: Path) -> None:
    subprocess.run([sys.executable, "-m", "scripts.mixture_demo", "--out", str(work / "mixture")], cwd=ROOT,
                   check=True)
    shutil.copy(work / "mixture" / "mixture_geodesic.png", IMAGES / "mixture_geodesic.png")


def frames_row(ax, frames: torch.Tensor, label: str, heading: str = "", *, narrow: bool = False) -> None:
    """One row of frames, labelled at its left (``narrow``: the heading and the label above it)."""
    ax.imshow(tile_frames(frames), cmap=frame_colormap(), vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if narrow:
        lines = [textwrap.fill(heading, NARROW_TEXT_CHARS), ""] if heading else []
        ax.set_title("\n".join([*lines, label.replace("\n", " ")]), fontsize=8, loc="left")
    else:
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
        if heading:
            ax.set_title(heading, fontsize=10, loc="left")


def save_rows(rows: list[tuple[torch.Tensor, str]], heading: str, name: str, wide_inches: float) -> None:
    """Rows of (frames, label) under a heading, as ``name`` (a figure ``wide_inches`` wide) and as its narrow
    version ``<name>_narrow.png`` (about 280 px wide in a help page)."""
    height, width = tile_frames(rows[0][0]).shape
    row_inches = 0.3 + NARROW_INCHES * height / width  # a narrow row: its label, then its frames
    for narrow in (False, True):
        size = (NARROW_INCHES, row_inches * len(rows) + 0.35) if narrow else (wide_inches, 0.8 * len(rows) + 0.5)
        fig = Figure(figsize=size)
        for k, (ax, (frames, label)) in enumerate(zip(fig.subplots(len(rows), 1), rows, strict=True)):
            frames_row(ax, frames, label, heading if k == 0 else "", narrow=narrow)
        fig.tight_layout()
        fig.savefig(IMAGES / (f"{name}_narrow.png" if narrow else f"{name}.png"), dpi=NARROW_DPI if narrow else 100)


def settings_picture() -> None:
    """The sphere geodesic between the demo's two digits for several alphas and noise levels."""
    images, labels = load_split("held_out")
    (i, j), = pick_pairs(labels, 1, 0)  # the demo's default pair
    rows = []
    for noise_level, alpha in SETTINGS_ROWS:
        model = load_mnist_model(noise_level)
        a, b = to_common_radius(*model.to_latents(images[[i, j]]))
        path = solve_bvp(model.field, a, b, n_points=SETTINGS_FRAMES, alpha=alpha, sphere=True)
        rows.append((model.to_images(path.points), f"noise {noise_level}, alpha {alpha}"))
    save_rows(rows, "sphere geodesic between the same two digits (slerp is the limit alpha -> 0)",
              "alpha_noise_level", 9)


def noisy_latents_picture() -> None:
    """A digit, its noisy latent at several noise levels decoded by the VAE as it is (what the path's points
    look like before denoising), and the clean frame generated back from each."""
    images, _ = load_split("held_out")
    digit = images[:1]
    latents, decoded = [], []
    for noise_level in NOISY_LEVELS:
        model = load_mnist_model(noise_level)
        latent = model.to_latents(digit)
        latents.append(model.decode(latent))
        decoded.append(model.to_images(latent))
    save_rows([(torch.cat([digit, *latents]), "noisy latent,\nVAE-decoded"),
               (torch.cat([digit, *decoded]), "decoded")],
              f"clean, then noise level {', '.join(str(n) for n in NOISY_LEVELS)}", "noisy_latents", 6)


def browser_pictures() -> None:
    """Run the real-browser test (it writes its screenshots), then keep the ones the docs show, as WebP."""
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_browser.py", "-k", BROWSER_TESTS], cwd=ROOT,
                   check=True)
    for source, target in BROWSER_PICTURES.items():
        with Image.open(SCREENSHOTS / source) as shot:
            # 256 colours are plenty for the UI and keep each file near 100 KiB
            shot.convert("RGB").quantize(256).save(IMAGES / target, optimize=True)
    for name in SD_TEMPLATES:
        graph_thumbnail(name, SCREENSHOTS / f"{name}.png").save(WORKFLOWS_DIR / f"{name}.jpg", quality=88)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.make_readme_pictures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-browser", action="store_true",
                        help="leave the ComfyUI screenshots and the SD templates' thumbnails as they are")
    parser.add_argument("--skip-demos", action="store_true",
                        help="leave the pictures of the digits and mixture demos and of the settings as they are")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # batches of 4x8x8 latents: threads only slow a shared CPU down
    progress("templates and their thumbnails, from real runs")
    make_workflows([])
    IMAGES.mkdir(parents=True, exist_ok=True)
    if not args.skip_demos:
        with tempfile.TemporaryDirectory() as work:
            progress("digits demo")
            demo_pictures(Path(work))
            progress("mixture demo")
            mixture_picture(Path(work))
        progress("alpha and noise level")
        settings_picture()
        noisy_latents_picture()
    if not args.skip_browser:
        progress("real-browser test, and the SD templates' thumbnails from its screenshots")
        browser_pictures()
    for picture in sorted(IMAGES.iterdir()):
        progress(f"{picture.relative_to(ROOT)}: {picture.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
