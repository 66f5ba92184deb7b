"""The development harness for in-process ComfyUI, shared by the tests, the benchmarks and the scripts.

Paths (the repository, the ComfyUI tree `bash dev.sh setup` unpacks, its generated tiny SD1.5
checkpoint), importing ComfyUI the way its main.py does, importing this repository as the node pack
the way ComfyUI imports custom_nodes/<folder>, loading a checkpoint and encoding a prompt.

This is the one module that edits sys.path: ComfyUI is a source tree, not an installed package, so its
top-level modules (`comfy`, `server`, `nodes`, `utils`) are importable only with the tree on sys.path.
Call `import_comfy()` before importing anything from ComfyUI or the pack.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The ComfyUI source tree the tests run on: the one `bash dev.sh setup` installs (0.3.75), or any other
# named by DENSITY_GEODESICS_COMFYUI (devtools/test_other_comfyui.sh sets it).
COMFY_DIR = Path(os.environ.get("DENSITY_GEODESICS_COMFYUI") or ROOT / ".comfyui" / "ComfyUI")
TINY_CHECKPOINT_NAME = "tiny_sd15.safetensors"
TINY_CHECKPOINT = COMFY_DIR / "models" / "checkpoints" / TINY_CHECKPOINT_NAME
PACK_NAME = "density_geodesics"
# The frontend ComfyUI serves by default, the one its requirements.txt pins and the venv has (1.32.9 for
# 0.3.75), and the newest one, which `bash dev.sh setup` installs beside it from the pin in
# devtools/newest-frontend.txt; the browser tests run on both.
PINNED_FRONTEND = importlib.metadata.version("comfyui-frontend-package")
NEWEST_FRONTEND = (ROOT / "devtools" / "newest-frontend.txt").read_text().strip().split("==")[1]


def frontend_root(version: str) -> Path | None:
    """The --front-end-root that serves ``version``: None for the one ComfyUI pins (its default)."""
    if version == PINNED_FRONTEND:
        return None
    static = ROOT / ".comfyui" / f"frontend-{version}" / "comfyui_frontend_package" / "static"
    if not (static / "index.html").is_file():
        raise FileNotFoundError(f"{static} is missing: run `bash dev.sh setup` first")
    return static


def is_source_tree(comfy_root: Path = COMFY_DIR) -> bool:
    """True for a ComfyUI source tree (server.py beside main.py, run as `python main.py`); False for a
    pip-packaged ComfyUI (its server inside the `comfy` package, run by the `comfyui` command it installs)."""
    return (comfy_root / "server.py").is_file()


def require_tiny_checkpoint() -> Path:
    if not TINY_CHECKPOINT.is_file():
        raise FileNotFoundError(f"{TINY_CHECKPOINT} is missing: run `bash dev.sh setup` first")
    return TINY_CHECKPOINT


def import_comfy(comfy_root: Path = COMFY_DIR, *, cpu: bool = True) -> None:
    """ComfyUI's modules set up as its main.py does: the tree on sys.path, command-line args before models.

    `utils.install_util` and `server` are imported before `nodes`: ComfyUI's nodes.py puts comfy/ first
    on sys.path, where comfy/utils.py would shadow the top-level `utils` package. A pip-packaged ComfyUI
    has no such top-level modules and needs none of this order; only `comfy` is imported from it.
    """
    if str(comfy_root) not in sys.path:
        sys.path.insert(0, str(comfy_root))
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    # Order matters (see above), so these are not plain import statements an import sorter reorders.
    top_level = ("utils.install_util", "server") if is_source_tree(comfy_root) else ()
    for module in (*top_level, "comfy.sd"):
        importlib.import_module(module)


def import_pack():
    """The repository imported as the package `density_geodesics`, as ComfyUI imports custom_nodes/<folder>
    (a module spec on the folder's __init__.py, no sys.path entry). Needs `import_comfy()` first."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(PACK_NAME, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = pack
    try:
        spec.loader.exec_module(pack)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return pack


def import_pack_module(name: str):
    """A module of the pack, e.g. "nodes" or "nodes.bridge" (the pack is imported first)."""
    import_pack()
    return importlib.import_module(f"{PACK_NAME}.{name}")


def load_checkpoint(path: Path) -> tuple:
    """(MODEL, CLIP, VAE) of a checkpoint file, as the core Load Checkpoint node loads it."""
    import comfy.sd

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=True)
    return model, clip, vae


def load_tiny_checkpoint() -> tuple:
    """(MODEL, CLIP, VAE) of the generated random-weight SD1.5-layout checkpoint."""
    return load_checkpoint(require_tiny_checkpoint())


def encode_prompt(clip, text: str) -> list:
    """CONDITIONING exactly as the core CLIP Text Encode node makes it."""
    import nodes

    return nodes.CLIPTextEncode().encode(clip, text)[0]
