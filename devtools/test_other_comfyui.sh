#!/usr/bin/env bash
# The pack's real-server and real-browser tests against any ComfyUI source tree, e.g. a newer release:
#   bash devtools/test_other_comfyui.sh /path/to/ComfyUI [pytest args]
# The tree stays where it is and is used as it is (its own main.py, requirements and pinned frontend); a venv
# for it is made once inside it (.venv-density-geodesics: torch 2.13.0 CPU, the pack's and the tests'
# requirements, the tree's requirements.txt or, for a pip-packaged tree, the tree itself, the CPU torchvision
# shim), with the tests' tiny SD1.5 checkpoint in its models/checkpoints/. The browser tests run on the
# frontend the tree pins and on the newest one (devtools/newest-frontend.txt, installed by `bash dev.sh setup`).
# A tree whose requirements are open ranges (a pip package) gets the newest releases in them, frontend
# included; DEPENDENCIES_AS_OF=<ISO 8601 time, e.g. the release's commit time> resolves them as a user
# installing that release then got them. It applies when the venv is made: delete the venv to change it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMFY="$(cd "${1:?usage: bash devtools/test_other_comfyui.sh COMFYUI_TREE [pytest args]}" && pwd)"; shift
VENV="$COMFY/.venv-density-geodesics"; PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT="$ROOT/constraints.txt"
# shellcheck source=devtools/comfy_install.sh
source "$ROOT/devtools/comfy_install.sh"

if [ ! -f "$VENV/.ready" ]; then
  echo "=== venv for $COMFY in $VENV" >&2
  rm -rf "$VENV"; python3.11 -m venv "$VENV"
  # pip >= 26: its resolver settles pip-packaged trees' wide requirement sets, and it has --uploaded-prior-to
  "$PY" -m pip install -q "pip>=26"
  "$PY" -m pip install -q torch==2.13.0
  "$PY" -m pip install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  install_comfy_requirements "$PY" "$COMFY" "$ROOT" "${DEPENDENCIES_AS_OF:-}"
  touch "$VENV/.ready"
fi
[ -f "$COMFY/models/checkpoints/tiny_sd15.safetensors" ] || make_test_checkpoint "$PY" "$COMFY" "$ROOT"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMFY/comfyui_version.py" 2>/dev/null || true)"
[ -n "$VERSION" ] || VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$COMFY/pyproject.toml" 2>/dev/null | head -1)"
echo "=== ComfyUI ${VERSION:-?}" \
     "in $COMFY, frontend $("$PY" -c 'import importlib.metadata as m; print(m.version("comfyui-frontend-package"))')" >&2
cd "$ROOT"
DENSITY_GEODESICS_COMFYUI="$COMFY" exec "$PY" -m pytest tests/test_server.py tests/test_browser.py "$@"
