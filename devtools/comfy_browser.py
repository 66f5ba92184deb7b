"""Drive the real ComfyUI frontend in Debian's headless chromium (playwright, no browser download).

Used by tests/test_browser.py.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import requests
from playwright.sync_api import Browser, Locator, Page, Playwright, expect

CHROMIUM = "/usr/bin/chromium"
MISSING_NODES_TEXT = re.compile(r"missing nodes?\b", re.IGNORECASE)
APP_READY_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1600, "height": 900}  # the window the templates open readably in (workflow_build.VIEW_*)


def launch_chromium(playwright: Playwright) -> Browser:
    if shutil.which(CHROMIUM) is None:
        raise FileNotFoundError(f"{CHROMIUM} is missing: `bash dev.sh setup` installs Debian's chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])


# A fresh user directory opens the templates tutorial over the canvas and a minimap over the graph;
# LOD rendering would hide node text in zoomed-out thumbnails.
FRONTEND_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False,
                     "LiteGraph.Canvas.MinFontSizeForLOD": 0}


def apply_settings(server_url: str) -> None:
    for setting, value in FRONTEND_SETTINGS.items():
        requests.post(f"{server_url}/settings/{setting}", json=value, timeout=30).raise_for_status()


def open_app(browser: Browser, server_url: str, viewport: dict = VIEWPORT) -> Page:
    apply_settings(server_url)
    page = browser.new_page(viewport=viewport)
    page.goto(server_url)
    page.wait_for_function("window.app?.graph && window.LiteGraph?.registered_node_types",
                           timeout=APP_READY_TIMEOUT_MS)
    return page


def load_workflow(page: Page, workflow: dict, name: str) -> None:
    page.evaluate("([workflow, name]) => window.app.loadGraphData(workflow, true, true, name)",
                  [workflow, name])
    page.wait_for_timeout(500)  # the missing-nodes dialog opens asynchronously after configure()


def open_template_browser(page: Page, pack_folder: str) -> None:
    """Workflow > Browse Templates, then the pack's entry under EXTENSIONS."""
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_role("button", name=pack_folder, exact=True).click()


def load_template(page: Page, pack_folder: str, name: str) -> None:
    """Load a pack workflow the way a user does: click its card in the template browser."""
    page.evaluate("() => { window.__workflowBefore = window.app.extensionManager.workflow.activeWorkflow; }")
    open_template_browser(page, pack_folder)
    page.locator(f"[data-testid='template-workflow-{name}']").click()
    # A template opens as a new tab ("name (2)" when one of that name is open already).
    page.wait_for_function("""name => {
        const active = window.app.extensionManager.workflow.activeWorkflow;
        return active !== window.__workflowBefore && active?.filename.startsWith(name);
    }""", arg=name)
    page.wait_for_timeout(500)  # the missing-nodes dialog opens asynchronously after configure()


def unregistered_node_types(page: Page) -> list[str]:
    return page.evaluate("() => window.app.graph.nodes.map(n => n.type)"
                         ".filter(t => !(t in window.LiteGraph.registered_node_types))")


def missing_nodes_warnings(page: Page) -> Locator:
    """The missing-node warnings a user sees, found by their text: frontend 1.32 opens a dialog "This workflow
    has missing nodes", 1.5x a status overlay "Missing node: <type>" in the corner."""
    return page.get_by_text(MISSING_NODES_TEXT).filter(visible=True)


def dismiss_missing_nodes_warnings(page: Page) -> None:
    """Press the Close button of every missing-node warning (the 1.32 dialog, the 1.5x status overlay)."""
    for role in ("dialog", "status"):
        for warning in page.get_by_role(role).filter(has_text=MISSING_NODES_TEXT).all():
            warning.get_by_role("button", name="Close").click()
    expect(missing_nodes_warnings(page)).to_have_count(0)


def frontend_api_prompt(page: Page) -> dict:
    """The API-format prompt the frontend itself would POST for the loaded graph."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


def fit_view(page: Page) -> None:
    """The frontend's own "Fit view" command (keyboard "."): the whole graph in the window."""
    page.evaluate("() => window.app.canvas.deselectAll()")
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(800)  # the command animates the zoom


def screenshot(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
