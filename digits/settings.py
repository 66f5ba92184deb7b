"""The demo's and the pipeline's constants, in a module with no heavy imports: the command line reads
them for its defaults and checks its arguments before torch, diffusers or scikit-learn load."""

from geodesic_pipeline.defaults import ModelDefaults

IMAGE_SIZE = 8  # native resolution: upsampling adds no information and would cost 4x the compute
NOISE_LEVEL = 0.6  # the paper's default: 60% of the schedule (sigma ~2.28 with this scheduler)
# Chosen by a stated rule on training-split pairs only, never on the evaluation pairs (digits/calibrate.py).
ALPHA = 0.5  # 1 / median log-density range along slerp = 0.495 (python -m digits.calibrate)
DEFAULTS = ModelDefaults(alpha=ALPHA, noise_level=NOISE_LEVEL)  # the embedded model's own, for every front end
ODE_STEPS = 20  # DDIM steps between the clean images and the noise level, both directions
