"""SeeingSounds: turn sounds into images by aligning audio to a diffusion model's text conditioning."""

from __future__ import annotations

__version__ = "0.1.0"

from seeingsounds.errors import AudioLoadError, ConfigError, DatasetError, SeeingSoundsError

__all__ = [
    "__version__",
    "AudioLoadError",
    "ConfigError",
    "DatasetError",
    "SeeingSoundsError",
    "SeeingSoundsAligner",
    "SeeingSoundsPipeline",
    "load_audio",
    "get_preset",
]


def __getattr__(name: str):  # lazy: importing the package stays cheap (no torch until needed)
    if name == "SeeingSoundsAligner":
        from seeingsounds.aligner import SeeingSoundsAligner

        return SeeingSoundsAligner
    if name == "SeeingSoundsPipeline":
        from seeingsounds.pipeline import SeeingSoundsPipeline

        return SeeingSoundsPipeline
    if name == "load_audio":
        from seeingsounds.audio.io import load_audio

        return load_audio
    if name == "get_preset":
        from seeingsounds.presets import get_preset

        return get_preset
    raise AttributeError(f"module 'seeingsounds' has no attribute {name!r}")
