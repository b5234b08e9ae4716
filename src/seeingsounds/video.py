"""Videos out and back in: H.264 mp4 files through PyAV (FFmpeg inside the wheel, no system ffmpeg).

:func:`write_mp4` writes ``uint8 [frames, H, W, 3]`` frames atomically, with the provenance as JSON
in the container's ``comment`` tag (the mp4 muxer keeps it); :func:`read_mp4` decodes frames, frame
rate and that provenance back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_path

#: the mp4 tag holding the provenance as JSON
PROVENANCE_TAG = "comment"
#: constant rate factor of the H.264 encoder: visually lossless at small sizes
CRF = 18


def check_frames(frames: Any) -> np.ndarray:
    """``frames`` as ``uint8 [F, H, W, 3]`` with even H and W (H.264's 4:2:0 needs them)."""
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise ConfigError(f"a video is uint8 [frames, height, width, 3], got {array.dtype} {list(array.shape)}")
    if array.shape[1] % 2 or array.shape[2] % 2:
        raise ConfigError(f"H.264 needs an even width and height, got {array.shape[2]}x{array.shape[1]}")
    return array


def write_mp4(frames: Any, path: str | os.PathLike, *, fps: int, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``frames`` as an H.264 mp4 at ``fps``, with ``metadata`` as JSON in its ``comment`` tag."""
    array = check_frames(frames)
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ConfigError(f"{path}: videos are written as .mp4")
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(int(fps)))
            stream.width, stream.height = int(array.shape[2]), int(array.shape[1])
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(CRF)}
            if metadata:
                container.metadata[PROVENANCE_TAG] = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False,
                                                                default=str)
            for frame in array:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():  # flush
                container.mux(packet)
    return path


def read_mp4(path: str | os.PathLike) -> tuple[np.ndarray, float, dict[str, Any]]:
    """``(frames uint8 [F, H, W, 3], fps, provenance)`` of an mp4 (``{}`` without provenance)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConfigError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
            text = container.metadata.get(PROVENANCE_TAG)
    except av.FFmpegError as exc:
        raise ConfigError(f"{path} is not a readable video ({exc})") from exc
    return frames, fps, _provenance(text)


def read_mp4_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance :func:`write_mp4` stored in ``path`` (``{}`` when none), read without decoding frames."""
    try:
        with av.open(str(path)) as container:
            return _provenance(container.metadata.get(PROVENANCE_TAG))
    except av.FFmpegError as exc:
        raise ConfigError(f"{path} is not a readable video ({exc})") from exc


def _provenance(text: str | None) -> dict[str, Any]:
    try:
        provenance = json.loads(text) if text else {}
    except ValueError:
        return {}
    return provenance if isinstance(provenance, dict) else {}
