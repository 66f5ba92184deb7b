"""A real ComfyUI 0.3.75 server with this pack installed, for the server and browser tests.

The session fixture `comfy_server` lives in tests/conftest.py: every module of a test session shares ONE
server (start-up costs ~10-20 s on CPU).

Each test session gets its own ComfyUI base directory (test-artifacts/comfy-<time>/): custom_nodes/
holds a symlink to this repository, models/checkpoints/ symlinks to the generated tiny SD1.5
checkpoint (under its own name and the SD1.5 file name the templates use), and input/, output/, user/,
temp/ are fresh. Nothing is written into .comfyui/ComfyUI itself, and the server log stays next to the
outputs as a test artifact.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import requests
from PIL import Image
from sklearn.datasets import load_digits

from .comfy_harness import (
    COMFY_DIR,
    NEWEST_FRONTEND,
    PACK_NAME,
    ROOT,
    TINY_CHECKPOINT_NAME,
    frontend_root,
    is_source_tree,
    require_tiny_checkpoint,
)

PYTHON = Path(sys.executable)  # the tests' own Python runs ComfyUI: the venv that has its requirements
ARTIFACTS = ROOT / "test-artifacts"
# The templates name the SD1.5 file ComfyUI's own templates use, so a user who has it runs them as they
# are; the test server serves the generated tiny checkpoint under that name as well.
TEMPLATE_CHECKPOINT_NAME = "v1-5-pruned-emaonly-fp16.safetensors"
PACK_FOLDER_NAME = PACK_NAME  # custom_nodes/<folder>: ComfyUI imports the pack under this name
START_TIMEOUT_S = 180.0
# Files the workflows' LoadImage nodes name: real handwritten digits (scikit-learn's data set),
# upscaled; the clip pans across a strip of digits, i.e. real pixels with real motion.
KEYFRAME_FILES = ("geodesics_keyframe_a.png", "geodesics_keyframe_b.png", "geodesics_keyframe_c.png")
KEYFRAME_DIGITS = (0, 3, 6)  # indices into load_digits(): a 0, a 3 and a 6
CLIP_FILE = "geodesics_clip.webp"
CLIP_FRAMES = 9
# The folder current ComfyUI documents for a custom node's templates (0.3.75 serves it first as well).
WORKFLOWS_DIR = ROOT / "example_workflows"
WORKFLOW_NAMES = sorted(p.stem for p in WORKFLOWS_DIR.glob("*.json"))
# The template browser shows a custom node template's file name as its title and, with - and _ read as
# spaces, as its description; the pack lists them sorted by name (nodes/template_routes.py), so this one is first.
EMBEDDED_TEMPLATE = "A first try, geodesic between two digits (embedded model, no checkpoint)"
INTERPOLATION_TEMPLATE = "Geodesic interpolation between two images"
LOOP_TEMPLATE = "Geodesic loop through three keyframes"
EXTRAPOLATION_TEMPLATE = "Geodesic path continued past its last frame"
VIDEO_TEMPLATE = "Video density and geodesic efficiency"
IMAGE_SIZE = 64  # px of the example inputs in the tests: CPU-sized
# CPU-sized budgets for the tests, set on the workflows' nodes by type (in API prompts or in the
# browser); everything else stays the workflow's own.
FAST_SETTINGS = {
    "DensityGeodesics_EncodeKeyframes": {"steps": 2},
    "DensityGeodesics_SolveBVP": {"max_evals": 80, "tolerance": 0.05},  # one readout of 17 frames is 65
    "DensityGeodesics_SolveIVP": {"frames": 3},
    "DensityGeodesics_DensityReadout": {"max_evals": 80, "tolerance": 0.05},
    "DensityGeodesics_DecodePath": {"steps": 2},
    "ImageScale": {"width": IMAGE_SIZE, "height": IMAGE_SIZE},  # the SD templates scale every picture to 512 px
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_base_directory(base: Path) -> Path:
    """A ComfyUI base directory that sees this repository as the only extra custom node pack."""
    checkpoint = require_tiny_checkpoint()
    for sub in ("custom_nodes", "models/checkpoints", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    links = {base / "custom_nodes" / PACK_FOLDER_NAME: ROOT,
             **{base / "models" / "checkpoints" / name: checkpoint for name in (TINY_CHECKPOINT_NAME,
                                                                                  TEMPLATE_CHECKPOINT_NAME)}}
    for link, target in links.items():
        if link.is_symlink() and link.resolve() == target.resolve():
            continue  # a base directory kept from an earlier run (bash dev.sh comfyui) already has it
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=target.is_dir())
    return base


def digit_image(index: int, size: int) -> Image.Image:
    """Dark ink on light paper, RGB: the 8x8 digit upscaled with bicubic smoothing."""
    digit = load_digits().images[index] / 16.0
    gray = Image.fromarray((255 * (1 - digit)).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return gray.convert("RGB")


def pan_clip(size: int, frames: int) -> list[Image.Image]:
    """A camera panning right across a strip of digits, `size` px square frames."""
    strip = np.concatenate([np.asarray(digit_image(i, size)) for i in range(1, 4)], axis=1)
    step = (strip.shape[1] - size) // (frames - 1)
    return [Image.fromarray(strip[:, k * step:k * step + size]) for k in range(frames)]


def write_example_inputs(input_dir: Path, size: int = IMAGE_SIZE) -> None:
    for name, index in zip(KEYFRAME_FILES, KEYFRAME_DIGITS, strict=True):
        digit_image(index, size).save(input_dir / name)
    first, *rest = pan_clip(size, CLIP_FRAMES)
    first.save(input_dir / CLIP_FILE, save_all=True, append_images=rest, duration=100, lossless=True)


@dataclass
class PromptResult:
    prompt_id: str
    status: str  # "success" or "error"
    outputs: dict
    # The prompt's messages as the frontend gets them over the websocket, name -> data, e.g. "execution_error" ->
    # {..., "exception_message"} (/history keeps them only on some versions).
    messages: dict
    wall_s: float

    def output_files(self, node_id: str, key: str = "images") -> list[dict]:
        return self.outputs.get(node_id, {}).get(key, [])

    @property
    def error_message(self) -> str:
        return self.messages.get("execution_error", {}).get("exception_message", "")


class ComfyServer:
    """One ComfyUI process on the CPU (`python main.py --cpu`, or `comfyui --cpu` for a pip-packaged
    ComfyUI, whose legacy main.py ignores --base-directory); stop() ends it by its PID."""

    def __init__(self, base_directory: Path, port: int, front_end_root: Path | None = None,
                 extra_env: dict[str, str] | None = None):
        self.base_directory = base_directory
        self.port = port
        self.front_end_root = front_end_root  # None: the frontend ComfyUI pins
        self.extra_env = extra_env or {}  # added to this process's environment for the server
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = base_directory / "comfyui.log"
        self.client_id = str(uuid.uuid4())
        self.process: subprocess.Popen | None = None
        # Every message the server sends this client, and the collectors of `listening` blocks, fed by one
        # websocket connection from start() on (ComfyUI keeps one socket per client id).
        self.messages = ServerMessages()
        self._collectors = [self.messages]
        self._stop_listening = threading.Event()
        self._listener: threading.Thread | None = None

    @property
    def input_dir(self) -> Path:
        return self.base_directory / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_directory / "output"

    def start(self) -> None:
        base = self.base_directory
        launcher = [str(PYTHON), "main.py"] if is_source_tree() else [str(PYTHON.parent / "comfyui")]
        command = [*launcher, "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(base),
                   # the default database lives in .comfyui/ComfyUI/user, which this set-up never creates
                   "--database-url", f"sqlite:///{base / 'user' / 'comfyui.db'}"]
        if self.front_end_root is not None:
            command += ["--front-end-root", str(self.front_end_root)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=COMFY_DIR, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.extra_env})
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/object_info", timeout=5).ok:
                    self._listen()
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer /object_info in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def _listen(self) -> None:
        connected = threading.Event()

        async def listen() -> None:
            async with aiohttp.ClientSession() as session, session.ws_connect(
                    f"{self.url.replace('http', 'ws', 1)}/ws?clientId={self.client_id}") as ws:
                connected.set()
                while not self._stop_listening.is_set():
                    try:
                        message = await ws.receive(timeout=0.1)
                    except asyncio.TimeoutError:
                        continue
                    if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    for collector in list(self._collectors):
                        if message.type == aiohttp.WSMsgType.TEXT:
                            collector.add_json(message.json())
                        elif message.type == aiohttp.WSMsgType.BINARY:
                            collector.add_binary(message.data)

        self._listener = threading.Thread(target=asyncio.run, args=(listen(),), daemon=True)
        self._listener.start()
        assert connected.wait(30), "the websocket did not connect"

    def stop(self) -> None:
        self._stop_listening.set()
        if self._listener is not None:
            self._listener.join(10)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=30)

    def object_info(self) -> dict:
        response = self.get("/object_info")
        response.raise_for_status()
        return response.json()

    def submit(self, api_prompt: dict) -> requests.Response:
        """POST /prompt; the caller checks the status (400 carries node_errors)."""
        body = {"prompt": api_prompt, "client_id": self.client_id}
        return requests.post(self.url + "/prompt", data=json.dumps(body), timeout=60)

    def wait(self, prompt_id: str, timeout_s: float, started: float | None = None) -> PromptResult:
        started = time.monotonic() if started is None else started
        while time.monotonic() - started < timeout_s:
            entry = self.get(f"/history/{prompt_id}").json().get(prompt_id)
            status = (entry or {}).get("status", {})
            messages = {name: data for name, data in list(self.messages.json) if data.get("prompt_id") == prompt_id}
            # Done once the history has it and its last message has come over the websocket as well.
            if ((status.get("completed") or status.get("status_str") == "error")
                    and PROMPT_ENDS.intersection(messages)):
                return PromptResult(prompt_id, status["status_str"], entry.get("outputs", {}), messages,
                                    time.monotonic() - started)
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout_s} s:\n{self.log_tail()}")

    def run(self, api_prompt: dict, timeout_s: float = 300.0) -> PromptResult:
        """Queue a prompt that must be accepted and wait for its history entry."""
        started = time.monotonic()
        response = self.submit(api_prompt)
        if response.status_code != 200:
            raise AssertionError(f"/prompt refused the prompt ({response.status_code}): {response.text}")
        return self.wait(response.json()["prompt_id"], timeout_s, started)

    @contextmanager
    def listening(self) -> Iterator[ServerMessages]:
        """The websocket messages the server sends this client (as the frontend gets them) while the block runs."""
        messages = ServerMessages()
        self._collectors.append(messages)
        try:
            yield messages
        finally:
            self._collectors.remove(messages)

    def interrupt(self) -> None:
        requests.post(self.url + "/interrupt", timeout=30).raise_for_status()

    def queue_running(self) -> list:
        return self.get("/queue").json()["queue_running"]

    def output_path(self, file_entry: dict) -> Path:
        folder = self.base_directory / file_entry["type"] / file_entry.get("subfolder", "")
        return folder / file_entry["filename"]


PROGRESS_TEXT_EVENT = 3  # server.BinaryEventTypes.TEXT: a node's status line (send_progress_text)
PROMPT_ENDS = {"execution_success", "execution_error", "execution_interrupted"}  # a prompt's last message


@dataclass
class ServerMessages:
    """What the server sent one client: JSON messages (type, data) and nodes' status lines (node id, text)."""
    json: list[tuple[str, dict]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)

    def add_json(self, message: dict) -> None:
        self.json.append((message.get("type"), message.get("data", {})))

    def add_binary(self, data: bytes) -> None:
        if int.from_bytes(data[:4], "big") == PROGRESS_TEXT_EVENT:
            length = int.from_bytes(data[4:8], "big")
            self.texts.append((data[8:8 + length].decode(), data[8 + length:].decode(errors="replace")))

    def progress(self, node_id: str) -> list[tuple[float, float]]:
        """(value, max) of every progress message of the node, in order."""
        return [(data["value"], data["max"]) for kind, data in list(self.json)
                if kind == "progress" and data.get("node") == node_id]

    def texts_of(self, node_id: str) -> list[str]:
        return [text for node, text in list(self.texts) if node == node_id]


