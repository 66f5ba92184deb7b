"""The embedded MNIST latent model's shipped files: its weights, and the record training wrote beside them
(architectures, the diffusers scheduler config, the latent scaling). Import-light on purpose: the ComfyUI
loader inside the node pack (nodes/embedded_model.py) reads these same files, where the demo's modules,
which import geodesic_core top-level, cannot be imported."""

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
VAE_FILE = WEIGHTS_DIR / "mnist_vae.safetensors"
UNET_FILE = WEIGHTS_DIR / "mnist_unet.safetensors"
METADATA_FILE = WEIGHTS_DIR / "mnist_model.json"


def load_metadata(metadata_file: Path = METADATA_FILE) -> dict:
    return json.loads(Path(metadata_file).read_text())
