"""The pack's thumbnail route on the template URLs as current ComfyUI registers them.

Current ComfyUI cannot be installed here (tests/test_server.py covers 0.3.75, where ComfyUI's static
mount serves the thumbnails itself). This builds the same aiohttp route order on a real aiohttp server:
a custom node's routes are added to PromptServer.routes while the pack loads (comfy_entrypoint), ComfyUI
then adds its template handler, which answers only .json (app/custom_node_manager.py, `if not
filename.endswith(".json"): raise web.HTTPNotFound()`), and server.py registers every route of the table
under /api as well.
"""
from __future__ import annotations

import asyncio
import importlib.util

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devtools.comfy_server import INTERPOLATION_TEMPLATE, PACK_FOLDER_NAME, ROOT, WORKFLOW_NAMES, WORKFLOWS_DIR

# The module needs nothing from ComfyUI, so it is loaded from its file on its own (no ComfyUI import).
_spec = importlib.util.spec_from_file_location("template_thumbnails", ROOT / "nodes" / "template_thumbnails.py")
template_thumbnails = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(template_thumbnails)


def app_like_current_comfyui() -> web.Application:
    routes = web.RouteTableDef()
    template_thumbnails.add_thumbnail_route(routes, PACK_FOLDER_NAME)  # the pack loads first

    @routes.get("/workflow_templates/{module_name}/{filename}")
    async def json_only(request: web.Request) -> web.StreamResponse:  # stand-in for ComfyUI's handler
        filename = request.match_info["filename"]
        if request.match_info["module_name"] != PACK_FOLDER_NAME or not filename.endswith(".json"):
            raise web.HTTPNotFound()
        return web.FileResponse(WORKFLOWS_DIR / filename)

    api_routes = web.RouteTableDef()
    for route in routes:
        api_routes.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
    app = web.Application()
    app.add_routes(api_routes)
    app.add_routes(routes)
    return app


async def _fetch(paths: list[str]) -> list[tuple[int, str, bytes]]:
    async with TestClient(TestServer(app_like_current_comfyui())) as client:
        answers = []
        for path in paths:
            response = await client.get(path)
            answers.append((response.status, response.content_type, await response.read()))
        return answers


def test_thumbnails_are_served_where_current_comfyui_serves_only_json():
    base = f"/api/workflow_templates/{PACK_FOLDER_NAME}"
    answers = asyncio.run(_fetch([f"{base}/{name}.jpg" for name in WORKFLOW_NAMES]))
    for name, (status, content_type, body) in zip(WORKFLOW_NAMES, answers, strict=True):
        assert (status, content_type) == (200, "image/jpeg"), name
        assert body == (WORKFLOWS_DIR / f"{name}.jpg").read_bytes()
    (template, missing, too_long, outside, other_pack) = asyncio.run(_fetch([
        f"{base}/{INTERPOLATION_TEMPLATE}.json", f"{base}/no such template.jpg", f"{base}/{'x' * 300}.jpg",
        f"{base}/..%2F..%2Ficon.jpg", f"/api/workflow_templates/another_pack/{INTERPOLATION_TEMPLATE}.jpg"]))
    assert template[0] == 200 and template[2] == (WORKFLOWS_DIR / f"{INTERPOLATION_TEMPLATE}.json").read_bytes()
    assert missing[0] == too_long[0] == outside[0] == other_pack[0] == 404  # too long for a file name: no 500
