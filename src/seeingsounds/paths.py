"""Where SeeingSounds keeps files it builds or caches (override with ``SEEINGSOUNDS_HOME``)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from seeingsounds.errors import ConfigError, DiskFullError, SeeingSoundsError


def home(*, writable: bool = False) -> Path:
    """Root folder for tiny models, feature caches and downloads.

    ``writable=True`` also creates it and checks a file can be written there (a one-line
    :class:`ConfigError` naming ``SEEINGSOUNDS_HOME`` if not), so a command can fail before it
    loads any model. ``~`` and a relative path (as a ``.env`` file or a container sets it) count from
    the home folder and the working directory at the call, so every part of a run names one folder.
    """
    env = os.environ.get("SEEINGSOUNDS_HOME")
    root = Path(env or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "seeingsounds"))
    root = Path(os.path.abspath(root.expanduser()))
    if writable:
        ensure_writable_dir(root, "SEEINGSOUNDS_HOME folder" if env else
                            "SeeingSounds cache folder (set SEEINGSOUNDS_HOME to use another)")
    return root


#: the errors of a write that found no space: the disk is full, or the user's quota is used up
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: how libraries that keep only the text of such an error (safetensors' SafetensorError) word it
_DISK_FULL_TEXTS = (os.strerror(errno.ENOSPC).lower(), os.strerror(errno.EDQUOT).lower(),
                    f"os error {errno.ENOSPC})", f"os error {errno.EDQUOT})")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (read in blocks of 1 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def slug(text: str, *, limit: int | None = None, empty: str = "item", any_script: bool = False) -> str:
    """``text`` as a lower-case file-name fragment (ASCII letters, digits and ``-``; with ``any_script``,
    the letters and digits of every script too, in NFC form, so ``狗`` and ``猫`` stay apart), cut to
    ``limit`` characters; ``empty`` when nothing is left."""
    if any_script:
        result = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", str(text)))
    else:
        result = re.sub(r"[^A-Za-z0-9]+", "-", str(text))
    result = result.strip("-").lower()
    return result[:limit].rstrip("-") or empty


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space: an ``OSError`` ENOSPC/EDQUOT, an
    error raised from or while handling one (``torch.save`` to a file object raises a RuntimeError
    whose context is the OSError), or one that quotes it (safetensors' SafetensorError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _DISK_FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def format_bytes(size: float) -> str:
    """``size`` bytes for people: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def free_space(path: str | os.PathLike[str]) -> int | None:
    """Bytes free for this user on the file system of ``path`` (its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextmanager
def disk_full_as_error(folder: str | os.PathLike[str], *, needed: int | None = None,
                       writing: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Turn a write in the block that fails for lack of space (:func:`is_disk_full`) into one
    :class:`DiskFullError` line naming ``folder``, its free space and ``needed`` bytes (when known).

    ``writing`` names what was being written. Every other error passes unchanged. Put it outside
    the clean-up of the half-written file (as :func:`atomic_path` does), so the free space it
    reports is what the user has once that file is gone.
    """
    try:
        yield
    except SeeingSoundsError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        free = free_space(folder)
        space = f"{format_bytes(free)} free" if free is not None else "no space left"
        if needed is not None:
            space += f", {format_bytes(needed)} needed"
        raise DiskFullError(f"cannot write {writing if writing is not None else 'in ' + str(folder)}: the disk "
                            f"holding {folder} is full ({space}); free some space there (or choose a folder on "
                            "another disk) and run the command again") from exc


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


def found_spelling(path: str) -> str:
    """``path`` as typed when it exists, else in the other Unicode normalisation if that exists (``café``
    typed composed, NFC, for a file a Mac stored decomposed, NFD, or back), else as typed: a name is
    found the way a file manager shows it."""
    if os.path.lexists(path):
        return path
    return next((other for other in (unicodedata.normalize(form, path) for form in ("NFC", "NFD"))
                 if os.path.lexists(other)), path)


def is_within(path: Path, folder: Path) -> bool:
    """Whether the resolved ``path`` is the resolved ``folder`` or lies below it."""
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def short_list(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c and 4 more``: the first ``limit`` names of a list for a one-line message."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
    try:
        os.fspath(path.absolute()).encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding: the libraries that write files (libsndfile) refuse them
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise ConfigError(f"the {what} {shown} is not UTF-8 text (a name in another encoding): "
                          "choose a UTF-8 name") from None
    if path.is_dir():
        raise ConfigError(f"the {what} {path} is a folder: name a file inside it")
    ensure_writable_dir(path.parent, f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"the {what} {path} exists and is read-only: choose another output file")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp", needed: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` with the
    permissions the umask gives (0644 under the usual 022; mkstemp alone would leave 0600).

    An error or an interruption removes the temporary file and leaves the previous ``path`` (or
    none), never a half-written one. A full disk is one :class:`DiskFullError` line
    (:func:`disk_full_as_error`; ``needed``: the bytes the file takes, when known).
    """
    path = Path(path)
    with disk_full_as_error(path.parent, needed=needed, writing=path):
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
def atomic_open(path: str | os.PathLike[str], *, newline: str | None = None,
                needed: int | None = None) -> Iterator[IO[str]]:
    """``open(path, "w")`` that only replaces ``path`` once everything was written (UTF-8 text)."""
    with atomic_path(path, needed=needed) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_open(path, needed=len(text.encode("utf-8", errors="surrogateescape"))) as f:
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

    A crash mid-build leaves only a temporary folder, never a half-written ``target``; a full
    disk removes that folder too and is one :class:`DiskFullError` line.
    """
    target = Path(target)
    if target.is_dir():
        return target
    ensure_writable_dir(target.parent, f"folder for {target.name}")
    with disk_full_as_error(target.parent, writing=target):
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
