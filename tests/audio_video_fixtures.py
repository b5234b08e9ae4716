"""Tiny media files encoded with PyAV inside the tests: a sine of known pitch and duration in a container."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

#: name -> (FFmpeg muxer, audio encoder, sample rate, video encoder or None)
CONTAINERS: dict[str, tuple[str, str, int, str | None]] = {
    "mp4": ("mp4", "aac", 48000, "h264"),
    "m4a": ("ipod", "aac", 44100, None),
    "webm": ("webm", "libopus", 48000, "libvpx"),
    "mkv": ("matroska", "aac", 44100, "h264"),
    "mov": ("mov", "aac", 48000, "h264"),
}


def encode_media(path: Path, kind: str, *, seconds: float = 0.6, freq: float = 440.0, audio: bool = True,
                 channels: int = 2, sample_rate: int | None = None, amplitude: float = 0.5) -> Path:
    """Write ``seconds`` of a ``freq`` Hz sine (same on every channel) as ``kind`` (a key of CONTAINERS),
    with a 64x64, 10 fps video stream where the container has one; ``audio=False``: the video only."""
    muxer, audio_codec, default_rate, video_codec = CONTAINERS[kind]
    sr = sample_rate or default_rate
    out = av.open(str(path), mode="w", format=muxer)
    try:
        video = None
        if video_codec is not None:
            video = out.add_stream(video_codec, rate=10)
            video.width = video.height = 64
            video.pix_fmt = "yuv420p"
        stream = None
        if audio:  # every stream is added before the first packet is muxed
            stream = out.add_stream(audio_codec, rate=sr)
            stream.layout = "stereo" if channels == 2 else "mono"
        if video is not None:
            for i in range(max(1, int(seconds * 10))):
                image = np.full((64, 64, 3), (i * 40) % 255, np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
        if stream is not None:
            t = np.arange(int(round(sr * seconds))) / sr
            tone = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            for start in range(0, len(tone), 960):
                chunk = np.ascontiguousarray(np.repeat(tone[None, start : start + 960], channels, axis=0))
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
                frame.sample_rate, frame.pts, frame.time_base = sr, start, fractions.Fraction(1, sr)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    finally:
        out.close()
    return path
