"""Data-set scale jobs on Ray Data: geodesic interpolation over a manifest or folder of image pairs or
keyframe lists, and density analysis over a folder of videos. Local by default, a cluster by address.

    python -m geodesic_batch example-pairs out/digit_pairs
    python -m geodesic_batch interpolate out/digit_pairs --out out/batch

Optional: needs the ``batch`` extra (ray[data], pyarrow, av). The ComfyUI nodes never import it.
"""
