"""Exception types a user can act on. Every message says what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


#: modules whose exceptions mean "the model hub could not give the files" (besides OSError)
_HUB_ERROR_MODULES = ("huggingface_hub", "httpx", "requests")


@contextmanager
def hub_errors_as_config(model_id: str, what: str) -> Iterator[None]:
    """Turn a failure to fetch or read ``model_id`` (no network, no cache, a wrong id, a folder without
    the files) into one :class:`ConfigError` line naming the model and the fix, instead of the hub
    library's traceback. Errors of this library pass through unchanged."""
    try:
        yield
    except SeeingSoundsError:
        raise
    except Exception as exc:
        if not (isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _HUB_ERROR_MODULES):
            raise
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(
            f"cannot load the {what} {model_id!r}: {reason} — a hub id is downloaded on first use, so run once "
            f"with internet access (or `hf download {model_id}`), or pass a local folder holding the files"
        ) from None
