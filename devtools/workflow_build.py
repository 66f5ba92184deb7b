"""Build UI-format workflows (the JSON the ComfyUI frontend saves and loads) from a compact node list.

The node schemas come from a running server's /object_info, so widget order, UI-only widget values
(seed control, upload button) and socket types are exactly what the frontend would produce.
scripts/make_workflows.py writes example_workflows/*.json with this; the tests convert them back with
workflow_convert.ui_to_api and compare against the frontend's own conversion.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from PIL import ImageFont

from .workflow_convert import UI_ONLY_NODE_TYPES, is_widget, ordered_inputs

# Node sizes as the frontend computes them (LiteGraph's computeSize on frontends 1.32 and 1.58): a node is at
# least as wide as its title and as tall as its slots and widgets; a smaller size in the file is enlarged on
# load, which would overlap the node below it.
NODE_WIDTH = 240
# A title's width in a 14 px sans font (Pillow's own, within a few px of the frontend's), and the room the frontend
# keeps beside it before it cuts the title short with an ellipsis.
TITLE_FONT = ImageFont.load_default(14)
TITLE_PADDING = 70
COLUMN_GAP = 25
ROW_GAP = 20
NODE_PADDING = 20
SLOT_HEIGHT = 20
WIDGET_HEIGHT = 24
MULTILINE_WIDGET_ROWS = 3
OUTPUT_PREVIEW_HEIGHT = 260  # room for the image an output node shows
TEXT_PREVIEW_HEIGHT = 150  # room for the text a PreviewAny shows
# Preview as Text's box on frontend 1.58 (plain text, wrapped): 10 px monospace, 6.0 px a character, 12 px padding
# a side, the box 35 px narrower than its node (measured in chromium, tests/test_browser.py). Frontend 1.32 renders a
# Markdown table as a table after a run.
TEXT_PREVIEW_CHAR_WIDTH = 6.0
TEXT_PREVIEW_MARGIN = 35 + 2 * 12
INPUT_PREVIEW_HEIGHT = 220  # a LoadImage's picture (the frontend's minimum)
NOTE_LINE_HEIGHT = 14
NOTE_CHARS_PER_LINE = 36  # word-wrapped at NODE_WIDTH
NODE_TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its pos
GROUP_PADDING = 15
GROUP_TITLE_HEIGHT = 40  # the group's title bar (font 24) above its nodes
GROUP_GAP = 30
GROUP_COLOURS = ("#3f789e", "#b58b2a", "#88A", "#8A8")  # the frontend's group palette, one per group in order
# The opening view (extra.ds): the whole graph on the canvas of a 1600x900 browser window, clear of the
# frontend's bars (left: the sidebar; top: tabs, the breadcrumb and the Run bar; bottom: zoom controls).
VIEW_LEFT, VIEW_TOP, VIEW_WIDTH, VIEW_HEIGHT = 70, 140, 1510, 700
# LiteGraph draws node text from this zoom up at its default level-of-detail setting (8 px font minimum, 14 px
# node text); below it the nodes are blank boxes.
MIN_READABLE_SCALE = 8 / 14
MAX_SCALE = 1.0


@dataclass
class Node:
    """One node: `key` names it inside the spec; `inputs` maps input name -> widget value or Link. It sits in
    the group titled `group`, in that group's `column` (0 on the left); a column stacks its nodes in spec
    order."""
    key: str
    type: str
    inputs: dict = field(default_factory=dict)
    title: str | None = None
    group: str = ""
    column: int = 0
    text_lines: int = 0  # lines of progress text the node shows below its widgets while and after it runs
    text_columns: int = 0  # characters of the widest line a PreviewAny shows (a table's row): it is made that wide


@dataclass(frozen=True)
class Link:
    node: str
    output: str  # output name as /object_info lists it


def widget_default(name: str, spec: list) -> object:
    options = spec[1] if len(spec) > 1 else {}
    if "default" in options:
        return options["default"]
    choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
    if choices:
        return choices[0]
    raise ValueError(f"widget '{name}' has no default: give it a value in the workflow spec")


def ui_only_values(spec: list) -> list:
    options = spec[1] if len(spec) > 1 else {}
    return (["fixed"] if options.get("control_after_generate") else []) + (
        ["image"] if options.get("image_upload") else [])


def output_slot(schema: dict, link: Link) -> int:
    names = schema["output_name"]
    if link.output not in names:
        raise ValueError(f"node '{link.node}' has no output '{link.output}' (outputs: {names})")
    return names.index(link.output)


def check_order(spec: list[Node]) -> None:
    """Spec order is the workflow's execution order: every link must point to an earlier node."""
    seen: set[str] = set()
    for node in spec:
        later = [value.node for value in node.inputs.values() if isinstance(value, Link) and value.node not in seen]
        if later:
            raise ValueError(f"node '{node.key}' links to {later}, which must come earlier in the spec")
        seen.add(node.key)


