"""The Comfy Registry metadata, read by ComfyUI's own parser (comfy_config.config_parser, the code that
turns a custom node's pyproject.toml into registry fields), the changelog and the publish workflow."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import yaml
from packaging.specifiers import SpecifierSet

from devtools import comfy_harness as harness

harness.import_comfy()  # puts ComfyUI on sys.path
from comfy_config import config_parser  # noqa: E402
from comfyui_version import __version__ as comfyui_version  # noqa: E402

ROOT = harness.ROOT
CONFIG = config_parser.extract_node_configuration(str(ROOT))


def test_registry_fields_are_complete():
    project, comfy = CONFIG.project, CONFIG.tool_comfy
    # The registry's node id rules: letters first, then letters, digits, - _ . without repeats, < 100 chars.
    assert re.fullmatch(r"[a-z][a-z0-9]*([-_.][a-z0-9]+)*", project.name) and len(project.name) < 100
    assert re.fullmatch(r"\d+\.\d+\.\d+", project.version)
    assert project.description and project.license.file == "LICENSE" and (ROOT / "LICENSE").is_file()
    assert project.urls.repository.startswith("https://github.com/")
    assert comfy.publisher_id and comfy.display_name
    assert project.supported_os == ["OS Independent"]  # the parser gives [] for an invalid classifier
    assert comfyui_version in SpecifierSet(project.supported_comfyui_version), (
        f"requires-comfyui {project.supported_comfyui_version!r} excludes the ComfyUI the tests run on")


def test_icon_is_an_svg_in_the_repository_at_its_raw_url():
    icon = CONFIG.tool_comfy.icon
    repository = CONFIG.project.urls.repository.removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    assert icon.startswith(prefix) and icon.endswith(".svg"), icon
    root = ElementTree.parse(ROOT / icon.removeprefix(prefix)).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("width") == root.get("height")


def test_changelog_starts_with_the_published_version():
    """Changes not yet published gather under "Unreleased" above it."""
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    versions = headings[1:] if headings[:1] == ["Unreleased"] else headings
    assert versions and versions[0] == CONFIG.project.version


def test_publish_workflow_runs_the_tests_then_the_registry_action_on_version_changes():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "publish.yml").read_text())
    trigger = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert trigger["push"]["paths"] == ["pyproject.toml"] and "workflow_dispatch" in trigger
    jobs = workflow["jobs"]
    assert {"run": "bash .ci/run"} in jobs["test"]["steps"]
    publish = jobs["publish-node"]
    assert publish["needs"] == "test"
    (action,) = [step for step in publish["steps"] if step.get("uses", "").startswith("Comfy-Org/publish-node-action")]
    assert action["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"
