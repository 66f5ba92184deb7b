"""The three front ends (the ComfyUI nodes, the batch tool, the demo) stand on geodesic_pipeline (which hands
on the core's names they use), never on geodesic_core directly or on one another: every import statement of
each, function-level ones included, is read from its source; and the pack, imported as ComfyUI imports it,
runs on its own copy of the core."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each front end: its source files, and the module names it answers to. The batch tool loads the embedded
# model through digits' model modules (digits.latent_model, digits.latent_files, digits.mnist, digits.settings),
# the demo's own loader, but never the demo built on them.
FRONT_ENDS = {
    "nodes": ([ROOT / "__init__.py", *sorted((ROOT / "nodes").rglob("*.py"))], ("nodes",)),
    "batch": (sorted((ROOT / "geodesic_batch").rglob("*.py")), ("geodesic_batch",)),
    "demo": ([ROOT / "digits" / name for name in ("main.py", "demo.py", "report.py", "render.py")],
             ("digits.main", "digits.demo", "digits.report", "digits.render")),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names, relative imports resolved from the repository root
    (the pack's root package is the empty name)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module
            else:
                parts = package.split(".") if package else []
                base_parts = parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else [])
                base = ".".join(base_parts)
            found |= {base} | {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return found


def names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_no_front_end_imports_another(front_end):
    files, _ = FRONT_ENDS[front_end]
    others = tuple(prefix for other, (_, prefixes) in FRONT_ENDS.items() if other != front_end for prefix in prefixes)
    offending = {f"{path.relative_to(ROOT)}: {module}" for path in files for module in imported_modules(path)
                 if names(module, others) or (front_end != "nodes" and module in ("", "comfy", "comfy_api"))}
    assert not offending, f"{front_end} imports another front end: {sorted(offending)}"


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_reach_the_core_through_the_pipeline(front_end):
    """Each front end imports geodesic_pipeline (its core.py hands on the core's names they use), never
    geodesic_core itself."""
    files, _ = FRONT_ENDS[front_end]
    offending = {f"{path.relative_to(ROOT)}: {module}" for path in files for module in imported_modules(path)
                 if names(module, ("geodesic_core",))}
    assert not offending, f"{front_end} imports geodesic_core: {sorted(offending)}"


def test_the_import_reader_sees_relative_and_function_level_imports(tmp_path):
    assert "geodesic_pipeline.keyframes" in imported_modules(ROOT / "nodes" / "solve_nodes.py")
    assert "geodesic_pipeline.compare" in imported_modules(ROOT / "digits" / "demo.py")  # inside run()
    assert "nodes" in imported_modules(ROOT / "__init__.py")
    assert "geodesic_core.lpips" in imported_modules(ROOT / "geodesic_core" / "__init__.py")  # `from .lpips import`


def test_the_pack_runs_on_its_own_copy_of_the_core():
    """Inside ComfyUI the pack's geodesic_pipeline must hand the nodes the pack's geodesic_core (one
    GeodesicInputError class), not a top-level copy, even where a top-level one is importable."""
    script = (
        "import json, sys\n"
        "from devtools.comfy_harness import PACK_NAME, import_comfy, import_pack_module\n"
        "import_comfy()\n"
        "import_pack_module('nodes')\n"
        "core = import_pack_module('geodesic_pipeline.core').core\n"
        "interface = import_pack_module('geodesic_pipeline.model').ModelAtNoiseLevel\n"
        "comfy_model = import_pack_module('nodes.encode_decode').ComfyModel(None, 've', 0.6, 1.0, None, None, 2, 0)\n"
        "print(json.dumps({'core': core.__name__, 'implements': isinstance(comfy_model, interface),\n"
        "    'top_level': sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "                        ('geodesic_core', 'geodesic_pipeline', 'geodesic_batch', 'digits'))}))\n")
    # (the top-level `nodes` module is ComfyUI's own)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"core": "density_geodesics.geodesic_core", "implements": True, "top_level": []}


def test_the_diffusers_model_implements_the_interface():
    from digits.latent_model import load_mnist_model
    from geodesic_pipeline.model import ModelAtNoiseLevel

    assert isinstance(load_mnist_model(ode_steps=2), ModelAtNoiseLevel)
