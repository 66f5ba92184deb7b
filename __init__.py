"""ComfyUI entry point of the Density Geodesics node pack (V3 API: ComfyUI calls comfy_entrypoint)."""

from comfy_api.latest import ComfyExtension, io

from .nodes import NODES


class DensityGeodesicsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> DensityGeodesicsExtension:
    return DensityGeodesicsExtension()
