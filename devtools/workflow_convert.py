"""UI-format workflow (what the ComfyUI frontend saves) -> API-format prompt (what POST /prompt takes).

The server's /object_info is the only source of truth for which inputs are widgets and in which
order their values sit in `widgets_values`; the frontend adds UI-only values that are not inputs:
  - an INT input with `control_after_generate` is followed by its control value ("fixed", ...);
  - a combo input with `image_upload` is followed by the upload button's value ("image").
"""
from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UI_ONLY_NODE_TYPES = {"Note", "MarkdownNote"}


class WorkflowConversionError(ValueError):
    pass


def is_widget(spec: list) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput", False)


def ui_only_value_count(spec: list) -> int:
    """How many frontend-only values follow this widget's own value in widgets_values."""
    options = spec[1] if len(spec) > 1 else {}
    return int(bool(options.get("control_after_generate"))) + int(bool(options.get("image_upload")))


def ordered_inputs(schema: dict) -> list[tuple[str, list]]:
    """(name, spec) of the required then optional inputs, in the order the frontend lays them out."""
    specs = {**schema["input"].get("required", {}), **schema["input"].get("optional", {})}
    order = schema["input_order"].get("required", []) + schema["input_order"].get("optional", [])
    return [(name, specs[name]) for name in order]


def widget_values_by_name(node: dict, schema: dict) -> dict:
    values = list(node.get("widgets_values", []))
    by_name = {}
    position = 0
    for name, spec in ordered_inputs(schema):
        if not is_widget(spec):
            continue
        if position >= len(values):
            raise WorkflowConversionError(
                f"node {node['id']} ({node['type']}): widgets_values has {len(values)} entries, "
                f"but widget '{name}' needs entry {position}")
        by_name[name] = values[position]
        position += 1 + ui_only_value_count(spec)
    if position != len(values):
        raise WorkflowConversionError(
            f"node {node['id']} ({node['type']}): widgets_values has {len(values)} entries, "
            f"the schema's widgets account for {position}: {values}")
    return by_name


def linked_inputs(node: dict, links_by_id: dict) -> dict:
    """Input name -> [source node id, source slot] for every connected input of the node."""
    linked = {}
    for slot in node.get("inputs", []):
        if slot.get("link") is None:
            continue
        _, source_id, source_slot, *_ = links_by_id[slot["link"]]
        name = slot["widget"]["name"] if "widget" in slot else slot["name"]
        linked[name] = [str(source_id), source_slot]
    return linked


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow; raises WorkflowConversionError naming the node it cannot convert."""
    links_by_id = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in UI_ONLY_NODE_TYPES:
            continue
        if node["type"] not in object_info:
            raise WorkflowConversionError(f"node {node['id']}: type '{node['type']}' is not on this server")
        if node.get("mode", 0) != 0:
            raise WorkflowConversionError(f"node {node['id']} ({node['type']}) is muted or bypassed")
        schema = object_info[node["type"]]
        inputs = {**widget_values_by_name(node, schema), **linked_inputs(node, links_by_id)}
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
