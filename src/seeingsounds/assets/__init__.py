"""Files shipped with the package: short CC0 example sounds (see ``sounds/README.md`` for sources) and
trained model folders (``assets:<name>`` component ids, ``assets:offline-generator``, and the offline
judge's ``offline_judge/``; each folder has a README.md model card)."""

from __future__ import annotations

from pathlib import Path

from seeingsounds.errors import ConfigError

ASSETS_DIR = Path(__file__).resolve().parent
SOUNDS_DIR = ASSETS_DIR / "sounds"
#: suffixes of the bundled audio files
_AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def example_sounds() -> dict[str, Path]:
    """Bundled example sounds, name (file stem) -> path, sorted by name (16 kHz mono FLAC, <= 3 s)."""
    found = sorted(p for p in SOUNDS_DIR.iterdir() if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES)
    return {p.stem: p for p in found}


def model_names() -> list[str]:
    """Names of the model folders shipped with the package (``offline-generator``, ...)."""
    return sorted(p.name.replace("_", "-") for p in ASSETS_DIR.iterdir() if (p / "README.md").is_file()
                  and any(p.glob("*.json")))


def model_folder(name: str) -> Path:
    """The shipped model folder ``name`` (``offline-generator`` -> ``assets/offline_generator``)."""
    folder = ASSETS_DIR / name.replace("-", "_")
    if not name or "/" in name or not folder.is_dir() or not any(folder.glob("*.json")):
        raise ConfigError(f"no shipped model {name!r} in {ASSETS_DIR}; available: {model_names()} "
                          "(reinstall seeingsounds if one is missing)")
    return folder
