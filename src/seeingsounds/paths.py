"""Where SeeingSounds keeps files it builds or caches (override with ``SEEINGSOUNDS_HOME``)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from seeingsounds.errors import ConfigError


def home(*, writable: bool = False) -> Path:
    """Root folder for tiny models, feature caches and downloads.

    ``writable=True`` also creates it and checks a file can be written there (a one-line
    :class:`ConfigError` naming ``SEEINGSOUNDS_HOME`` if not), so a command can fail before it
    loads any model.
    """
    env = os.environ.get("SEEINGSOUNDS_HOME")
    root = Path(env or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "seeingsounds"))
    if writable:
        ensure_writable_dir(root, "SEEINGSOUNDS_HOME folder" if env else
                            "SeeingSounds cache folder (set SEEINGSOUNDS_HOME to use another)")
    return root


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)


def ensure_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Create the folder ``path`` (with its parents) if needed and check a file can be written in it.

    ``what`` names the folder for the user, e.g. ``"feature cache (--cache-dir)"``. Every failure
    (a file in the way, a read-only file system, no permission) is one :class:`ConfigError` line
    naming the folder, the reason and the fix; nothing is left behind by the check.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the {what} {path} is a file, not a folder: choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"the {what} {path} cannot be written ({_reason(exc)}): choose a writable folder "
                          "or fix its permissions") from None
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # symlinks, hard links, "./x" vs "/abs/x"
    except OSError:  # one of them does not exist (yet)
        try:
            return a.resolve() == b.resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13) is no input
            return False


def check_not_input(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                    *, what: str = "output file") -> Path:
    """Refuse (one-line :class:`ConfigError`) an output ``path`` that is one of ``inputs``, whatever the
    spelling: relative, ``..``, a symlink or a hard link to it. Returns ``path`` as a :class:`Path`."""
    path = Path(path).expanduser()
    for source in inputs:
        if source is not None and _same_file(path, Path(source).expanduser()):
            raise ConfigError(f"the {what} {path} is also an input ({source}): choose another output "
                              "(an input is never overwritten)")
    return path


def check_output_file(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = (),
                      what: str = "output file") -> Path:
    """Check, before any work, that ``path`` can be written as a new or replaced file.

    Refuses (one-line :class:`ConfigError`) an output that is one of ``inputs`` (also through a
    symlink, a hard link or another spelling: the input is never overwritten), an existing folder,
    and a path whose folder cannot be created or written. Returns ``path`` as a :class:`Path`.
    """
    path = check_not_input(path, inputs, what=what)
    if path.is_dir():
        raise ConfigError(f"the {what} {path} is a folder: name a file inside it")
    ensure_writable_dir(path.parent, f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"the {what} {path} exists and is read-only: choose another output file")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` with the
    permissions the umask gives (0644 under the usual 022; mkstemp alone would leave 0600).

    An error or an interruption removes the temporary file and leaves the previous ``path`` (or
    none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[IO[str]]:
    """``open(path, "w")`` that only replaces ``path`` once everything was written (UTF-8 text)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def current_umask() -> int:
    """The process umask: from ``/proc/self/status`` on Linux (no change, so safe beside other threads),
    elsewhere by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_dir)`` and move the result to ``target`` atomically, unless it exists.

    A crash mid-build leaves only a temporary folder, never a half-written ``target``.
    """
    target = Path(target)
    if target.is_dir():
        return target
    ensure_writable_dir(target.parent, f"folder for {target.name}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())  # the umask's permissions, not mkdtemp's 0700
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
