"""Every ComfyUI name the node pack uses: the list to compare against a newer ComfyUI's source each release.

    bash dev.sh py -m devtools.comfy_symbols

Names reached through an import (``comfy.samplers.CFGGuider``, ``io.Int.Input`` of ``comfy_api.latest``)
are found by parsing the pack's Python files, so the list cannot fall behind the code. Members of ComfyUI
objects the pack receives as arguments (a MODEL's ``get_model_object``, a VAE's ``encode``) cannot be found
by parsing; OBJECT_MEMBERS (and OPTIONAL_MEMBERS, which only newer ComfyUI has) list them by hand, each with
where it is used. tests/comfy_inprocess/test_comfy_contract.py checks on the installed ComfyUI that every
parsed name resolves and every listed member exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK_FILES = ("__init__.py", "nodes", "geodesic_core")
# Top-level modules of a ComfyUI tree (the pack's own `nodes` package is only ever imported relatively).
COMFY_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "folder_paths", "latent_preview",
                 "node_helpers", "nodes", "server"}

# Members of ComfyUI objects the nodes receive: (object, member, where the pack uses it).
OBJECT_MEMBERS = (
    ("ModelPatcher", "get_model_object", "nodes/model_facts.py, encode_decode.py, plot.py"),
    ("ModelPatcher", "memory_required", "nodes/bridge.py (fitting_batch)"),
    ("ModelPatcher", "model", "nodes/model_facts.py, comfy_internals.py"),
    ("BaseModel", "process_latent_in", "nodes/model_facts.py"),
    ("BaseModel", "process_latent_out", "nodes/model_facts.py"),
    ("BaseModel", "current_patcher", "nodes/comfy_internals.py (free_memory)"),
    ("model_sampling", "percent_to_sigma", "nodes/model_facts.py (sigma_at, ode_sigmas)"),
    ("model_sampling", "sigma_min", "nodes/model_facts.py (ode_sigmas)"),
    ("model_sampling", "set_sigmas", "nodes/embedded_model.py (EmbeddedModelSampling: the scheduler's table)"),
    ("model_sampling", "log_sigmas", "nodes/embedded_model.py (EmbeddedModelSampling.timestep)"),
    ("model_sampling", "noise_scaling", "nodes/model_facts.py (noise_kind: the class in its MRO that defines it)"),
    ("LatentFormat", "latent_channels", "nodes/encode_decode.py"),
    ("LatentFormat", "latent_rgb_factors", "nodes/plot.py"),
    ("LatentFormat", "latent_rgb_factors_bias", "nodes/plot.py"),
    ("LatentFormat", "latent_rgb_factors_reshape", "nodes/plot.py"),
    ("VAE", "encode", "nodes/keyframe_nodes.py"),
    ("VAE", "decode", "nodes/output_nodes.py, perceptual.py (even LPIPS spacing)"),
    ("VAE", "first_stage_model", "nodes/embedded_model.py (EmbeddedVAE sets it, with patcher and model_size)"),
    ("VAE", "patcher", "nodes/embedded_model.py (EmbeddedVAE)"),
    ("VAE", "model_size", "nodes/embedded_model.py (EmbeddedVAE)"),
    ("CFGGuider", "inner_set_conds", "nodes/bridge.py"),
    ("CFGGuider", "set_cfg", "nodes/bridge.py"),
    ("CFGGuider", "sample", "nodes/bridge.py"),
    ("CFGGuider", "conds (while sampling; swapped per call)", "nodes/comfy_internals.py"),
    ("Sampler", "sample", "nodes/bridge.py (_WorkSampler)"),
    ("CONDRegular", "cond", "nodes/conditioning.py"),
    ("CONDRegular", "_copy_with", "nodes/comfy_internals.py (cond_with)"),
    ("Latent2RGBPreviewer", "decode_latent_to_preview", "nodes/plot.py"),
    ("PromptServer", "instance (set in __init__)", "__init__.py, nodes/bridge.py (show_progress_text)"),
    ("PromptServer", "routes (set in __init__)", "__init__.py (the template files route)"),
    ("PromptServer", "send_progress_text", "nodes/bridge.py (show_progress_text)"),
)
# Members only newer ComfyUI has; the pack asks for them and falls back when they are missing.
OPTIONAL_MEMBERS = (
    ("ModelPatcher", "get_free_memory", "nodes/comfy_internals.py (free_memory)"),
    ("model_sampling", "noise_scale", "nodes/model_facts.py (noise_kind refuses a flow noise_scale other than 1)"),
)


def _python_files() -> list[Path]:
    files = []
    for name in PACK_FILES:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _comfy_bindings(tree: ast.Module) -> dict[str, str]:
    """Local name -> the ComfyUI dotted name it stands for, from the file's absolute imports."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in COMFY_MODULES:
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in COMFY_MODULES:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def pack_symbols() -> dict[str, set[str]]:
    """Every ComfyUI dotted name the pack's files use, with the files that use it."""
    found: dict[str, set[str]] = {}
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        bound = _comfy_bindings(tree)
        inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        for node in ast.walk(tree):
            if id(node) in inner or not isinstance(node, (ast.Attribute, ast.Name)):
                continue
            parts = _dotted(node)
            if parts and parts[0] in bound:
                name = ".".join([bound[parts[0]], *parts[1:]])
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    # A bare module name that only prefixes longer names adds nothing to the list.
    return {name: files for name, files in found.items()
            if not any(other.startswith(name + ".") for other in found)}


def main() -> None:
    symbols = pack_symbols()
    print(f"# {len(symbols)} ComfyUI names reached through imports (parsed from the pack's files)")
    for name in sorted(symbols):
        print(f"{name}\t{', '.join(sorted(symbols[name]))}")
    print(f"\n# {len(OBJECT_MEMBERS)} members of ComfyUI objects the nodes receive (listed by hand)")
    for owner, member, where in OBJECT_MEMBERS:
        print(f"{owner}.{member}\t{where}")
    print(f"\n# {len(OPTIONAL_MEMBERS)} members used when present (newer ComfyUI)")
    for owner, member, where in OPTIONAL_MEMBERS:
        print(f"{owner}.{member}\t{where}")


if __name__ == "__main__":
    main()
