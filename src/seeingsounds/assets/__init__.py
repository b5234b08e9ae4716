"""Files shipped with the package: short CC0 example sounds (see ``sounds/README.md`` for sources) and the
offline judge's weights (``offline_judge/``, with its model card; loaded by ``seeingsounds.evaluation.offline_judge``)."""

from __future__ import annotations

from pathlib import Path

SOUNDS_DIR = Path(__file__).resolve().parent / "sounds"
#: suffixes of the bundled audio files
_AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def example_sounds() -> dict[str, Path]:
    """Bundled example sounds, name (file stem) -> path, sorted by name (16 kHz mono FLAC, <= 3 s)."""
    found = sorted(p for p in SOUNDS_DIR.iterdir() if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES)
    return {p.stem: p for p in found}
