"""The pack in the real ComfyUI frontend, driven in Debian's headless chromium.

The template browser (Browse Templates > EXTENSIONS > density_geodesics) shows every template's title
and result thumbnail. Every workflow is loaded by clicking its card there: no missing-node warning, and
the frontend's own API conversion of the loaded graph equals devtools/workflow_convert.py's conversion of
the file. The interpolation workflow is then run with the Run button and its animation must show up on
the Save node, and a node's help page (web/docs/<node id>.md) must open from the selection toolbox's info
button. Screenshots go to test-artifacts/browser/ (scripts/make_readme_pictures.py copies some into
web/docs/images/).
chromium missing is a failure, not a skip (launch_chromium raises).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image, ImageSequence
from playwright.sync_api import Page, sync_playwright

from devtools.comfy_browser import (
    dismiss_missing_nodes_warnings,
    fit_view,
    frontend_api_prompt,
    launch_chromium,
    load_template,
    load_workflow,
    missing_nodes_warnings,
    open_app,
    open_template_browser,
    screenshot,
    unregistered_node_types,
)
from devtools.comfy_harness import NEWEST_FRONTEND, PINNED_FRONTEND, frontend_root
from devtools.comfy_server import (
    ARTIFACTS,
    EMBEDDED_TEMPLATE,
    FAST_SETTINGS,
    IMAGE_SIZE,
    INTERPOLATION_TEMPLATE,
    PACK_FOLDER_NAME,
    WORKFLOW_NAMES,
    WORKFLOWS_DIR,
    ComfyServer,
    start_server,
    write_example_inputs,
)
from devtools.workflow_convert import ordered_inputs, ui_to_api
from digits.judge import judge_images, load_judge
from digits.mnist import load_split_uint8

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "browser"  # the pinned frontend's; the newest one's in frontend-<version>/ inside it
RUN_TIMEOUT_MS = 300_000


@dataclass(frozen=True)
class Frontend:
    version: str
    server: ComfyServer
    screenshots: Path


@pytest.fixture(scope="module", params=[PINNED_FRONTEND, NEWEST_FRONTEND], ids=lambda v: f"frontend-{v}")
def frontend(request: pytest.FixtureRequest, comfy_server: ComfyServer) -> Iterator[Frontend]:
    """The server that serves one frontend: the session's for the pinned one, its own (--front-end-root) for the
    newest; tests that take it run once per frontend."""
    version = request.param
    if version == PINNED_FRONTEND:
        yield Frontend(version, comfy_server, SCREENSHOTS)
        return
    server = start_server(ARTIFACTS / f"comfy-frontend-{version}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                          frontend_root(version))
    try:
        yield Frontend(version, server, SCREENSHOTS / f"frontend-{version}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(frontend: Frontend) -> Iterator[Page]:
    write_example_inputs(frontend.server.input_dir, IMAGE_SIZE)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = open_app(browser, frontend.server.url)
            assert page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__") == frontend.version
            yield page
        finally:
            browser.close()


def template(page: Page, name: str) -> dict:
    """The workflow as the frontend's template browser gets it: over HTTP from the pack's template route."""
    return page.evaluate("async url => (await fetch(url)).json()",
                         f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json")


def test_template_browser_shows_titles_and_thumbnails_in_the_served_order(page: Page, frontend: Frontend):
    listed = page.evaluate("async () => (await fetch('/api/workflow_templates')).json()")[PACK_FOLDER_NAME]
    assert listed == WORKFLOW_NAMES  # sorted by name by the pack (nodes/template_routes.py)
    open_template_browser(page, PACK_FOLDER_NAME)
    cards = page.locator("[data-testid^='template-workflow-']")
    cards.first.wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll("[data-testid^='template-workflow-'] img")]
        .every(img => img.complete)""")
    screenshot(page, frontend.screenshots / "template_browser.png")
    # What the user sees on each card (its text lines and pictures), not the markup, which differs between
    # frontends (1.32 shows the title and a description, 1.58 the title under a "Node graph" badge).
    shown = page.evaluate("""() => [...document.querySelectorAll("[data-testid^='template-workflow-']")].map(card => ({
        name: card.dataset.testid.replace('template-workflow-', ''),
        lines: card.innerText.split('\\n').map(line => line.trim()).filter(Boolean),
        thumbnails: [...card.querySelectorAll('img')].map(img => img.naturalWidth),
    }))""")
    page.keyboard.press("Escape")
    # The browser keeps the server's order, so the template that runs as opened is the first card.
    assert [card["name"] for card in shown] == listed and WORKFLOW_NAMES[0] == EMBEDDED_TEMPLATE
    for card in shown:
        # A custom node template's title is its file name (1.32's description repeats it, - and _ as spaces).
        assert card["name"] in card["lines"], card
        assert card["thumbnails"] and all(width > 0 for width in card["thumbnails"]), card  # the .jpg loaded


