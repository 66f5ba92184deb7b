"""ComfyUI entry point of the Density Geodesics node pack (V3 API: ComfyUI calls comfy_entrypoint)."""

from comfy_api.latest import ComfyExtension, io

from .nodes import NODES

# Served by ComfyUI at /extensions/<pack folder>/; the frontend reads each node's help page from
# docs/<node id>.md there (its pictures from docs/images/).
WEB_DIRECTORY = "./web"


class DensityGeodesicsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> DensityGeodesicsExtension:
    return DensityGeodesicsExtension()
