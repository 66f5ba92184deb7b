"""How ComfyUI serves the pack's templates, made the same on every ComfyUI version: their files (template and
thumbnail), and their order in the template browser.

Files: the frontend asks for a custom node template at /api/workflow_templates/<pack folder>/<template
name>.json and for its thumbnail at the same name with .jpg. ComfyUI 0.3.75 mounts example_workflows/ there
as static files, so both are served. Current ComfyUI answers that URL with a handler that serves only .json
(app/custom_node_manager.py: `if not filename.endswith(".json"): raise web.HTTPNotFound()`), so the
thumbnails would 404; the pip-packaged ComfyUI 0.12.1 mounts nothing there for packs it loads as it does
this one, so the templates would 404 too. This route serves the .json and .jpg files of example_workflows/,
and nothing else, under that same URL. Registered before ComfyUI adds its own template routes, it answers
first; on 0.3.75 the static mount, added earlier, answers first and serves the same file.

Order: GET /workflow_templates lists each pack's templates in the order `glob` finds the files, which is the
file system's directory order (ext4 returns names in hash order, so it differs between machines; upstream's
source at commit 0b16d55 passes them through a set, no order either). Frontends 1.32 and 1.58 show a pack's
templates in the listed order. The middleware below sorts this pack's list by name, so the template browser
shows them in the order their names give ("A first try, ..." first) on every ComfyUI version; other packs'
lists are left as ComfyUI made them.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "example_workflows"
TEMPLATE_LIST_ROUTES = ("/workflow_templates", "/api/workflow_templates")
TEMPLATE_FILE_SUFFIXES = (".json", ".jpg")  # a template and its thumbnail
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_template_files_route(routes: web.RouteTableDef, pack_folder: str) -> None:
    """Serve example_workflows/<name>.json and <name>.jpg at /workflow_templates/<pack_folder>/ (ComfyUI also
    mounts every route of its table under /api)."""

    @routes.get(f"/workflow_templates/{pack_folder}/{{filename}}")
    async def template_file(request: web.Request) -> web.FileResponse:
        path = TEMPLATES_DIR / request.match_info["filename"]
        try:
            found = path.parent == TEMPLATES_DIR and path.suffix in TEMPLATE_FILE_SUFFIXES and path.is_file()
        except OSError:  # a name the file system cannot hold (too long) names no template either
            found = False
        if not found:
            raise web.HTTPNotFound()
        return web.FileResponse(path)


def templates_sorted_by_name(pack_folder: str):
    """aiohttp middleware: in ComfyUI's answer to GET /workflow_templates (a JSON object, pack folder -> template
    names), this pack's names sorted."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if (request.method != "GET" or request.path not in TEMPLATE_LIST_ROUTES
                or not isinstance(response, web.Response) or response.content_type != "application/json"
                or not response.body):
            return response
        listed = json.loads(response.body)
        if not isinstance(listed, dict) or not isinstance(listed.get(pack_folder), list):
            return response
        listed[pack_folder] = sorted(listed[pack_folder])
        return web.json_response(listed, status=response.status)

    return middleware
