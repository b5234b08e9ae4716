"""Videos out and back in: H.264 mp4 files through PyAV (FFmpeg inside the wheel, no system ffmpeg).

:func:`write_mp4` writes ``uint8 [frames, H, W, 3]`` frames atomically, with the provenance as JSON
in the container's ``comment`` tag (the mp4 muxer keeps it); :func:`read_mp4` decodes frames, frame
rate and that provenance back. :class:`SessionRecorder` writes a live session as it goes: its pictures
and its sound (AAC) in one mp4.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from seeingsounds.errors import ConfigError
from seeingsounds.imaging import provenance_json
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
                container.metadata[PROVENANCE_TAG] = provenance_json(metadata)
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


class SessionRecorder:
    """An mp4 written while a session goes on: pictures at a constant frame rate (each shown from its time
    until the next one's; the first from the start) and the session's sound (mono float32 blocks) as AAC.

    Written to a temporary file beside ``path``: :meth:`close` puts it in place, :meth:`discard` (or an
    error inside a ``with`` block) removes it. ``metadata`` goes into the ``comment`` tag as JSON, as
    :func:`write_mp4` does.
    """

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, fps: int, sample_rate: int,
                 metadata: Mapping[str, Any] | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ConfigError(f"{self.path}: videos are written as .mp4")
        if width % 2 or height % 2:
            raise ConfigError(f"H.264 needs an even width and height, got {width}x{height}")
        self.fps, self.sample_rate = int(fps), int(sample_rate)
        self._atomic = atomic_path(self.path, suffix=".mp4")
        tmp = self._atomic.__enter__()
        self.container = av.open(str(tmp), mode="w", format="mp4")
        self.video = self.container.add_stream("libx264", rate=Fraction(self.fps))
        self.video.width, self.video.height = int(width), int(height)
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(CRF)}
        self.audio = self.container.add_stream("aac", rate=self.sample_rate, layout="mono")
        if metadata:
            self.container.metadata[PROVENANCE_TAG] = provenance_json(metadata)
        self.frames = 0  # video frames written
        self.samples = 0  # audio samples written
        self._current: np.ndarray | None = None

    def _emit(self, until_frame: int) -> None:
        while self._current is not None and self.frames < until_frame:
            frame = av.VideoFrame.from_ndarray(self._current, format="rgb24")
            frame.pts = self.frames
            for packet in self.video.encode(frame):
                self.container.mux(packet)
            self.frames += 1

    def picture(self, picture: np.ndarray, *, at: float) -> None:
        """Show ``picture`` (``uint8 [H, W, 3]``) from ``at`` seconds on (times do not go back)."""
        array = np.asarray(picture)
        if array.shape != (self.video.height, self.video.width, 3) or array.dtype != np.uint8:
            raise ConfigError(f"a recorded picture is uint8 [{self.video.height}, {self.video.width}, 3], got "
                              f"{array.dtype} {list(array.shape)}")
        if self._current is None:
            self._current = array
        self._emit(int(round(max(0.0, at) * self.fps)))
        self._current = array

    def sound(self, block: np.ndarray) -> None:
        """Append a block of the session's sound (mono float32 at ``sample_rate``)."""
        samples = np.ascontiguousarray(block, dtype=np.float32).reshape(1, -1)
        if not samples.size:
            return
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate, frame.pts = self.sample_rate, self.samples
        for packet in self.audio.encode(frame):
            self.container.mux(packet)
        self.samples += samples.shape[1]

    def close(self) -> Path:
        """Show the last picture to the end of the sound, finish both streams and put the file in place."""
        self._emit(max(self.frames + 1, int(math.ceil(self.samples / self.sample_rate * self.fps))))
        for stream in (self.video, self.audio):
            for packet in stream.encode():
                self.container.mux(packet)
        self.container.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def discard(self) -> None:
        """Stop and remove the temporary file (the previous ``path``, if any, stays)."""
        try:
            self.container.close()
        except av.FFmpegError:
            pass
        try:
            self._atomic.__exit__(RuntimeError, RuntimeError("discarded"), None)
        except RuntimeError:
            pass

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
