"""Thumbnails of the pack's templates on every ComfyUI version.

The frontend asks for a custom node template's thumbnail at
/api/workflow_templates/<pack folder>/<template name>.jpg. ComfyUI 0.3.75 mounts example_workflows/ there as
static files, so the .jpg beside each template is served. Current ComfyUI answers that URL with a handler
that serves only .json (app/custom_node_manager.py: `if not filename.endswith(".json"): raise
web.HTTPNotFound()`), so the thumbnails would 404. This route serves the .jpg files of example_workflows/,
and nothing else, under that same URL. Registered before ComfyUI adds its own template routes, it answers
first where ComfyUI's handler would refuse; on 0.3.75 the static mount, added earlier, answers first and
serves the same file.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "example_workflows"


def add_thumbnail_route(routes: web.RouteTableDef, pack_folder: str) -> None:
    """Serve example_workflows/<name>.jpg at /workflow_templates/<pack_folder>/<name>.jpg (ComfyUI also
    mounts every route of its table under /api)."""

    @routes.get(f"/workflow_templates/{pack_folder}/{{name}}.jpg")
    async def template_thumbnail(request: web.Request) -> web.FileResponse:
        path = TEMPLATES_DIR / f"{request.match_info['name']}.jpg"
        try:
            found = path.parent == TEMPLATES_DIR and path.is_file()
        except OSError:  # a name the file system cannot hold (too long) names no template either
            found = False
        if not found:
            raise web.HTTPNotFound()
        return web.FileResponse(path)
