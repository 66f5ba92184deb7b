"""geodesic_core as this package's callers see it: one copy of every class, whichever way it was imported.

Outside ComfyUI the libraries are top-level packages (the repository root on sys.path, as `python -m` and
pytest give it, or installed from pyproject.toml), and this package is `geodesic_pipeline`. Inside ComfyUI
the repository is one package, the node pack, under a name ComfyUI makes from its folder, and this package
is `<pack>.geodesic_pipeline`: it takes the pack's own geodesic_core, the copy the nodes import, so that the
nodes catch the same GeodesicInputError the pipeline raises (docs/development.md, "Packaging").
"""

from __future__ import annotations

if __package__ == "geodesic_pipeline":
    import geodesic_core as core
    from geodesic_core import diffusers_adapter, geometry
else:
    from .. import geodesic_core as core
    from ..geodesic_core import diffusers_adapter, geometry

__all__ = ["core", "diffusers_adapter", "geometry"]
