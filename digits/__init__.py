"""The embedded default model: a small diffusers UNet trained on scikit-learn's bundled 8x8 digits.

It gives a real learned density that runs on a laptop CPU with nothing downloaded, so the geodesic
method can be shown end to end (`python -m digits.main`) and benchmarked (`benchmarks/digits_pairs.py`).
"""
