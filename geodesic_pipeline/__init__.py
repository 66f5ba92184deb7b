"""The pipeline between geodesic_core and its three front ends (the ComfyUI nodes, the batch tool, the demo).

    model.py      the model at a noise level: invert, generate (DiffusersModel, with encode and decode for
                  its images; the nodes' ComfyUI implementation is nodes/encode_decode.py's ComfyModel)
    defaults.py   per-model defaults (alpha, noise level)
    keyframes.py  the piecewise solve through keyframes and loops, with its share of frames and budget
    compare.py    linear, slerp and geodesic paths between the same ends, read out alike
    images.py     image files -> model images
    core.py       geodesic_core, the same copy as the caller's (inside ComfyUI: the pack's own)

Never imports ComfyUI. Nothing is imported here, so a command line can read defaults.py or open images
before torch loads.
"""
