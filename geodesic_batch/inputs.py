"""What a job works on: items from a manifest or a folder, their content hashes, and reading their pixels.

An interpolate item is two or more image files in order (a pair, or keyframes, optionally a closed loop);
an analyze item is one clip (a video file, or a folder of frame images in name order).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from geodesic_pipeline.images import ImageFileError, read_image_files, to_model_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi")
HASH_CHUNK = 1 << 20


class InputsError(ValueError):
    """The manifest or input folder itself is unusable (the whole job stops; bad items do not)."""


class ItemError(ValueError):
    """One item cannot be processed; it becomes a failure row and the job goes on."""


@dataclass(frozen=True)
class Item:
    item_id: str
    inputs: tuple[str, ...]    # image files (interpolate) or one clip (analyze), as given
    loop: bool = False

    def as_json(self) -> str:
        return json.dumps({"item_id": self.item_id, "inputs": list(self.inputs), "loop": self.loop})

    @staticmethod
    def from_json(text: str) -> Item:
        data = json.loads(text)
        return Item(data["item_id"], tuple(data["inputs"]), data["loop"])


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def interpolate_items(source: Path) -> list[Item]:
    """Items from a CSV / JSONL manifest or a folder whose images, in name order, are taken two at a time.

    CSV: a header with ``images`` (paths separated by ``;``) or ``start`` and ``end``, optional ``id`` and
    ``loop``. JSONL: one object per line with ``images`` (a list) or ``start``/``end``, optional ``id``,
    ``loop``. Relative paths are relative to the manifest's folder."""
    if source.is_dir():
        images = images_in(source)
        if not images or len(images) % 2:
            raise InputsError(f"input folder {source}: expected an even number of images (taken two at a time "
                              f"in name order as start and end of each pair), found {len(images)}")
        return [Item(f"{a.stem}-{b.stem}", (str(a), str(b))) for a, b in zip(images[::2], images[1::2], strict=True)]
    records = read_manifest(source)
    items = []
    for number, record in enumerate(records, start=1):
        where = f"manifest {source}, item {number}"
        if "images" in record:
            images = record["images"]
            if isinstance(images, str):
                images = [part.strip() for part in images.split(";") if part.strip()]
        elif "start" in record and "end" in record:
            images = [record["start"], record["end"]]
        else:
            raise InputsError(f"{where}: expected 'images' (a list of keyframe paths) or 'start' and 'end'")
        if not isinstance(images, list) or len(images) < 2:
            raise InputsError(f"{where}: expected at least 2 image paths, got {images!r}")
        loop = parse_bool(record.get("loop", False), f"{where}, 'loop'")
        paths = tuple(str(resolve(source.parent, image)) for image in images)
        items.append(Item(str(record.get("id") or f"item{number:05d}"), paths, loop))
    check_unique_ids(items, source)
    return items


def analyze_items(source: Path) -> list[Item]:
    """Items from a folder of clips (video files and sub-folders of frames), one clip, or a CSV / JSONL
    manifest with a ``clip`` column and optional ``id``."""
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return [Item(source.stem, (str(source),))]
    if source.is_dir():
        clips = sorted(p for p in source.iterdir()
                       if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and images_in(p)))
        if not clips:
            if images_in(source):
                return [Item(source.name, (str(source),))]
            raise InputsError(f"input folder {source}: expected video files ({', '.join(VIDEO_SUFFIXES)}) or "
                              f"folders of frame images, found none")
        return [Item(clip.stem if clip.is_file() else clip.name, (str(clip),)) for clip in clips]
    items = []
    for number, record in enumerate(read_manifest(source), start=1):
        if "clip" not in record:
            raise InputsError(f"manifest {source}, item {number}: expected a 'clip' (video file or frame folder)")
        items.append(Item(str(record.get("id") or f"clip{number:05d}"), (str(resolve(source.parent, record["clip"])),)))
    check_unique_ids(items, source)
    return items


def read_manifest(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputsError(f"input {path}: expected a folder, a .csv or .jsonl manifest (or a video for analyze); "
                          f"it does not exist or is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputsError(f"manifest {path}: cannot read it as text ({error})") from error
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise InputsError(f"manifest {path}, line {number}: not a JSON object ({error})") from error
            if not isinstance(records[-1], dict):
                raise InputsError(f"manifest {path}, line {number}: expected a JSON object, got {line.strip()!r}")
        return records
    raise InputsError(f"manifest {path}: expected a .csv or .jsonl file")


def resolve(base: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path


def parse_bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise InputsError(f"{where}: expected true or false, got {value!r}")


def check_unique_ids(items: list[Item], source: Path) -> None:
    seen = set()
    for item in items:
        if item.item_id in seen:
            raise InputsError(f"manifest {source}: item id {item.item_id!r} appears more than once")
        seen.add(item.item_id)


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes, or of a frame folder's image names and bytes. Raises ItemError."""
    digest = hashlib.sha256()
    try:
        files = images_in(path) if path.is_dir() else [path]
        for file in files:
            if path.is_dir():
                digest.update(file.name.encode() + b"\0")
            with open(file, "rb") as handle:
                while chunk := handle.read(HASH_CHUNK):
                    digest.update(chunk)
    except OSError as error:
        raise ItemError(f"cannot read {path} ({error.strerror or error})") from error
    return digest.hexdigest()


def read_images(paths: list[str], size: tuple[int, int], grey: bool, invert_light_background: bool
                ) -> tuple[torch.Tensor, list[str]]:
    """Image files of one item -> ([K, C, H, W], notices); all must open as images and have the same size."""
    try:
        return read_image_files(paths, size, grey, invert_light_background)
    except ImageFileError as error:
        raise ItemError(str(error)) from error


def evenly_spaced(total: int, wanted: int) -> list[int]:
    """``wanted`` frame indices spread over ``total`` frames, first and last included (0: all)."""
    if wanted == 0 or wanted >= total:
        return list(range(total))
    return sorted({round(i * (total - 1) / (wanted - 1)) for i in range(wanted)})


def read_clip(path: str, wanted: int, size: tuple[int, int], grey: bool, invert_light_background: bool
              ) -> tuple[torch.Tensor, list[str], list[int], int]:
    """A clip's frames at the model's size: ([F, C, H, W], notices, the frame indices taken, frames in the
    clip). Videos are decoded with PyAV; a folder's frames are its images in name order."""
    clip = Path(path)
    if clip.is_dir():
        files = images_in(clip)
        indices = evenly_spaced(len(files), wanted)
        if len(files) < 2:
            raise ItemError(f"clip {path}: expected at least 2 frames, found {len(files)}")
        return *read_images([str(files[i]) for i in indices], size, grey, invert_light_background), indices, len(files)
    import av  # optional dependency (the batch extra); imported where a video is actually decoded

    try:
        # Two passes: count the frames (containers' frame counts are often missing or wrong), then convert
        # only the frames taken, so a long clip never sits in memory.
        total = count_frames(path)
        if total < 2:
            raise ItemError(f"clip {path}: expected at least 2 frames, found {total}")
        indices = evenly_spaced(total, wanted)
        taken = set(indices)
        with av.open(path) as container:
            frames = [frame.to_image() for number, frame in enumerate(container.decode(video=0)) if number in taken]
    except (av.error.FFmpegError, OSError) as error:
        raise ItemError(f"clip {path}: cannot decode it as a video ({error})") from error
    names = [f"{path} frame {number}" for number in indices]
    return *to_model_images(frames, names, size, grey, invert_light_background), indices, total


def count_frames(path: str) -> int:
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise ItemError(f"clip {path}: has no video stream")
        return sum(1 for _ in container.decode(video=0))
