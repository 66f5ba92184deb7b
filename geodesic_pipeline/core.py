"""geodesic_core as this package's callers see it: one copy of every class, whichever way it was imported.

ComfyUI imports the node pack as one package (custom_nodes/<folder>), so the nodes reach geodesic_core and
this package as ``<pack>.geodesic_core`` and ``<pack>.geodesic_pipeline``; the batch tool, the demo and the
tests import both top-level. A fixed ``import geodesic_core`` here would give the nodes a second copy (a
second GeodesicInputError that their ``except`` does not catch), so the sibling is found by this
package's own name."""

from __future__ import annotations

import importlib

_PACK = __name__.rsplit(".", 2)[0] if __name__.count(".") >= 2 else ""


def _sibling(name: str):
    return importlib.import_module(f"{_PACK}.{name}" if _PACK else name)


core = _sibling("geodesic_core")
geometry = _sibling("geodesic_core.geometry")
perceptual = _sibling("geodesic_core.perceptual")
