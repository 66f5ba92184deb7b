"""The pipeline between geodesic_core and its three front ends (the ComfyUI nodes, the batch tool, the demo).

    model.py      the model at a noise level: invert, generate (DiffusersModel, with encode and decode for
                  its images; the nodes' ComfyUI implementation is nodes/encode_decode.py's ComfyModel)
    defaults.py   per-model defaults (alpha, noise level)
    keyframes.py  the one path through keyframes (and loops) every front end solves: plan_keyframes,
                  solve_through_keyframes, and GeodesicSettings, the one settings value
    compare.py    linear, slerp and geodesic paths between the same ends, read out alike
    images.py     image files -> model images
    outputs.py    output folders that appear whole (staged, then renamed into place)
    core.py       the one import of geodesic_core (inside ComfyUI: the pack's own copy), and the core's
                  names the front ends use, handed on (they import the pipeline alone)

Never imports ComfyUI. Nothing is imported here, so a command line can read defaults.py or open images
before torch loads.
"""