def test_missing_node_check_can_fail(page: Page):
    """The check below must see an unknown node, or a passing result would mean nothing."""
    workflow = template(page, WORKFLOW_NAMES[0])
    workflow["nodes"][0]["type"] = "DensityGeodesics_NoSuchNode"
    load_workflow(page, workflow, "broken")
    assert unregistered_node_types(page) == ["DensityGeodesics_NoSuchNode"]
    assert missing_nodes_warnings(page).count() > 0
    dismiss_missing_nodes_warnings(page)


# LiteGraph draws node text at its default level of detail (8 px smallest font, 14 px node text) from this zoom up.
READABLE_ZOOM = 8 / 14


def opened_view(page: Page) -> dict:
    """What the canvas shows as the template opens: zoom, the visible area and the nodes' and groups' rectangles
    (graph coordinates, [x, y, width, height], titles included)."""
    return page.evaluate("""() => {
        const canvas = window.app.canvas;
        return {zoom: canvas.ds.scale, visible: [...canvas.visible_area],
                nodes: window.app.graph.nodes.map(n => [...n.boundingRect]),
                groups: window.app.graph.groups.map(g => ({title: g.title, rect: [...g.boundingRect]}))};
    }""")


def inside(rect: list[float], area: list[float]) -> bool:
    return (area[0] <= rect[0] and rect[0] + rect[2] <= area[0] + area[2]
            and area[1] <= rect[1] and rect[1] + rect[3] <= area[1] + area[3])


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_loads_without_missing_nodes(page: Page, frontend: Frontend, name: str):
    load_template(page, PACK_FOLDER_NAME, name)
    screenshot(page, frontend.screenshots / f"{name}.png")
    assert unregistered_node_types(page) == []
    assert missing_nodes_warnings(page).count() == 0
    # It opens on the whole graph, readable, every node in one of its groups (Inputs, ..., Outputs) as the
    # frontend sized them (1.32 opens at the file's view, 1.58 fits its own view to a template's nodes).
    view = opened_view(page)
    assert view["zoom"] >= READABLE_ZOOM, view["zoom"]
    titles = [group["title"] for group in view["groups"]]
    assert titles[0] == "Inputs" and titles[-1] == "Outputs", titles
    for rect in view["nodes"]:
        assert inside(rect, view["visible"]), (rect, view["visible"])
        assert sum(inside(rect, group["rect"]) for group in view["groups"]) == 1, (rect, view["groups"])
    object_info = frontend.server.object_info()
    # The frontend also sends its display-only widgets (PreviewAny's "preview"); the server drops inputs
    # that are not in the node's schema, so only schema inputs are compared.
    frontend = {node_id: {"class_type": node["class_type"],
                          "inputs": {k: v for k, v in node["inputs"].items()
                                     if k in dict(ordered_inputs(object_info[node["class_type"]]))}}
                for node_id, node in frontend_api_prompt(page).items()}
    assert frontend == ui_to_api(json.loads((WORKFLOWS_DIR / f"{name}.json").read_text()), object_info)


def set_widgets(page: Page, node_type: str, values: dict) -> None:
    page.evaluate("""([type, values]) => {
        for (const node of window.app.graph.nodes.filter(n => n.type === type))
            for (const [name, value] of Object.entries(values))
                node.widgets.find(w => w.name === name).value = value;
    }""", [node_type, values])


