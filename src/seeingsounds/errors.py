"""Exception types a user can act on. Every message says what is wrong and what to do."""

from __future__ import annotations


class SeeingSoundsError(Exception):
    """Base class of every error this library raises on purpose."""


class AudioLoadError(SeeingSoundsError, ValueError):
    """An audio input could not be used. The message names the source and the reason."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot use audio {source}: {reason}")


class ConfigError(SeeingSoundsError, ValueError):
    """A preset, checkpoint or option does not fit what it is combined with."""


class DatasetError(SeeingSoundsError, ValueError):
    """A manifest, captions file or dataset folder has problems (all of them are listed)."""

    def __init__(self, problems: list[str], header: str = "the dataset has problems"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{header} ({len(self.problems)}):\n{lines}")


class DiskFullError(SeeingSoundsError):
    """A write failed because the disk (or the user's quota) is full. The message names the folder,
    the free space and the space needed where known; nothing half-written is left behind."""