def note_node(node: Node, node_id: int, order: int) -> dict:
    """A frontend-only Note (never sent to the server): its one widget is the text in ``inputs["text"]``."""
    return {"id": node_id, "type": node.type, "order": order, "mode": 0, "flags": {}, "inputs": [], "outputs": [],
            "widgets_values": [node.inputs["text"]], "properties": {}, **({"title": node.title} if node.title else {})}


def build_ui_workflow(spec: list[Node], object_info: dict) -> dict:
    """The UI workflow of ``spec``: its nodes in titled groups, opening on a view of the whole graph."""
    check_order(spec)
    ids = {node.key: index + 1 for index, node in enumerate(spec)}
    missing = sorted({node.type for node in spec} - set(object_info) - UI_ONLY_NODE_TYPES)
    if missing:
        raise ValueError(f"node types not on the server: {missing}")
    links: list[list] = []
    ui_nodes = []
    outputs_links: dict[tuple[str, int], list[int]] = {}
    for order, node in enumerate(spec):
        if node.type in UI_ONLY_NODE_TYPES:
            ui_nodes.append(note_node(node, ids[node.key], order))
            continue
        schema = object_info[node.type]
        known = {name for name, _ in ordered_inputs(schema)}
        unknown = set(node.inputs) - known
        if unknown:
            raise ValueError(f"node '{node.key}' ({node.type}) has no inputs {sorted(unknown)}")
        ui_inputs, widgets_values = [], []
        for name, input_spec in ordered_inputs(schema):
            value = node.inputs.get(name)
            socket_type = "COMBO" if isinstance(input_spec[0], list) else input_spec[0]
            if isinstance(value, Link):
                slot = output_slot(object_info[spec[ids[value.node] - 1].type], value)
                link_id = len(links) + 1
                links.append([link_id, ids[value.node], slot, ids[node.key], len(ui_inputs), socket_type])
                outputs_links.setdefault((value.node, slot), []).append(link_id)
                ui_input = {"name": name, "type": socket_type, "link": link_id}
                if is_widget(input_spec):
                    ui_input["widget"] = {"name": name}
                ui_inputs.append(ui_input)
            elif not is_widget(input_spec):
                if name in schema["input_order"].get("required", []):
                    raise ValueError(f"node '{node.key}' ({node.type}): required '{name}' is not linked")
                ui_inputs.append({"name": name, "type": socket_type, "link": None})
            if is_widget(input_spec):
                widget_value = widget_default(name, input_spec) if value is None or isinstance(value, Link) \
                    else value
                widgets_values += [widget_value, *ui_only_values(input_spec)]
        ui_nodes.append({"id": ids[node.key], "type": node.type, "order": order, "mode": 0, "flags": {},
                         "inputs": ui_inputs, "widgets_values": widgets_values,
                         "properties": {"Node name for S&R": node.type},
                         **({"title": node.title} if node.title else {})})
    for node, ui_node in zip(spec, ui_nodes, strict=True):
        if node.type in UI_ONLY_NODE_TYPES:
            continue
        schema = object_info[node.type]
        ui_node["outputs"] = [{"name": name, "type": kind, "slot_index": slot,
                               "links": outputs_links.get((node.key, slot), [])}
                              for slot, (name, kind) in enumerate(zip(schema["output_name"], schema["output"],
                                                                      strict=True))]
    groups = place_nodes(spec, ui_nodes, object_info)
    return {"last_node_id": len(ui_nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": groups, "config": {}, "extra": {"ds": opening_view(groups)}, "version": 0.4}


def place_nodes(spec: list[Node], ui_nodes: list[dict], object_info: dict) -> list[dict]:
    """Groups side by side in order of their first node, columns side by side inside each group (each as wide
    as its widest node); returns the groups (UI format: title and bounding box)."""
    unplaced = [node.key for node in spec if not node.group]
    if unplaced:
        raise ValueError(f"nodes {unplaced} have no group")
    for node, ui_node in zip(spec, ui_nodes, strict=True):
        title = node.title or object_info.get(node.type, {}).get("display_name", node.type)
        ui_node["size"] = [max(NODE_WIDTH, round(TITLE_FONT.getlength(title)) + TITLE_PADDING,
                               text_preview_width(node.text_columns)),
                           note_height(node.inputs["text"]) if node.type in UI_ONLY_NODE_TYPES else
                           node_height(ui_node, object_info[node.type], node.type) + NOTE_LINE_HEIGHT * node.text_lines]
    groups, left = [], 0.0
    for index, title in enumerate(dict.fromkeys(node.group for node in spec)):
        members = [(node, ui_node) for node, ui_node in zip(spec, ui_nodes, strict=True) if node.group == title]
        x, bottom = left + GROUP_PADDING, 0.0
        for column in range(1 + max(node.column for node, _ in members)):
            stacked = [ui_node for node, ui_node in members if node.column == column]
            y = GROUP_TITLE_HEIGHT
            for ui_node in stacked:
                ui_node["pos"] = [x, y + NODE_TITLE_HEIGHT]
                y += NODE_TITLE_HEIGHT + ui_node["size"][1] + ROW_GAP
            bottom = max(bottom, y - ROW_GAP)
            x += max((ui_node["size"][0] for ui_node in stacked), default=0) + COLUMN_GAP
        width = x - COLUMN_GAP + GROUP_PADDING - left
        groups.append({"id": index + 1, "title": title, "bounding": [left, 0.0, width, bottom + GROUP_PADDING],
                       "color": GROUP_COLOURS[index % len(GROUP_COLOURS)], "font_size": 24, "flags": {}})
        left += width + GROUP_GAP
    return groups


def text_preview_width(columns: int) -> int:
    """A PreviewAny's width that shows lines of ``columns`` characters unwrapped (on frontend 1.58)."""
    return math.ceil(TEXT_PREVIEW_CHAR_WIDTH * columns + TEXT_PREVIEW_MARGIN)


def text_preview_columns(width: float) -> int:
    """The characters a line may have in a PreviewAny this wide before it wraps (on frontend 1.58)."""
    return math.floor((width - TEXT_PREVIEW_MARGIN) / TEXT_PREVIEW_CHAR_WIDTH)


def opening_view(groups: list[dict]) -> dict:
    """extra.ds: the zoom and offset that show every group whole and centred in the VIEW_* rectangle of the
    canvas (LiteGraph draws graph point p at (p + offset) * scale)."""
    width = max(x + w for x, _, w, _ in (group["bounding"] for group in groups))
    height = max(y + h for _, y, _, h in (group["bounding"] for group in groups))
    scale = min(MAX_SCALE, VIEW_WIDTH / width, VIEW_HEIGHT / height)
    if scale < MIN_READABLE_SCALE:
        raise ValueError(f"the graph ({width:.0f} x {height:.0f}) fits the opening view only at zoom {scale:.2f}, "
                         f"where the frontend draws no node text (below {MIN_READABLE_SCALE:.2f}): lay it out smaller")
    left = VIEW_LEFT + (VIEW_WIDTH - width * scale) / 2
    top = VIEW_TOP + (VIEW_HEIGHT - height * scale) / 2
    return {"scale": round(scale, 4), "offset": [round(left / scale, 1), round(top / scale, 1)]}


def note_height(text: str) -> float:
    lines = sum(max(1, len(textwrap.wrap(line, NOTE_CHARS_PER_LINE))) for line in text.splitlines())
    return 40 + NOTE_LINE_HEIGHT * lines


def node_height(ui_node: dict, schema: dict, node_type: str) -> float:
    widgets = sum((MULTILINE_WIDGET_ROWS if len(s) > 1 and s[1].get("multiline") else 1) + len(ui_only_values(s))
                  for _, s in ordered_inputs(schema) if is_widget(s))
    slots = max(len(ui_node["inputs"]), len(schema["output"]))
    if node_type == "PreviewAny":
        preview = TEXT_PREVIEW_HEIGHT
    elif schema.get("output_node", False):
        preview = OUTPUT_PREVIEW_HEIGHT
    elif any(ui_only_values(s) == ["image"] for _, s in ordered_inputs(schema)):
        preview = INPUT_PREVIEW_HEIGHT
    else:
        preview = 0
    return NODE_PADDING + SLOT_HEIGHT * slots + WIDGET_HEIGHT * widgets + preview