def start_server(base_directory: Path, front_end_root: Path | None = None,
                 extra_env: dict[str, str] | None = None, port: int | None = None) -> ComfyServer:
    server = ComfyServer(make_base_directory(base_directory), port or free_port(), front_end_root, extra_env)
    server.start()
    return server


TRY_DIRECTORY = ROOT / ".comfyui" / "try"


def main(argv: list[str] | None = None) -> None:
    """``bash dev.sh comfyui``: the ComfyUI the tests install, with this pack and its templates, on 127.0.0.1
    until Ctrl-C; workflows, inputs and outputs stay in .comfyui/try/ between runs."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8188, help="port on 127.0.0.1 (default 8188)")
    parser.add_argument("--newest-frontend", action="store_true",
                        help="serve the newest frontend (devtools/newest-frontend.txt) instead of the pinned one")
    args = parser.parse_args(argv)
    front_end = frontend_root(NEWEST_FRONTEND) if args.newest_frontend else None
    server = start_server(TRY_DIRECTORY, front_end, port=args.port)
    write_example_inputs(server.input_dir)
    print(f"ComfyUI with Density Geodesics: {server.url} (Workflow > Browse Templates > {PACK_FOLDER_NAME}: start "
          f"with \"{EMBEDDED_TEMPLATE}\"). Log: {server.log_path}. Ctrl-C stops it.", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
