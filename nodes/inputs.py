"""Input and output declarations shared by several nodes (one tooltip text per concept)."""

from __future__ import annotations

from comfy_api.latest import io

from ..geodesic_pipeline.core import METHODS, SEARCHES
from ..geodesic_pipeline.defaults import PAPER_DEFAULTS
from .path import PATH_TYPE

CATEGORY = "density_geodesics"
GeodesicPathType = io.Custom(PATH_TYPE)
def model_input() -> io.Model.Input:
    return io.Model.Input(
        "model", tooltip="The loaded diffusion model (from Load Checkpoint, after any LoRA or model "
                         "patches). Its density defines the geodesics; no second copy of the weights is "
                         "loaded.")


def path_input(name: str = "path", tooltip: str = "A geodesic path or keyframe set from another "
                                                  "Density Geodesics node.") -> io.Input:
    return GeodesicPathType.Input(name, tooltip=tooltip)


def named_output(kind, name: str, tooltip: str, output_id: str | None = None) -> io.Output:
    """An output of ComfyUI type ``kind`` that users see as ``name``."""
    return kind.Output(output_id or name, display_name=name, tooltip=tooltip)


def path_output(tooltip: str) -> io.Output:
    # Output ids must differ from input ids (IVP takes and gives a path); the display name is what users see.
    return named_output(GeodesicPathType, "path", tooltip, output_id="geodesic_path")


def advanced(spec: io.Input) -> io.Input:
    """A solver internal: frontends that know the flag (1.5x) fold it into the node's advanced inputs, older
    ones show it as before. ComfyUI 0.3.75's inputs take no ``advanced`` argument; the flag travels in the
    input's extra dict, which every version sends with the input's options."""
    spec.extra_dict = {**spec.extra_dict, "advanced": True}
    return spec


def batch_size_input() -> io.Int.Input:
    return advanced(io.Int.Input(
        "batch_size", default=0, min=0, max=256,
        tooltip="Most latents per model call. 0 (automatic): as many as ComfyUI's memory estimate for this "
                "model says fit in free memory, the rule ComfyUI uses to batch prompts. Set a number to cap it "
                "if you run out of memory; results stay the same up to float rounding."))


def steps_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("steps", default=25, min=1, max=1000, tooltip=tooltip)


def alpha_input() -> io.Float.Input:
    return io.Float.Input(
        "alpha", default=PAPER_DEFAULTS.alpha, min=0.000001, max=10.0, step=0.0001, round=0.000001,
        tooltip="How strongly paths are pulled into high-density (likely) regions versus kept straight. "
                "The paper uses 0.002 at noise level 0.6 and 0.02 at 0.7 for Stable Diffusion.")


def strength_input(where: str = "between the path's first and last frames") -> io.Float.Input:
    # Last widget of its nodes, optional and 0 (alpha as given) by default, so workflows and API prompts made
    # before it existed still run, with the alpha they were made with.
    return io.Float.Input(
        "strength", default=0.0, min=0.0, max=100.0, step=0.05, round=0.001, optional=True,
        tooltip="Relative density strength, the same on every model: how far the path bends off the great circle "
                "between its ends, as a fraction of their distance (to first order). Above 0 it replaces alpha by "
                f"strength / the density's pull across the great circle (or line) {where} (read first: 7 model "
                "evaluations per segment). 0.1 bends about a tenth of the way, a good start; 0.2-0.3 a clear detour; "
                "larger values bend further but not in proportion. 0: use alpha as given.")


def sphere_input() -> io.Boolean.Input:
    return advanced(io.Boolean.Input(
        "sphere", default=True,
        tooltip="Keep every point at the common norm of the endpoints (noisy latents live near a sphere); "
                "the paper's default."))


def method_input() -> io.Combo.Input:
    return advanced(io.Combo.Input(
        "method", options=list(METHODS), default=METHODS[0],
        tooltip="default: coarse-to-fine Gauss-Newton on the path energy, stopping when the path satisfies "
                "the geodesic equation to the tolerance. paper: the reference schedule of Yu et al. (400 "
                "gradient steps, no stopping test)."))


def tolerance_input() -> io.Float.Input:
    return advanced(io.Float.Input(
        "tolerance", default=0.001, min=0.000001, max=1.0, step=0.0001, round=0.000001,
        tooltip="Stop when the scale-free geodesic residual falls below this (default method only)."))


def max_evals_input() -> io.Int.Input:
    return advanced(io.Int.Input(
        "max_evals", default=2000, min=10, max=1000000,
        tooltip="Budget of score evaluations (one latent through the model each) for the whole solve; the "
                "best path so far is returned when it runs out."))


def accuracy_input() -> io.Float.Input:
    # Last widget of its nodes and optional, so workflows and API prompts made before it existed still run.
    return advanced(io.Float.Input(
        "accuracy", default=0.001, min=0.00001, max=0.5, step=0.0001, round=0.00001, optional=True,
        tooltip="Relative accuracy of the log densities and lengths between frames: the readout adds model "
                "calls between frames until its error estimate is below this fraction of the log-density "
                "range (and of the length). Larger is cheaper and rougher; the table reports the error bound."))


def search_input() -> io.Combo.Input:
    # Last widget of Geodesic Interpolation and optional, so workflows and API prompts made before it existed still run.
    return advanced(io.Combo.Input(
        "search", options=list(SEARCHES), default=SEARCHES[0], optional=True,
        tooltip="local: the geodesic in the basin of the straight (or great-circle) path, the cheaper solve. "
                "global: also tries routes through probable images the model proposes (score ascent from the "
                "local path's displaced frames) and keeps the shortest; about 2x the evaluations. Default "
                "method only."))


def solver_inputs() -> list[io.Input]:
    return [method_input(), tolerance_input(), max_evals_input()]


def field_tail_inputs() -> list[io.Input]:
    """The last inputs of every node that reads the density: batching, then guidance."""
    return [
        batch_size_input(),
        io.Float.Input(
            "guidance", default=0.0, min=0.0, max=30.0, step=0.1,
            tooltip="Guidance g of the density: score + g * (score - negative score), computed as CFG "
                    "scale 1 + g. 0 uses the plain conditional density (the clean default)."),
        io.Conditioning.Input(
            "negative", optional=True,
            tooltip="Negative conditioning for guidance > 0 (e.g. a CLIP Text Encode of an empty or "
                    "negative prompt)."),
    ]
