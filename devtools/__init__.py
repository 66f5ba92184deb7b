"""Development tools shared by the tests, benchmarks and scripts (never imported by the node pack).

comfy_harness: in-process ComfyUI (paths, imports, checkpoint, prompt); comfy_server: a real ComfyUI
server with this pack installed; comfy_browser: the real frontend in headless chromium;
workflow_build / workflow_convert: UI-format workflows from a node list, and back to API prompts.
"""