def test_interpolation_runs_from_the_run_button(page: Page, frontend: Frontend):
    load_template(page, PACK_FOLDER_NAME, INTERPOLATION_TEMPLATE)
    for node_type, values in FAST_SETTINGS.items():
        set_widgets(page, node_type, values)
    set_widgets(page, "SaveAnimatedWEBP", {"filename_prefix": "browser_run"})
    page.get_by_role("button", name="Run").first.click()
    # The finished animation is shown as an <img> served by /api/view (on the Save node and in the queue).
    page.wait_for_function("""() => [...document.querySelectorAll("img[src*='browser_run']")]
        .some(img => img.complete && img.naturalWidth > 0)""", timeout=RUN_TIMEOUT_MS)
    fit_view(page)
    shot = screenshot(page, frontend.screenshots / "geodesic_interpolation_ran.png")
    shown = page.evaluate("""() => {
        const save = window.app.graph.nodes.find(n => n.type === 'SaveAnimatedWEBP');
        return window.app.nodeOutputs[String(save.id)].images.map(i => i.filename);
    }""")
    written = sorted(p.name for p in frontend.server.output_dir.glob("browser_run_*.webp"))
    assert shown == written and len(written) == 1, (shown, written)
    with Image.open(frontend.server.output_dir / written[0]) as animation:
        assert animation.n_frames == 17
    assert shot.stat().st_size > 10_000


def test_embedded_template_runs_as_opened_and_shows_the_morph(page: Page, frontend: Frontend):
    """The first template, as it opens, from the Run button: the Save node shows the animation, its frames are
    digits by the independent judge, and the first and last are the input digits' labels."""
    load_template(page, PACK_FOLDER_NAME, EMBEDDED_TEMPLATE)
    page.get_by_role("button", name="Run").first.click()
    page.wait_for_function("""() => [...document.querySelectorAll("img[src*='digits_geodesic']")]
        .some(img => img.complete && img.naturalWidth > 0)""", timeout=RUN_TIMEOUT_MS)
    screenshot(page, frontend.screenshots / "embedded_template_ran.png")  # in the view it opened in
    # The readout's table in Preview as Text: on 1.58, in plain text, every row on one line (the template makes the
    # node wide enough); 1.32 shows the Markdown rendered as a table (its text box, measured here too, is hidden).
    (table,) = page.evaluate("""() => [...document.querySelectorAll('textarea')]
        .filter(e => e.value.startsWith('|frame|')).map(e => {
            const style = getComputedStyle(e);
            const context = document.createElement('canvas').getContext('2d');
            context.font = `${style.fontSize} ${style.fontFamily}`;
            return {widest: Math.max(...e.value.split('\\n').map(line => context.measureText(line).width)),
                    room: e.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
                    font: context.font, characters: Math.max(...e.value.split('\\n').map(line => line.length))};
        })""")
    print("readout table preview:", table)
    page.evaluate("""() => {  // the table at 100 % zoom, for a screenshot of what it reads like
        const canvas = window.app.canvas;
        const preview = window.app.graph.nodes.filter(n => n.type === 'PreviewAny')
            .sort((a, b) => b.size[0] - a.size[0])[0];
        canvas.ds.scale = 1;
        canvas.centerOnNode(preview);
        canvas.setDirty(true, true);
    }""")
    page.wait_for_timeout(500)
    screenshot(page, frontend.screenshots / "embedded_template_table.png")
    if frontend.version == NEWEST_FRONTEND:
        assert table["widest"] <= table["room"], table
    shown = page.evaluate("""() => {
        const save = window.app.graph.nodes.find(n => n.type === 'SaveAnimatedWEBP');
        return window.app.nodeOutputs[String(save.id)].images.map(i => i.filename);
    }""")
    assert len(shown) == 1, shown
    with Image.open(frontend.server.output_dir / shown[0]) as animation:
        grey = np.stack([np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(animation)])
    verdict = judge_images(load_judge(), torch.from_numpy(grey.astype(np.float32) / 127.5 - 1.0)[:, None])
    indices = page.evaluate("""() => window.app.graph.nodes.filter(n => n.type === 'DensityGeodesics_MnistTestDigit')
        .sort((a, b) => a.pos[1] - b.pos[1]).map(n => n.widgets.find(w => w.name === 'index').value)""")
    labels = [int(label) for label in load_split_uint8("held_out")[1][indices]]
    assert [verdict.labels[0], verdict.labels[-1]] == labels, verdict.labels
    assert verdict.mean_confidence >= 0.8, verdict.confidence


