"""In-process ComfyUI for node tests: the real ComfyUI 0.3.75 tree on CPU, the pack imported as a package.

Import this module before anything from ComfyUI. It puts .comfyui/ComfyUI on sys.path, forces CPU,
imports `utils.install_util` and `server` before `nodes` (ComfyUI's nodes.py puts comfy/ first on
sys.path, which would shadow its top-level `utils` package), and imports the repository as the package
`density_geodesics` through a symlink in a temporary folder, exactly as ComfyUI loads it from
custom_nodes/.
"""
from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_DIR = ROOT / ".comfyui" / "ComfyUI"
CHECKPOINT = COMFY_DIR / "models" / "checkpoints" / "tiny_sd15.safetensors"
PACK_NAME = "density_geodesics"

if not CHECKPOINT.is_file():
    raise FileNotFoundError(f"{CHECKPOINT} is missing: run `bash dev.sh setup` first")
if str(COMFY_DIR) not in sys.path:
    sys.path.insert(0, str(COMFY_DIR))

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True
# Order matters (see module docstring), so these are not plain import statements an import sorter reorders.
for _module in ("utils.install_util", "server", "comfy.sd"):
    importlib.import_module(_module)
import comfy.sd  # noqa: E402


def import_pack():
    """The repository imported as a package, the way ComfyUI imports custom_nodes/<folder>."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    link_dir = Path(tempfile.mkdtemp(prefix="dg_pack_"))
    (link_dir / PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(link_dir))
    return importlib.import_module(PACK_NAME)


def load_tiny_checkpoint():
    """(MODEL, CLIP, VAE) of the generated random-weight SD1.5-layout checkpoint."""
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(CHECKPOINT), output_vae=True,
                                                                output_clip=True)
    return model, clip, vae


def encode_prompt(clip, text: str) -> list:
    """CONDITIONING exactly as the core CLIP Text Encode node makes it."""
    import nodes

    return nodes.CLIPTextEncode().encode(clip, text)[0]
