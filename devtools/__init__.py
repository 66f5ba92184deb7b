"""Development tools shared by the tests, benchmarks and scripts (never imported by the node pack).

comfy_harness: in-process ComfyUI (paths, imports, checkpoint, prompt), and make_tiny_sd15 its test
checkpoint; comfy_server: a real ComfyUI server with this pack installed; comfy_browser: the real frontend in
headless chromium; workflow_build / workflow_convert: UI-format workflows from a node list, and back to API
prompts; comfy_symbols: every ComfyUI name the pack uses; mixture_oracle: hard Gaussian mixtures and their
exact answers.
"""
