"""Drive the real ComfyUI frontend in Debian's headless chromium (playwright, no browser download).

Used by tests/test_browser.py and scripts/make_workflows.py (thumbnails).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import requests
from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
MISSING_NODES_DIALOG_TEXT = "This workflow has missing nodes"
APP_READY_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1400, "height": 900}


def launch_chromium(playwright: Playwright) -> Browser:
    if shutil.which(CHROMIUM) is None:
        raise FileNotFoundError(f"{CHROMIUM} is missing: `bash dev.sh setup` installs Debian's chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])


def skip_first_run_dialogs(server_url: str) -> None:
    """A fresh user directory opens the templates tutorial over the canvas; mark it as seen."""
    for setting in ("Comfy.TutorialCompleted", "Comfy.Minimap.Visible"):
        value = "true" if setting == "Comfy.TutorialCompleted" else "false"
        requests.post(f"{server_url}/settings/{setting}", data=value, timeout=30).raise_for_status()


def open_app(browser: Browser, server_url: str) -> Page:
    skip_first_run_dialogs(server_url)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server_url)
    page.wait_for_function("window.app?.graph && window.LiteGraph?.registered_node_types",
                           timeout=APP_READY_TIMEOUT_MS)
    return page


def load_workflow(page: Page, workflow: dict, name: str) -> None:
    page.evaluate("([workflow, name]) => window.app.loadGraphData(workflow, true, true, name)",
                  [workflow, name])
    page.wait_for_timeout(500)  # the missing-nodes dialog opens asynchronously after configure()


def unregistered_node_types(page: Page) -> list[str]:
    return page.evaluate("() => window.app.graph.nodes.map(n => n.type)"
                         ".filter(t => !(t in window.LiteGraph.registered_node_types))")


def missing_nodes_dialog_shown(page: Page) -> bool:
    return page.get_by_text(MISSING_NODES_DIALOG_TEXT).count() > 0


def frontend_api_prompt(page: Page) -> dict:
    """The API-format prompt the frontend itself would POST for the loaded graph."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


def fit_view(page: Page) -> None:
    page.evaluate("() => { window.app.canvas.ds.fitToBounds(window.app.graph.getBoundingBox?.() ?? "
                  "window.app.canvas.graph.getBoundingBox()); window.app.canvas.setDirty(true, true); }")


def screenshot(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
