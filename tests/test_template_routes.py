"""The pack's template routes on the template URLs as current ComfyUI registers them: the templates and their
thumbnails, and the order of the pack's templates in the list.

Current ComfyUI cannot be installed here (tests/test_server.py covers 0.3.75, where ComfyUI's static
mount serves the thumbnails itself). This builds the same aiohttp route order on a real aiohttp server:
a custom node's routes are added to PromptServer.routes while the pack loads (comfy_entrypoint), ComfyUI
then adds its template handler, which answers only .json (app/custom_node_manager.py, `if not
filename.endswith(".json"): raise web.HTTPNotFound()`), and server.py registers every route of the table
under /api as well. The pip-packaged ComfyUI 0.12.1 registers no file route for a pack it loads as it loads
this one: only the pack's route serves its templates there.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devtools.comfy_server import (
    EMBEDDED_TEMPLATE,
    INTERPOLATION_TEMPLATE,
    PACK_FOLDER_NAME,
    ROOT,
    WORKFLOW_NAMES,
    WORKFLOWS_DIR,
)

# The module needs nothing from ComfyUI, so it is loaded from its file on its own (no ComfyUI import).
_spec = importlib.util.spec_from_file_location("template_routes", ROOT / "nodes" / "template_routes.py")
template_routes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(template_routes)
# What ComfyUI's GET /workflow_templates lists in directory order (glob) on some machine: this pack's names
# shuffled, and another pack's, which must stay as listed.
LISTED_BY_COMFYUI = {PACK_FOLDER_NAME: [WORKFLOW_NAMES[2], WORKFLOW_NAMES[0], *WORKFLOW_NAMES[3:], WORKFLOW_NAMES[1]],
                     "another_pack": ["b template", "a template"]}


def app_like_current_comfyui(serves_json: bool = True) -> web.Application:
    """The routes as current ComfyUI orders them; without ComfyUI's .json handler where not ``serves_json``."""
    routes = web.RouteTableDef()
    template_routes.add_template_files_route(routes, PACK_FOLDER_NAME)  # the pack loads first

    @routes.get("/workflow_templates")
    async def listing(request: web.Request) -> web.Response:  # stand-in for ComfyUI's list of every pack's
        return web.json_response(LISTED_BY_COMFYUI)

    async def json_only(request: web.Request) -> web.StreamResponse:  # stand-in for ComfyUI's handler
        filename = request.match_info["filename"]
        if request.match_info["module_name"] != PACK_FOLDER_NAME or not filename.endswith(".json"):
            raise web.HTTPNotFound()
        return web.FileResponse(WORKFLOWS_DIR / filename)

    if serves_json:
        routes.get("/workflow_templates/{module_name}/{filename}")(json_only)

    api_routes = web.RouteTableDef()
    for route in routes:
        api_routes.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
    app = web.Application()
    app.middlewares.append(template_routes.templates_sorted_by_name(PACK_FOLDER_NAME))  # as the pack adds it
    app.add_routes(api_routes)
    app.add_routes(routes)
    return app


async def _fetch(paths: list[str], serves_json: bool = True) -> list[tuple[int, str, bytes]]:
    async with TestClient(TestServer(app_like_current_comfyui(serves_json))) as client:
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


def test_the_packs_templates_are_listed_by_name_the_first_try_first():
    answers = asyncio.run(_fetch(["/workflow_templates", "/api/workflow_templates"]))
    for status, content_type, body in answers:
        assert (status, content_type) == (200, "application/json")
        listed = json.loads(body)
        assert listed[PACK_FOLDER_NAME] == WORKFLOW_NAMES and WORKFLOW_NAMES[0] == EMBEDDED_TEMPLATE
        assert listed["another_pack"] == LISTED_BY_COMFYUI["another_pack"]


def test_templates_and_thumbnails_are_served_where_comfyui_serves_no_file_of_the_pack():
    base = f"/api/workflow_templates/{PACK_FOLDER_NAME}"
    files = [f"{name}{suffix}" for name in WORKFLOW_NAMES for suffix in (".json", ".jpg")]
    answers = asyncio.run(_fetch([f"{base}/{file}" for file in files], serves_json=False))
    for file, (status, content_type, body) in zip(files, answers, strict=True):
        assert (status, content_type) == (200, "image/jpeg" if file.endswith(".jpg") else "application/json"), file
        assert body == (WORKFLOWS_DIR / file).read_bytes()
    (outside,) = asyncio.run(_fetch([f"{base}/..%2F__init__.py"], serves_json=False))
    assert outside[0] == 404
