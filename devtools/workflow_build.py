"""Build UI-format workflows (the JSON the ComfyUI frontend saves and loads) from a compact node list.

The node schemas come from a running server's /object_info, so widget order, UI-only widget values
(seed control, upload button) and socket types are exactly what the frontend would produce.
scripts/make_workflows.py writes example_workflows/*.json with this; the tests convert them back with
workflow_convert.ui_to_api and compare against the frontend's own conversion.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .workflow_convert import UI_ONLY_NODE_TYPES, is_widget, ordered_inputs

COLUMN_WIDTH = 380
NODE_WIDTH = 330
ROW_GAP = 40
WIDGET_HEIGHT = 26
SLOT_HEIGHT = 22
PREVIEW_HEIGHT = 260  # room for the image a LoadImage / output node shows
NOTE_LINE_HEIGHT = 18


@dataclass
class Node:
    """One node: `key` names it inside the spec; `inputs` maps input name -> widget value or Link."""
    key: str
    type: str
    inputs: dict = field(default_factory=dict)
    title: str | None = None


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


def column_of(spec: list[Node]) -> dict[str, int]:
    """Longest distance from a source node: left-to-right layout that follows the data flow."""
    columns: dict[str, int] = {}
    for node in spec:  # spec order is topological: every link points to an earlier node
        sources = [value.node for value in node.inputs.values() if isinstance(value, Link)]
        unknown = [s for s in sources if s not in columns]
        if unknown:
            raise ValueError(f"node '{node.key}' links to {unknown}, which must come earlier in the spec")
        columns[node.key] = 1 + max((columns[s] for s in sources), default=-1)
    return columns


def note_node(node: Node, node_id: int, order: int) -> dict:
    """A frontend-only Note (never sent to the server): its one widget is the text in ``inputs["text"]``."""
    return {"id": node_id, "type": node.type, "order": order, "mode": 0, "flags": {}, "inputs": [], "outputs": [],
            "widgets_values": [node.inputs["text"]], "properties": {}, **({"title": node.title} if node.title else {})}


def build_ui_workflow(spec: list[Node], object_info: dict, *, scale: float = 1.0) -> dict:
    """The UI workflow of ``spec``, opening at zoom ``scale`` on its top-left corner."""
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
    place_nodes(spec, ui_nodes, object_info)
    return {"last_node_id": len(ui_nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": scale, "offset": [0, 0]}}, "version": 0.4}


def place_nodes(spec: list[Node], ui_nodes: list[dict], object_info: dict) -> None:
    columns = column_of(spec)
    next_y: dict[int, float] = {}
    for node, ui_node in zip(spec, ui_nodes, strict=True):
        column = columns[node.key]
        y = next_y.get(column, 60.0)
        if node.type in UI_ONLY_NODE_TYPES:
            lines = sum(1 + len(line) // 48 for line in node.inputs["text"].splitlines())
            height = 40 + NOTE_LINE_HEIGHT * lines
        else:
            height = node_height(ui_node, object_info[node.type])
        ui_node["pos"] = [60 + COLUMN_WIDTH * column, y]
        ui_node["size"] = [NODE_WIDTH, height]
        next_y[column] = y + height + ROW_GAP


def node_height(ui_node: dict, schema: dict) -> float:
    widgets = sum(1 + len(ui_only_values(s)) for _, s in ordered_inputs(schema) if is_widget(s))
    slots = max(len(ui_node["inputs"]), len(schema["output"]))
    shows_image = schema.get("output_node", False) or any(
        ui_only_values(s) == ["image"] for _, s in ordered_inputs(schema))
    return 40 + SLOT_HEIGHT * slots + WIDGET_HEIGHT * widgets + (PREVIEW_HEIGHT if shows_image else 0)
