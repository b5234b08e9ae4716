"""A training run's folder: what ``train`` writes and ``describe`` / ``evaluate`` read.

::

    <run>/config.json                  options, preset, data hashes, encoder/generator, versions
    <run>/captions.json                every caption trained on (class, edited, fused), in row order
    <run>/caption_targets.safetensors  their targets, fp16, row-aligned: the one target store
    <run>/caption_edits.jsonl          the caption engine's edits and fusions (reused by --resume)
    <run>/metrics.jsonl                one line per epoch
    <run>/best/  <run>/last/           aligner checkpoints (last/ also holds training_state.pt)
    <run>/.lock                        held (flock) by the process training into the folder

``caption_targets.safetensors`` is an ordinary safetensors file, but written row by row and read
row by row (``os.pread``; :class:`RowFile` says why not safetensors' own reads), so neither writing
nor training ever holds all targets in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata as md
import json
import math
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from seeingsounds.captions.caption_set import CaptionSet
from seeingsounds.devices import SAFETENSORS_DTYPE_CODES
from seeingsounds.errors import ConfigError
from seeingsounds.paths import (
    atomic_path,
    atomic_write_text,
    current_umask,
    disk_full_as_error,
    ensure_writable_dir,
    is_within,
    short_list,
)

CONFIG_FILE = "config.json"
CAPTIONS_FILE = "captions.json"
TARGETS_FILE = "caption_targets.safetensors"
EDITS_FILE = "caption_edits.jsonl"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "training_state.pt"
MODEL_FILE = "model.safetensors"
LOCK_FILE = ".lock"
BEST, LAST = "best", "last"
#: what a run folder may hold (hidden names — the lock, temporary folders — are the run's too)
RUN_ENTRIES = frozenset({CONFIG_FILE, CAPTIONS_FILE, TARGETS_FILE, EDITS_FILE, METRICS_FILE, BEST, LAST,
                         "tensorboard"})
#: the start of the report folders ``seeingsounds evaluate`` writes into a run by default (``eval-<protocol>``)
EVAL_PREFIX = "eval-"

_TORCH_DTYPES = {code: dtype for dtype, code in SAFETENSORS_DTYPE_CODES.items()}


#: the libraries a run's (or a report's) numbers depend on
RESULT_LIBRARIES = ("seeingsounds", "torch", "transformers", "diffusers", "accelerate", "safetensors", "numpy",
                    "pillow", "soxr", "soundfile", "av")


def library_versions(names: Sequence[str] = RESULT_LIBRARIES) -> dict[str, str]:
    """Versions of Python and of those of ``names`` that are installed."""
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


# ---- row files: safetensors written and read one row at a time -------------------------------
class RowFile:
    """Row access to a safetensors file whose tensors share their first dimension (the rows).

    The header is read and checked by ``safetensors.safe_open`` (also that the file's size is the
    one the header implies). :meth:`read` then reads only the requested rows with ``os.preadv``
    into one buffer, because safetensors has no bounded row read: its default (mmap) backend keeps
    every page a slice touched resident in this process while the file is open (a run holds it
    open for the whole of training, reading random rows: its memory grew to the file's size), and
    its ``pread`` backend reads the whole tensor for any slice.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:  # through the descriptor: the header read is the file's whose rows are read, even if it is replaced
            with safe_open(f"/dev/fd/{self._fd}", framework="pt") as f:
                self.metadata: dict[str, str] = f.metadata() or {}
                names = f.offset_keys()
                specs = {n: (f.get_slice(n).get_dtype(), tuple(f.get_slice(n).get_shape())) for n in names}
        except (OSError, SafetensorError) as exc:
            os.close(self._fd)
            raise ConfigError(f"{self.path} is not a whole safetensors file, truncated or damaged ({exc}); "
                              "retrain or restore it") from None
        rows = None
        for name, (code, shape) in specs.items():
            if code not in _TORCH_DTYPES or not shape or shape[0] != (shape[0] if rows is None else rows):
                os.close(self._fd)
                what = "is not a row tensor" if code not in _TORCH_DTYPES or not shape else "has another row count"
                raise ConfigError(f"{self.path}: tensor {name} ({code}, {list(shape)}) {what}")
            rows = shape[0]
        # the format stores the tensors back to back in offset order, ending at the end of the file
        offset = os.fstat(self._fd).st_size - sum(math.prod(shape) * _TORCH_DTYPES[code].itemsize
                                                  for code, shape in specs.values())
        self.tensors: dict[str, tuple[torch.dtype, tuple[int, ...], int]] = {}
        for name in names:
            code, shape = specs[name]
            self.tensors[name] = (_TORCH_DTYPES[code], shape[1:], offset)
            offset += math.prod(shape) * _TORCH_DTYPES[code].itemsize
        self.num_rows = int(rows or 0)

    def __len__(self) -> int:
        return self.num_rows

    def row_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][1]

    def row_bytes(self, name: str) -> int:
        dtype, shape, _ = self.tensors[name]
        return math.prod(shape) * dtype.itemsize

    def read(self, rows: Sequence[int], names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{name: [len(rows), ...]}`` in the stored dtype; consecutive rows are read at once."""
        rows = [int(r) for r in rows]
        bad = [r for r in rows if not 0 <= r < self.num_rows]
        if bad:
            raise IndexError(f"rows {bad[:5]} out of range for {self.num_rows} rows in {self.path}")
        out = {}
        for name in names if names is not None else list(self.tensors):
            dtype, shape, base = self.tensors[name]
            size = self.row_bytes(name)
            buf = torch.empty(len(rows) * size, dtype=torch.uint8)
            view = memoryview(buf.numpy())
            i = 0
            while i < len(rows):
                j = i + 1
                while j < len(rows) and rows[j] == rows[j - 1] + 1:
                    j += 1
                got = os.preadv(self._fd, [view[i * size : j * size]], base + rows[i] * size)
                if got != (j - i) * size:
                    raise ConfigError(f"{self.path} is truncated; retrain or restore it")
                i = j
            out[name] = buf.view(dtype).reshape(len(rows), *shape)
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RowFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def write_row_file(path: str | Path, shapes: Mapping[str, Sequence[int]], num_rows: int,
                   chunks: Iterator[tuple[int, Mapping[str, torch.Tensor]]], *, dtype: torch.dtype = torch.float16,
                   metadata: Mapping[str, str] | None = None) -> Path:
    """Write a row file atomically from ``chunks`` of ``(first_row, {name: [k, *shape]})``.

    Only one chunk is in memory at a time. Every row must be written exactly once. Written by hand
    (header, then each chunk ``os.pwrite`` at its rows' offsets) because ``safetensors.torch.save_file``
    needs every tensor whole in memory; the file is an ordinary safetensors file for any reader.
    """
    names = sorted(shapes)
    itemsize = dtype.itemsize
    header: dict[str, Any] = {"__metadata__": {"rows": str(num_rows), **dict(metadata or {})}}
    offset = 0
    starts = {}
    for name in names:
        size = num_rows * math.prod(shapes[name]) * itemsize
        header[name] = {"dtype": SAFETENSORS_DTYPE_CODES[dtype], "shape": [num_rows, *shapes[name]],
                        "data_offsets": [offset, offset + size]}
        starts[name] = offset
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    base = 8 + len(blob)
    written = torch.zeros(num_rows, dtype=torch.bool)
    with atomic_path(path, needed=base + offset) as tmp:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<Q", len(blob)) + blob, 0)
            os.ftruncate(fd, base + offset)
            for first, tensors in chunks:
                for name in names:
                    t = tensors[name].detach().to("cpu", dtype).contiguous()
                    if tuple(t.shape[1:]) != tuple(shapes[name]):
                        raise ConfigError(f"target {name} has shape {tuple(t.shape[1:])}, expected "
                                          f"{tuple(shapes[name])}")
                    row_bytes = math.prod(shapes[name]) * itemsize
                    os.pwrite(fd, t.view(torch.uint8).numpy().tobytes(), base + starts[name] + first * row_bytes)
                count = len(next(iter(tensors.values()))) if tensors else 0
                written[first : first + count] = True
            if not bool(written.all()):
                raise ConfigError(f"{path}: {int((~written).sum())} rows were not written")
            os.fsync(fd)
        finally:
            os.close(fd)
    return Path(path)


# ---- the run folder -------------------------------------------------------------------------
class RunFolder:
    """A training run's folder (see the module docstring for its layout)."""

    def __init__(self, path: str | Path):
        self._path = Path(path).expanduser()

    @classmethod
    def find(cls, checkpoint: str | Path) -> RunFolder:
        """The run of ``checkpoint``: a run folder, or its ``best/`` or ``last/`` subfolder."""
        path = Path(checkpoint).expanduser()
        parent = path.absolute().parent if path.name in ("", ".", "..") else path.parent  # "." inside best/
        for folder in (path, parent):
            if (folder / CAPTIONS_FILE).is_file() and (folder / TARGETS_FILE).is_file():
                return cls(folder)
        raise ConfigError(
            f"no {CAPTIONS_FILE} + {TARGETS_FILE} in {path} or its parent: point to a training run folder "
            "(made by `seeingsounds train`), which stores the captions it was trained on"
        )

    # ---- places ----
    @property
    def path(self) -> Path:
        return self._path

    def _saved(self, name: str) -> Path:
        """``<run>/<name>``, or the previous one (``.<name>.old``) when a replacement was cut between
        its two renames (:meth:`replace_folder`): a kill there loses no checkpoint."""
        path = self._path / name
        old = self._path / f".{name}.old"
        return old if not path.exists() and old.is_dir() else path

    @property
    def best(self) -> Path:
        return self._saved(BEST)

    @property
    def last(self) -> Path:
        return self._saved(LAST)

    @property
    def state_path(self) -> Path:
        return self.last / STATE_FILE

    def __truediv__(self, name: str) -> Path:
        return self._path / name

    def __repr__(self) -> str:
        return f"RunFolder({str(self._path)!r})"

    # ---- reading ----
    def config(self) -> dict[str, Any]:
        """``config.json``."""
        path = self._path / CONFIG_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist: {self._path} is not a training run folder") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is unreadable ({exc}); restore it or retrain") from None

    def caption_set(self) -> CaptionSet:
        """``captions.json``."""
        path = self._path / CAPTIONS_FILE
        try:
            return CaptionSet.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist: point to a run folder made by `seeingsounds train`") from None
        except Exception as exc:
            raise ConfigError(f"the caption set {path} is unreadable ({exc}); retrain or restore it") from None

    def targets_file(self) -> RowFile:
        """The caption targets, opened for row reads."""
        return RowFile(self._path / TARGETS_FILE)

    def caption_targets(self, rows: Sequence[int] | None = None, *, dtype: torch.dtype = torch.float16,
                        device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Targets ``{name: [len(rows), ...]}`` of the caption ``rows`` (all when None); only those
        rows are read."""
        with self.targets_file() as f:
            if rows is None:
                rows = range(len(f))
            return {n: t.to(device or "cpu", dtype) for n, t in f.read(list(rows)).items()}

    def metrics(self) -> list[dict[str, Any]]:
        """The lines of ``metrics.jsonl`` (a blank or partly written line is skipped)."""
        path = self._path / METRICS_FILE
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                int(record["epoch"])
            except (ValueError, TypeError, KeyError):
                continue
            out.append(record)
        return out

    # ---- writing ----
    def keep_metrics(self, epochs: int) -> list[dict[str, Any]]:
        """Drop the metrics lines of epochs after ``epochs`` (and partly written ones); return the rest."""
        kept = [m for m in self.metrics() if int(m["epoch"]) <= epochs]
        path = self._path / METRICS_FILE
        if path.exists():
            atomic_write_text(path, "".join(json.dumps(m) + "\n" for m in kept))
        return kept

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (a line cut short by a full disk is skipped on reading)."""
        path = self._path / METRICS_FILE
        with disk_full_as_error(self._path, writing=path), open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record)) + "\n")

    def replace_folder(self, name: str, build: Callable[[Path], None], *, needed: int | None = None) -> Path:
        """Write ``<run>/<name>/`` atomically: ``build(tmp)`` fills a temporary folder, which then
        replaces the old one. The folder gets the permissions the umask gives (not mkdtemp's 0700).
        A full disk removes the temporary folder, keeps the old one and is one :class:`DiskFullError`
        line (``needed``: the bytes the folder takes, when known)."""
        target = self._path / name
        with disk_full_as_error(self._path, needed=needed, writing=target):
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self._path))
            try:
                build(tmp)
                os.chmod(tmp, 0o777 & ~current_umask())
                old = self._path / f".{name}.old"  # also one a kill left between the two renames
                if target.exists():
                    shutil.rmtree(old, ignore_errors=True)
                    os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return target

    # ---- safety ----
    def is_run(self) -> bool:
        """Whether this folder holds a training run (a saved epoch, or a run's ``config.json``)."""
        return self.holds_run() or self._is_run_config()

    def _is_run_config(self) -> bool:
        try:
            data = json.loads((self._path / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and "train" in data

    def _is_run_captions(self) -> bool:
        try:
            data = json.loads((self._path / CAPTIONS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and isinstance(data.get("captions"), list)

    def foreign_entries(self) -> list[str]:
        """Names in the folder that a training run did not write (hidden names count as the run's)."""
        if not self._path.is_dir():
            return []
        foreign = []
        for entry in sorted(os.listdir(self._path)):
            if entry.startswith("."):
                continue
            if entry.startswith(EVAL_PREFIX) and (self._path / entry).is_dir():
                continue  # an evaluation of this run (evaluate's default --out): a resume leaves it alone
            if entry not in RUN_ENTRIES or (entry == CONFIG_FILE and not self._is_run_config()) \
                    or (entry == CAPTIONS_FILE and not self._is_run_captions()):
                foreign.append(entry)
        return foreign

    def holds_run(self) -> bool:
        """Whether a run has saved an epoch here (``last/training_state.pt``). A ``best/`` without it
        is a first epoch whose saving did not finish (a full disk, a kill): the run starts again
        from epoch 1 in this folder, and only the run's own files are replaced."""
        return self.state_path.is_file()

    def check_new_or_run(self, resume: bool, *, reads: Sequence[str | Path] = ()) -> None:
        """Refuse, before any model loads, an output folder the run must not (or cannot) write to.

        ``reads``: the files and folders the run reads (manifest or data folder, captions file).
        Refused: ``--out`` naming a file; the folder of a file the run reads, or a data folder or
        a folder inside it; a non-empty folder that is not a run; without ``resume`` a folder
        that already holds a saved epoch (:meth:`holds_run`); with ``resume`` one that holds no
        run at all (no saved epoch and no run's ``config.json``: a run that began but saved no
        epoch is resumed from epoch 1); a folder that cannot be created or written. Each with a
        one-line :class:`ConfigError`.
        """
        path = self._path
        where = path.resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {path} is a file, not a folder: name a folder for the run")
        for read in reads:
            read = Path(read).expanduser().resolve()
            if read.is_dir() and is_within(where, read):
                raise ConfigError(f"--out {path} is inside the data folder {read}, which the run reads: "
                                  "choose a folder outside it")
            if read.is_file() and where == read.parent:
                raise ConfigError(f"--out {path} is the folder of {read}, which the run reads: "
                                  "choose another folder")
        foreign = self.foreign_entries()
        if foreign and self.is_run():  # a user's notes beside a run: say so, not "not a training run"
            raise ConfigError(f"--out {path} is a training run that also holds {short_list(foreign)}, which training "
                              "did not write: move those out of the run folder, then run the command again")
        if foreign:
            raise ConfigError(f"--out {path} is not empty and not a training run (it holds {short_list(foreign)}): "
                              "choose a new or empty folder")
        if not resume and self.holds_run():
            raise ConfigError(f"{path} already holds a training run: pass --resume to continue it, "
                              "or choose another --out")
        if resume and not self.holds_run() and not self._is_run_config():
            raise ConfigError(f"--resume: {path} holds no run to continue (no {STATE_FILE}, no {CONFIG_FILE}); "
                              "start the run without --resume")
        self.check_writable()

    def check_writable(self) -> None:
        """Create the folder if needed and check a file can be written in it (one-line error if not)."""
        ensure_writable_dir(self._path, "run folder (--out)")

    @contextlib.contextmanager
    def lock(self) -> Iterator[RunFolder]:
        """Hold ``<run>/.lock`` (``fcntl.flock``, exclusive) while the block runs.

        A second process fails at once with a :class:`ConfigError`. The kernel drops the lock when
        its process dies (even by ``kill -9``), so a killed run can be resumed right away.
        """
        self.check_writable()
        lock_path = self._path / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (process {int(os.pread(fd, 32, 0).split()[0])})"
            os.close(fd)
            raise ConfigError(f"{self._path} is in use by another training process{holder}, which holds "
                              f"{lock_path}: wait for it to finish, or choose another --out") from None
        try:
            with disk_full_as_error(self._path, writing=lock_path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