HELP_NODE = "DensityGeodesics_SolveBVP"


def test_node_help_page_opens_with_its_picture(page: Page, frontend: Frontend):
    """Select a node, press the selection toolbox's info button: the sidebar shows the pack's help page
    (fetched from /extensions/<pack>/docs/<node id>.md), its pictures loaded, not the generated fallback."""
    load_template(page, PACK_FOLDER_NAME, INTERPOLATION_TEMPLATE)
    fit_view(page)
    page.evaluate("""type => {
        const node = window.app.graph.nodes.find(n => n.type === type);
        window.app.canvas.selectNode(node);
        window.app.canvas.setDirty(true, true);
    }""", HELP_NODE)
    page.locator("[data-testid='info-button']").first.click()
    heading = page.get_by_text("How alpha and the noise level change the result")
    try:
        heading.wait_for(timeout=15_000)
        page.wait_for_function("""() => {
            const pictures = [...document.querySelectorAll("img[src*='/docs/images/']")];
            return pictures.length > 0 && pictures.every(img => img.complete && img.naturalWidth > 0);
        }""", timeout=15_000)
    finally:
        screenshot(page, frontend.screenshots / "help_page.png")  # also when it fails: shows what the user got
    assert heading.is_visible()
    pictures = page.locator("img[src*='/docs/images/']")
    shown = []
    for k in range(pictures.count()):  # each picture as the panel shows it
        picture = pictures.nth(k)
        picture.scroll_into_view_if_needed()
        screenshot(page, frontend.screenshots / f"help_page_picture_{k}.png")
        shown.append(picture.evaluate("img => [img.src, img.clientWidth, img.naturalWidth]"))
    print("help page pictures (source, shown px, drawn px):", shown)
    assert all(f"/extensions/{PACK_FOLDER_NAME}/docs/images/" in src for src, _, _ in shown), shown
    # Drawn for the panel (scripts/make_readme_pictures.py's narrow versions, twice the resolution): shown at least
    # half their size, so their 8-point text is about 11 px or more, where the README's versions shrank to a fifth.
    assert shown and all("_narrow." in src and width >= 0.5 * natural for src, width, natural in shown), shown


def test_a_refused_prompt_rings_the_input_its_message_names(page: Page, frontend: Frontend):
    """Queue a template with one mistake (Decode Path's frames with spacing 'path'): the frontend marks exactly
    that input of that node (the answer's extra_info.input_name). ComfyUI still runs the prompt's outputs that
    do not need the refused node, so the run is cancelled here once the mark is shown."""
    load_template(page, PACK_FOLDER_NAME, INTERPOLATION_TEMPLATE)
    set_widgets(page, "DensityGeodesics_DecodePath", {"frames": 7})
    page.get_by_role("button", name="Run").first.click()
    marked_inputs = """() => window.app.graph.nodes.flatMap(
        node => (node.inputs ?? []).filter(slot => slot.hasErrors).map(slot => [node.type, slot.name]))"""
    try:
        page.wait_for_function(f"({marked_inputs})().length > 0", timeout=15_000)
        fit_view(page)
    finally:
        screenshot(page, frontend.screenshots / "refused_prompt.png")
        frontend.server.interrupt()
        requests.post(frontend.server.url + "/queue", json={"clear": True}, timeout=30)
    assert page.evaluate(marked_inputs) == [["DensityGeodesics_DecodePath", "frames"]]
