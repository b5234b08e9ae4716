"""Tiny random components built locally from configs, for tests and CI.

Each builder writes a folder laid out exactly like the real model on the hub, so it loads back
through the same ``from_pretrained`` code that real weights use. Builders run once per
``SEEINGSOUNDS_HOME`` (see :func:`seeingsounds.paths.home`) and are seeded: the same version of
this library always builds the same weights.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from seeingsounds.errors import ConfigError
from seeingsounds.paths import build_once, home

#: name -> (module, function, version). Bump the version when a builder changes its output.
_BUILDERS: dict[str, tuple[str, str, int]] = {
    "ast": ("seeingsounds.tiny.audio_encoder", "build_tiny_ast", 1),
    "flux": ("seeingsounds.tiny.flux", "build_tiny_flux", 1),
    "sd3": ("seeingsounds.tiny.sd3", "build_tiny_sd3", 1),
    "sdxl": ("seeingsounds.tiny.sdxl", "build_tiny_sdxl", 1),
    "sd": ("seeingsounds.tiny.sd", "build_tiny_sd", 1),
    "sd-turbo": ("seeingsounds.tiny.sd", "build_tiny_sd_turbo", 1),
    "wan": ("seeingsounds.tiny.wan", "build_tiny_wan", 1),
    "clip-judge": ("seeingsounds.tiny.judges", "build_tiny_clip_judge", 1),
    "wav2clip": ("seeingsounds.tiny.judges", "build_tiny_wav2clip", 1),
}


def tiny_names() -> list[str]:
    return sorted(_BUILDERS)


def tiny_path(name: str) -> Path:
    """Folder of the tiny component ``name``, built on first use."""
    if name not in _BUILDERS:
        raise ConfigError(f"no tiny component {name!r}; available: {tiny_names()}")
    module, function, version = _BUILDERS[name]
    build: Callable[[Path], None] = getattr(importlib.import_module(module), function)
    return build_once(home() / "tiny" / f"{name}-v{version}", build)
