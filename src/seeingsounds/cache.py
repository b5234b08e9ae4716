"""On-disk cache of what the frozen models compute: audio-encoder tokens per clip, targets per caption.

Both the audio encoder and the generator's text encoders are frozen, so their outputs are
computed once and reused across runs and datasets (the encoder is ~1000x the cost of an aligner
step at the paper's dimensions). Entries are safetensors files (fp16 by default), one per clip
variant or caption, keyed by everything that changes them:

* audio tokens: sha256 of the file's bytes, the encoder's :meth:`identity`, the preprocessing
  (target sample rate, window length, the render of :mod:`seeingsounds.audio.render`), the effect
  chain and the mix partner + ratio (paper Eq. 7) and the storage dtype;
* caption targets: backend name, model id + revision, conditioning spec, max sequence length,
  the text model that defines the targets (where a backend has its own), the caption text and the
  storage dtype.

Change any part and the key changes (a miss). Writes are atomic (temp file + ``os.replace``).

Checks are split by cost, so a store of 10^5-10^6 entries starts in seconds:

* **start-up** (:meth:`FeatureCache.ensure_audio`, :meth:`FeatureCache.ensure_targets`) reads the
  safetensors *header only* (``safe_open``, which maps the file and reads no tensor byte): the file
  exists, its size is what the header says (not truncated),
  the key in the metadata is the one asked for, tensor names, shapes and dtype are right; an
  audio file's sha256 (part of its key) is remembered by path, size and mtime in
  ``<root>/audio-sha256.jsonl``, so a start stats each clip instead of reading it;
* **integrity** (sha256 of the tensor bytes, stored in the metadata) is checked on every read
  (:meth:`FeatureCache.read_entry`, :meth:`FeatureCache.load_tokens`, :func:`read_tokens`). A
  corrupt entry is deleted and recomputed, never trusted.

Layout: one file per entry under a two-hex-digit fan-out (``audio/<encoder>/<key[:2]>/<key>``),
chosen with ``benchmarks/feature_store.py`` over safetensors shards and WebDataset tars. Measured
at AST's shape (1.86 MB an entry; 300 entries, shards of 64, a busy 2-core VM, pages evicted): a
random batch of 32 verified entries read in 239 ms (shards 428 ms, tars 343 ms), writing costs the
same (4-5 ms an entry); the header-only start-up check costs ~0.3 ms an entry (~27 s at 10^5,
~4.5 min at 10^6, vs ~1.5 h for a full sha256 of every byte), where shards need one header per
shard (~12 s at 10^6). That start-up gap is the shards' only win, and it is paid for elsewhere: a
shard cannot take one new or recomputed entry (a new mix, a corrupt entry's replacement) without
rewriting 64-256 entries, nor can several processes write into it; one file per entry is written,
replaced and claimed atomically by any process, and 10^6 files fit any local file system's inodes.
Several processes (``accelerate launch`` / ``torchrun``; rank and world from
``accelerate.PartialState`` when the caller set one up, else from the launcher's environment): :meth:`~FeatureCache.ensure_audio` and
:meth:`~FeatureCache.ensure_targets` split the misses — each process takes ``misses[rank::world]``
first, then helps with what nobody has claimed; an entry is computed only by the process that
holds its claim file (``<entry>.claim``, created with ``O_EXCL``), so each is written exactly once
(the writer's rank is in its metadata), and every process returns once all entries exist. No
collective operation is used, so a call cannot deadlock, also inside ``main_process_first``.

A clip whose header reads but whose data does not decode (a truncated FLAC or mp4, NaN samples)
fails the call naming the file; with ``skip_bad=True`` its failure is recorded instead, in a marker
beside the entry (``<entry>.failed``, JSON with the reason, written atomically), and the batch goes
on. Every process, and every later start with the same cache, reads the same markers, so all drop the
same clips without decoding them again; a fixed file has another content hash, so another key, and is
tried again (as is every marker written by another version of the library).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from seeingsounds import __version__
from seeingsounds.audio.render import EffectChain, render
from seeingsounds.devices import SAFETENSORS_DTYPE_CODES, resolve_device, resolve_dtype
from seeingsounds.errors import AudioLoadError, ConfigError, DiskFullError, SeeingSoundsError
from seeingsounds.generators.base import release_memory
from seeingsounds.paths import (atomic_path, atomic_write_json, disk_full_as_error, ensure_writable_dir, file_sha256,
                                home, is_within, short_list)

#: bump when the layout or the preprocessing changes: every old entry becomes a miss
#: (2: audio rendered by audio.render, load -> mix -> effects -> crop; header-only start-up checks)
CACHE_VERSION = 2
CACHE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
#: memo of audio files' sha256 by (path, size, mtime), inside the cache root
HASHES_FILE = "audio-sha256.jsonl"
#: what a cache root holds (besides hidden temporary files): any other entry means it is someone else's folder
CACHE_ENTRIES = frozenset({"audio", "targets", HASHES_FILE})
#: threads for the header checks at start-up (I/O-bound: they wait on the disk, not the CPU)
CHECK_THREADS = 8

#: an effect chain as a hashable, order-preserving tuple (:func:`canonical_effects`)
FrozenEffectChain = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


class CorruptEntryError(SeeingSoundsError, ValueError):
    """A cache entry failed its integrity check (raised by :func:`read_tokens` only)."""


def canonical_effects(effects: EffectChain | None) -> FrozenEffectChain:
    """An effect chain ``[(name, params)]`` as a hashable, order-preserving tuple."""
    out = []
    for item in effects or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise ConfigError(f"an effect is (name, params), got {item!r}")
        name, params = item
        params = dict(params or {})
        out.append((name, tuple(sorted((str(k), _plain(v)) for k, v in params.items()))))
    return tuple(out)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


@dataclass(frozen=True)
class AudioItem:
    """What the encoder sees: a file, optionally transformed by an effect chain, optionally
    mixed with another file at ``ratio`` (paper Eq. 7: ``T_j(a)`` and ``a_i + a_j``)."""

    path: Path
    effects: FrozenEffectChain = ()
    mix: tuple[Path, float] | None = None

    @classmethod
    def of(cls, path: str | Path, effects: EffectChain | None = None,
           mix: tuple[str | Path, float] | None = None) -> AudioItem:
        return cls(Path(path), canonical_effects(effects),
                   None if mix is None else (Path(mix[0]), float(mix[1])))

    def effect_list(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, dict(params)) for name, params in self.effects]


def load_item_wave(item: AudioItem, sample_rate: int, num_samples: int) -> np.ndarray:
    """The waveform the encoder gets for ``item``: :func:`seeingsounds.audio.render.render`
    (load -> mix -> effects -> crop), the same render as ``describe``/``generate`` use."""
    return render(item.path, sample_rate=int(sample_rate), num_samples=int(num_samples),
                  effects=item.effect_list() or None,
                  mix=None if item.mix is None else (item.mix[0], float(item.mix[1])))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes (in name order): an entry's checksum."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            digest.update(memoryview(t.view(torch.uint8).numpy()))
    return digest.hexdigest()


def _header_matches(path: Path, key: str, dtype_name: str, code: str, shapes: Mapping[str, Sequence[int]]) -> bool:
    """Whether the entry at ``path`` is ``key`` in ``dtype_name`` (safetensors code ``code``) holding exactly
    ``shapes``, from its header alone. ``safe_open`` parses and checks the header, and that the file's
    size is the one it implies (a truncated entry fails here); it maps the file but reads no tensor byte."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if not (meta.get("key") == key and meta.get("dtype") == dtype_name and "sha256" in meta
                and set(f.keys()) == set(shapes)):
            return False
        slices = {n: f.get_slice(n) for n in shapes}
        return all(s.get_dtype() == code and tuple(s.get_shape()) == tuple(shapes[n]) for n, s in slices.items())


def _read_verified(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """An entry's metadata and tensors (copied out of the file, so nothing stays mapped), after its
    checksum; raises ``ValueError`` when the tensors are not the ones the checksum in the metadata names,
    ``SafetensorError`` when the file is not a whole safetensors file."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {n: f.get_tensor(n).clone() for n in f.keys()}
    if meta.get("sha256") != tensor_digest(tensors):
        raise ValueError(f"{path}: checksum mismatch")
    return meta, tensors


def _process_group(distributed: bool | None) -> tuple[int, int, torch.device | None]:
    """``(rank, world size, this process's accelerator or None)`` under ``accelerate launch`` /
    ``torchrun``; ``(0, 1, None)`` alone or with ``distributed=False``.

    Taken from ``accelerate.PartialState`` when the caller has set it up (an ``Accelerator``),
    else from the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): creating a
    ``PartialState`` here would start a process group, a collective step that hangs when only some
    processes get here — and the work sharing needs none (:func:`share_work`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if distributed is False or world <= 1:
        return 0, 1, None
    # deferred on purpose: accelerate's state pulls in torch.distributed, only needed under a launcher
    from accelerate.state import PartialState

    if PartialState._shared_state:  # set up by the caller: its view of the launch
        state = PartialState()
        return state.process_index, state.num_processes, state.device
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = torch.device("cuda", local % torch.cuda.device_count()) if torch.cuda.is_available() else None
    return launch_rank(), world, device


def launch_rank() -> int:
    """This process's rank under a launcher, from the environment (safe in DataLoader workers)."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _claim_path(entry: Path) -> Path:
    return entry.with_name(entry.name + ".claim")


def failure_path(entry: Path) -> Path:
    """Where the decode failure of ``entry``'s audio is recorded (``skip_bad``; see the module docstring)."""
    return entry.with_name(entry.name + ".failed")


def recorded_failure(entry: Path) -> str | None:
    """The reason recorded for ``entry``'s audio (``<file>: <why>``), or None: no marker, an entry written
    since, or a marker this version of the library did not write (its decoder may differ: tried again)."""
    try:
        record = json.loads(failure_path(entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("library") != __version__ or entry.exists():
        return None
    return f"{record.get('source')}: {record.get('reason')}"


def _claim_is_stale(claim: Path, stale_after: float) -> bool:
    """A claim whose writer is gone: a dead pid on this host, else older than ``stale_after`` s."""
    try:
        age = time.time() - claim.stat().st_mtime
        owner = json.loads(claim.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return age > 60.0  # being written, or garbage: give its writer a minute
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return age > stale_after


def _claim(entry: Path, rank: int, stale_after: float, done: Callable[[Path], bool] = Path.exists) -> bool:
    """Atomically claim the right to compute ``entry`` (``O_EXCL`` claim file); False if another
    process holds a live claim or the entry is ``done`` already (by default: exists)."""
    claim = _claim_path(entry)
    claim.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _claim_is_stale(claim, stale_after):
                return False
            grave = claim.with_name(f"{claim.name}.stale.{os.getpid()}")
            try:  # rename, not unlink: of two processes taking over, only one wins
                os.rename(claim, grave)
            except FileNotFoundError:
                return False
            grave.unlink(missing_ok=True)
            continue
        try:
            with disk_full_as_error(claim.parent, writing=claim), os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "rank": rank}, f)
        except DiskFullError:
            claim.unlink(missing_ok=True)  # an empty claim would hold the entry for a minute
            raise
        if done(entry):  # written by another process between our check and our claim
            claim.unlink(missing_ok=True)
            return False
        return True
    return False


def share_work(todo: Sequence[int], entries: Sequence[Path], compute: Callable[[list[int]], None], *,
               rank: int, world: int, batch_size: int, poll_s: float = 0.2, stale_after: float = 3600.0,
               done: Callable[[Path], bool] = Path.exists) -> None:
    """Compute the missing ``entries[i]`` for ``i`` in ``todo``, each exactly once across processes.

    Alone (``world == 1``): ``compute`` is called on batches of ``todo``. Under a launcher each
    process first takes ``todo[rank::world]``, then helps with what nobody has claimed; an entry
    is computed only by the process holding its claim file (``O_EXCL``, removed after writing; a
    claim left by a killed process is taken over). The call returns when every entry exists, so
    all processes leave it with the whole set written. No collective operation is used: it cannot
    deadlock, also when one process calls it before the others (``main_process_first``).
    ``done`` says when an entry needs no more work (default: it exists; ``skip_bad`` adds a recorded failure).
    """
    if world <= 1:
        for start in range(0, len(todo), batch_size):
            compute(list(todo[start : start + batch_size]))
        return
    pending = list(todo[rank::world]) + [i for k in range(1, world) for i in todo[(rank + k) % world :: world]]
    while pending:
        claimed: list[int] = []
        waiting: list[int] = []
        for i in pending:
            if done(entries[i]):
                continue
            if len(claimed) < batch_size and _claim(entries[i], rank, stale_after, done):
                claimed.append(i)
            else:
                waiting.append(i)
        if claimed:
            try:
                compute(claimed)
            finally:
                for i in claimed:
                    _claim_path(entries[i]).unlink(missing_ok=True)
        elif waiting:
            time.sleep(poll_s)
        pending = waiting


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    #: entries this process wrote
    written: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    #: items whose audio cannot be decoded (``skip_bad``), recorded now or by an earlier start
    failed: int = 0

    def __str__(self) -> str:
        extra = f", {self.corrupt} corrupt entries recomputed" if self.corrupt else ""
        extra += f", {self.failed} that cannot be decoded" if self.failed else ""
        return f"{self.hits} hits, {self.misses} misses{extra}"


class FeatureCache:
    """Encoder tokens and caption targets on disk (default ``home()/features``).

    Args:
        root: cache folder.
        dtype: storage dtype, ``float16`` (default), ``bfloat16`` or ``float32``. Part of the key.

    A cache that is only read (every entry hit) may be read-only; before the first entry is
    encoded :meth:`check_writable` refuses, in one line, a folder that cannot be written.
    """

    #: how the folder is named in errors
    WHAT = "feature cache (--cache-dir)"

    def __init__(self, root: str | Path | None = None, dtype: str = "float16"):
        if dtype not in CACHE_DTYPES:
            raise ConfigError(f"cache dtype must be one of {sorted(CACHE_DTYPES)}, got {dtype!r}")
        self.root = Path(root if root is not None else home() / "features").expanduser()
        self.dtype_name = dtype
        self.dtype = CACHE_DTYPES[dtype]
        self.stats = CacheStats()
        self._hashes: dict[Path, tuple[int, int, str]] = {}
        self._lock = threading.Lock()
        self._hash_index: dict[str, tuple[int, int, str]] | None = None
        self._writable = False

    def check_writable(self, *, outside: Sequence[tuple[str, str | Path]] = ()) -> Path:
        """Create the cache folder if needed and check an entry can be written there (once per cache):
        a one-line :class:`ConfigError` naming the folder if not. Called before anything is encoded,
        not at construction, so a read-only cache that already holds every entry still serves reads.

        The folder must be new, empty or a feature cache: a data folder (whose sub-folders are
        classes), a training run or any other folder of the user's is refused, never written into;
        so is a folder inside one of ``outside`` (``(what, folder)`` pairs, e.g. the run's ``--out`` or
        a class-per-folder ``--data``; a file there, such as a manifest, is ignored).
        """
        if not self._writable:
            for what, folder in outside:
                if Path(folder).expanduser().is_dir() and is_within(self.root, folder):
                    raise ConfigError(f"the {self.WHAT} {self.root} is inside the {what} "
                                      f"{Path(folder).expanduser().resolve()}: choose a folder outside it")
            foreign = self.foreign_entries()
            if foreign:
                raise ConfigError(f"the {self.WHAT} {self.root} is not empty and not a feature cache (it holds "
                                  f"{short_list(foreign)}): choose a new or empty folder")
            ensure_writable_dir(self.root, self.WHAT)
            self._writable = True
        return self.root

    def foreign_entries(self) -> list[str]:
        """Names in the cache folder that a feature cache does not hold (hidden files aside), sorted."""
        try:
            names = os.listdir(self.root)
        except OSError:  # missing, or not a folder: ensure_writable_dir names the problem
            return []
        return sorted(n for n in names if not n.startswith(".") and n not in CACHE_ENTRIES)

    # ---- keys -------------------------------------------------------------------------------
    def file_hash(self, path: str | Path) -> str:
        """sha256 of a file's bytes, memoised by (absolute path, size, mtime) in memory and in
        ``<root>/audio-sha256.jsonl``, so a start over 10^5-10^6 clips stats each file instead of
        reading it; an edited file (new size or mtime) is hashed again."""
        path = Path(path)
        st = path.stat()
        memo = self._hashes.get(path)
        if memo is not None and memo[:2] == (st.st_size, st.st_mtime_ns):
            return memo[2]
        where = str(path.resolve())
        known = self._known_hashes().get(where)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            sha = known[2]
        else:
            sha = file_sha256(path)
            self._remember_hash(where, st.st_size, st.st_mtime_ns, sha)
        self._hashes[path] = (st.st_size, st.st_mtime_ns, sha)
        return sha

    def _known_hashes(self) -> dict[str, tuple[int, int, str]]:
        if self._hash_index is None:
            self._hash_index = {}
            try:
                lines = (self.root / HASHES_FILE).read_bytes().splitlines()
            except OSError:
                lines = []
            for line in lines:
                try:
                    r = json.loads(line)
                    self._hash_index[str(r["path"])] = (int(r["size"]), int(r["mtime_ns"]), str(r["sha256"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line (interrupted append): that file is hashed again
        return self._hash_index

    def _remember_hash(self, where: str, size: int, mtime_ns: int, sha: str) -> None:
        """Append one line to the hash memo (one ``write`` on ``O_APPEND``: processes do not interleave)."""
        self._known_hashes()[where] = (size, mtime_ns, sha)
        line = json.dumps({"path": where, "size": size, "mtime_ns": mtime_ns, "sha256": sha}) + "\n"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / HASHES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError:  # a read-only cache still works, it just hashes again next time
            pass

    def audio_key_parts(self, encoder: Any, item: AudioItem) -> dict[str, Any]:
        return {
            "v": CACHE_VERSION,
            "kind": "audio",
            "audio": self.file_hash(item.path),
            "encoder": encoder.identity(),
            "sample_rate": int(encoder.sample_rate),
            "window": int(encoder.window_samples),
            "effects": [[n, [list(p) for p in params]] for n, params in item.effects],
            "mix": None if item.mix is None else [self.file_hash(item.mix[0]), float(item.mix[1])],
            "dtype": self.dtype_name,
        }

    def audio_path(self, encoder: Any, item: AudioItem) -> tuple[Path, str, dict[str, Any]]:
        parts = self.audio_key_parts(encoder, item)
        key = _digest(parts)
        return self.root / "audio" / encoder.identity() / key[:2] / f"{key}.safetensors", key, parts

    def backend_identity(self, backend: Any) -> dict[str, Any]:
        ident = {
            "backend": backend.name,
            "model_id": str(backend.model_id),
            "revision": getattr(backend, "revision", None),
            "max_sequence_length": backend.max_sequence_length,
            "spec": {n: list(s.shape) for n, s in backend.conditioning_spec().items()},
        }
        # a backend whose targets come from a separate text model (minilm) is keyed by that model too
        if getattr(backend, "text_model_id", None) is not None:
            ident["text_model_id"] = str(backend.text_model_id)
        return ident

    def target_path(self, backend_id: Mapping[str, Any], caption: str) -> tuple[Path, str, dict[str, Any]]:
        parts = {"v": CACHE_VERSION, "kind": "targets", **backend_id, "caption": caption, "dtype": self.dtype_name}
        key = _digest(parts)
        folder = _digest(dict(backend_id))[:16]
        return self.root / "targets" / folder / key[:2] / f"{key}.safetensors", key, parts

    # ---- entries ----------------------------------------------------------------------------
    def _reject(self, path: Path) -> None:
        with self._lock:  # header checks run on threads
            self.stats.corrupt += 1
            self.stats.corrupt_files.append(str(path))
        _remove_entry(path)

    def check_entry(self, path: Path, key: str, shapes: Mapping[str, Sequence[int]]) -> bool:
        """The cheap start-up check, from the header only: the entry exists, is not truncated,
        is ``key`` in the cache dtype and holds exactly ``shapes``. A failing entry is deleted
        (and counted as corrupt); a missing one is just ``False``."""
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):  # missing (a file in the way of its folder too)
            return False
        code = SAFETENSORS_DTYPE_CODES[self.dtype]
        try:  # not a regular file (a folder, a pipe): never opened, rejected below
            ok = stat.S_ISREG(st.st_mode) and _header_matches(path, key, self.dtype_name, code, shapes)
        except (OSError, SafetensorError):
            ok = False
        if not ok:
            self._reject(path)
        return ok

    def read_entry(self, path: str | Path) -> dict[str, torch.Tensor] | None:
        """The tensors of the entry at ``path``, verified (key = file name, sha256 of the bytes).

        Contract: returns ``None`` when the entry is missing or fails any check — a failing entry
        is deleted and counted in :attr:`stats` (``corrupt``), so the caller recomputes it (as
        :meth:`load_tokens` does). It never returns unverified tensors and never raises for bad
        contents (only for OS errors other than a missing file, and a :class:`CorruptEntryError`
        naming a folder of files found where the entry belongs: an empty folder is removed, a miss).
        """
        path = Path(path)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):  # a folder where the entry belongs (removed if empty, else named), a pipe
            self._reject(path)
            return None
        try:
            meta, tensors = _read_verified(path)
            ok = meta.get("key") == path.stem and meta.get("dtype") == self.dtype_name
        except FileNotFoundError:  # deleted by another process since the stat: a miss
            return None
        except (SafetensorError, ValueError):  # truncated, garbage, checksum mismatch: never trusted
            ok = False
        if not ok:
            self._reject(path)
            return None
        return tensors

    def read(self, path: Path, key: str, shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, torch.Tensor] | None:
        """:meth:`read_entry`, also checking it is ``key`` with ``shapes``; else delete it, None."""
        tensors = self.read_entry(path) if Path(path).stem == key else None
        if tensors is not None and shapes is not None and not (
                set(tensors) == set(shapes) and all(tuple(tensors[n].shape) == tuple(s) for n, s in shapes.items())):
            self._reject(Path(path))
            return None
        return tensors

    def write(self, path: Path, key: str, parts: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
              *, writer: int = 0) -> dict[str, torch.Tensor]:
        """Store ``tensors`` (cast to the cache dtype) atomically; returns what was stored."""
        self.check_writable()
        data = {n: t.detach().to("cpu", self.dtype).contiguous() for n, t in tensors.items()}
        meta = {"key": key, "parts": json.dumps(parts, sort_keys=True, default=str), "sha256": tensor_digest(data),
                "dtype": self.dtype_name, "writer_rank": str(int(writer))}
        try:
            with atomic_path(path, needed=sum(t.nbytes for t in data.values())) as tmp:  # a full disk: one line
                save_file(data, str(tmp), metadata=meta)
        except (FileExistsError, NotADirectoryError):  # a file where the layout has a folder
            blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
            raise CorruptEntryError(f"{blocker} is a file where the feature cache keeps a folder of entries: move "
                                    "it out of the feature cache (--cache-dir), then rerun") from None
        self.stats.written += 1
        return data

    def check_entries(self, entries: Sequence[tuple[Path, str]], shapes: Mapping[str, Sequence[int]]) -> list[bool]:
        """:meth:`check_entry` of each ``(path, key)``; I/O-bound, so run on ``CHECK_THREADS`` threads
        (a cold disk answers many small header reads at once; see ``benchmarks/feature_store.py``)."""
        if len(entries) < 2 * CHECK_THREADS:
            return [self.check_entry(p, k, shapes) for p, k in entries]
        with ThreadPoolExecutor(CHECK_THREADS) as pool:
            return list(pool.map(lambda e: self.check_entry(e[0], e[1], shapes), entries, chunksize=64))

    def _check_all(self, entries: Sequence[tuple[Path, str]], shapes: Mapping[str, Sequence[int]]) -> list[int]:
        """Header-check each distinct entry once; the indices (into ``entries``) of the misses."""
        first: dict[Path, int] = {}
        for i, (path, _) in enumerate(entries):
            first.setdefault(path, i)
        order = list(first.values())
        ok = self.check_entries([entries[i] for i in order], shapes)
        todo = [i for i, good in zip(order, ok) if not good]
        self.stats.hits += len(order) - len(todo)
        self.stats.misses += len(todo)
        return todo

    # ---- audio ------------------------------------------------------------------------------
    def ensure_audio(self, encoder: Any, items: Sequence[AudioItem], *, batch_size: int = 16,
                     progress: bool = True, desc: str = "encoding audio",
                     distributed: bool | None = None, skip_bad: bool = False) -> list[Path]:
        """Make sure every item's tokens are cached; return their entry paths (row-aligned).

        Checks headers only (see the module docstring). ``distributed`` (default: when launched
        with several processes) splits the misses across processes: collective, see the module
        docstring; ``False`` makes this process encode all of its misses itself.

        An item whose audio cannot be decoded raises its :class:`~seeingsounds.errors.AudioLoadError`
        (naming the file); with ``skip_bad`` the failure is recorded beside its entry instead
        (:func:`recorded_failure` gives the reason: its entry path does not exist) and is not decoded
        again by a later call while the file and the library are the same.
        """
        rank, world, _ = _process_group(distributed)
        shape = {"tokens": (encoder.num_tokens, encoder.hidden_size)}
        entries = [self.audio_path(encoder, it)[:2] for it in items]  # key parts rebuilt for misses only
        todo = self._check_all(entries, shape)
        if skip_bad and todo:
            known = {i for i in todo if recorded_failure(entries[i][0]) is not None}
            todo = [i for i in todo if i not in known]
            self.stats.misses -= len(known)
            self.stats.failed += len(known)
        if todo:
            self.check_writable()  # before any clip is encoded (and before claim files are made)
        bar = tqdm(total=len(todo), desc=desc, unit="clip", disable=not progress or not todo or rank != 0)

        def compute(chunk: list[int]) -> None:
            waves, decoded = [], []
            for i in chunk:
                try:
                    waves.append(load_item_wave(items[i], encoder.sample_rate, encoder.window_samples))
                except AudioLoadError as exc:
                    if not skip_bad:
                        raise
                    self._record_failure(entries[i][0], items[i], exc, writer=rank)
                else:
                    decoded.append(i)
            tokens = encoder.encode(waves, batch_size=batch_size) if waves else []
            for i, t in zip(decoded, tokens):
                path, key = entries[i]
                self.write(path, key, self.audio_key_parts(encoder, items[i]), {"tokens": t}, writer=rank)
                failure_path(path).unlink(missing_ok=True)  # a failure recorded by another library version
            bar.update(len(chunk) * world)  # rank 0's bar estimates everyone's progress

        def settled(entry: Path) -> bool:
            return entry.exists() or (skip_bad and recorded_failure(entry) is not None)

        try:
            share_work(todo, [e[0] for e in entries], compute, rank=rank, world=world, batch_size=batch_size,
                       done=settled)
        finally:
            bar.close()
        return [e[0] for e in entries]

    def _record_failure(self, entry: Path, item: AudioItem, exc: AudioLoadError, *, writer: int) -> None:
        """Write the marker of an item whose audio cannot be decoded (atomically: every process reads it whole)."""
        self.check_writable()
        atomic_write_json(failure_path(entry), {
            "source": exc.source, "reason": exc.reason, "path": str(item.path),
            "mix": None if item.mix is None else str(item.mix[0]), "library": __version__, "writer_rank": writer})
        with self._lock:
            self.stats.failed += 1

    def load_tokens(self, encoder: Any, item: AudioItem) -> torch.Tensor:
        """``item``'s tokens ``[m, d]`` (cache dtype), verified on read; a missing or corrupt entry
        is recomputed with ``encoder``, rewritten and returned (what the training dataset calls)."""
        path, key, parts = self.audio_path(encoder, item)
        tensors = self.read(path, key, {"tokens": (encoder.num_tokens, encoder.hidden_size)})
        if tensors is not None:
            return tensors["tokens"]
        self.check_writable()
        wave = load_item_wave(item, encoder.sample_rate, encoder.window_samples)
        tokens = encoder.encode([wave], batch_size=1)[0]
        return self.write(path, key, parts, {"tokens": tokens}, writer=launch_rank())["tokens"]

    def audio_tokens(self, encoder: Any, items: Sequence[AudioItem], *, batch_size: int = 16,
                     progress: bool = True) -> torch.Tensor:
        """Tokens ``[N, m, d]`` (float32) of ``items``, computed only where missing (this process alone)."""
        paths = self.ensure_audio(encoder, items, batch_size=batch_size, progress=progress, distributed=False)
        out = torch.empty(len(paths), encoder.num_tokens, encoder.hidden_size)
        for i, item in enumerate(items):
            out[i] = self.load_tokens(encoder, item)
        return out

    # ---- caption targets --------------------------------------------------------------------
    def _target_shapes(self, backend: Any) -> dict[str, tuple[int, ...]]:
        return {n: tuple(s.shape) for n, s in backend.conditioning_spec().items()}

    def ensure_targets(self, backend: Any, captions: Sequence[str], *, device: str | torch.device | None = None,
                       dtype: str | torch.dtype | None = None, batch_size: int = 16, progress: bool = True,
                       pipe_factory: Callable[[], Any] | None = None,
                       distributed: bool | None = None) -> list[Path]:
        """One verified entry per unique caption (tensors named by the backend's conditioning spec,
        in the cache dtype); returns the entry paths row-aligned with ``captions``.

        The text pipeline (``pipe_factory``, default ``backend.load_text_pipeline``) is loaded on
        ``device``/``dtype`` (default: the accelerator in bf16 where supported, fp16 on other
        accelerators, the CPU in fp32 — :mod:`seeingsounds.devices`) only when something is
        missing, used in batches of ``batch_size`` and released before returning. Nothing is
        stacked in memory. ``distributed``: as in :meth:`ensure_audio`.
        """
        rank, world, launch_device = _process_group(distributed)
        shapes = self._target_shapes(backend)
        backend_id = self.backend_identity(backend)
        entries = [self.target_path(backend_id, str(c))[:2] for c in captions]
        todo = self._check_all(entries, shapes)
        if todo:
            self.check_writable()  # before the text pipeline loads
            if device is None and launch_device is not None:
                device = launch_device  # under a launcher each process uses its own accelerator
            with _TextEncoding(self, backend, device=device, dtype=dtype, batch_size=batch_size,
                               total=len(todo) * (rank == 0), progress=progress and rank == 0,
                               pipe_factory=pipe_factory, writer=rank) as encoding:
                def compute(chunk: list[int]) -> None:
                    texts = [str(captions[i]) for i in chunk]
                    encoding.encode(texts, [self.target_path(backend_id, t) for t in texts])

                share_work(todo, [e[0] for e in entries], compute, rank=rank, world=world, batch_size=batch_size)
        return [e[0] for e in entries]

    def load_targets(self, backend: Any, caption: str, *, device: str | torch.device | None = None,
                     dtype: str | torch.dtype | None = None,
                     pipe_factory: Callable[[], Any] | None = None) -> dict[str, torch.Tensor]:
        """``caption``'s targets ``{name: [...]}`` (cache dtype), verified on read; a missing or
        corrupt entry is recomputed (loading the text pipeline once for it), rewritten and returned."""
        path, key, parts = self.target_path(self.backend_identity(backend), str(caption))
        tensors = self.read(path, key, self._target_shapes(backend))
        if tensors is None:
            self.check_writable()
            with _TextEncoding(self, backend, device=device, dtype=dtype, batch_size=1, total=1, progress=False,
                               pipe_factory=pipe_factory, writer=launch_rank()) as encoding:
                encoding.encode([str(caption)], [(path, key, parts)])
            tensors = self.read(path, key, self._target_shapes(backend))
            if tensors is None:
                raise CorruptEntryError(f"{path} failed its check right after it was written: "
                                        f"is the disk under {self.root} full or faulty?")
        return tensors

    def caption_targets(self, backend: Any, captions: Sequence[str], *,
                        pipe_factory: Callable[[], Any] | None = None, batch_size: int = 16,
                        progress: bool = True, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None,
                        out_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Targets ``{name: [N, ...]}`` for ``captions`` stacked in ``out_dtype`` (default: the
        cache dtype, one copy), via :meth:`ensure_targets` (this process alone)."""
        shapes = self._target_shapes(backend)
        paths = self.ensure_targets(backend, captions, device=device, dtype=dtype, batch_size=batch_size,
                                    progress=progress, pipe_factory=pipe_factory, distributed=False)
        out_dtype = out_dtype or self.dtype
        out = {n: torch.empty(len(captions), *s, dtype=out_dtype) for n, s in shapes.items()}
        rows: dict[Path, list[int]] = {}
        for i, p in enumerate(paths):
            rows.setdefault(p, []).append(i)
        for path, where in rows.items():
            tensors = self.load_targets(backend, str(captions[where[0]]), device=device, dtype=dtype,
                                        pipe_factory=pipe_factory)
            for n in shapes:
                out[n][where] = tensors[n].to(out_dtype)
        return out


class _TextEncoding:
    """One text pipeline, loaded on first use (on ``device``/``dtype``), writing target entries
    batch by batch; leaving the ``with`` block releases it (``gc`` + CUDA cache)."""

    def __init__(self, cache: FeatureCache, backend: Any, *, device: str | torch.device | None,
                 dtype: str | torch.dtype | None, batch_size: int, total: int, progress: bool,
                 pipe_factory: Callable[[], Any] | None, writer: int):
        self.cache, self.backend, self.batch_size, self.writer = cache, backend, batch_size, writer
        self.device, self.dtype, self.pipe_factory = device, dtype, pipe_factory
        self.names = list(backend.conditioning_spec())
        self.pipe: Any = None
        self.bar = tqdm(total=total, desc="encoding captions", unit="caption", disable=not progress)

    def __enter__(self) -> _TextEncoding:
        return self

    def encode(self, texts: list[str], entries: Sequence[tuple[Path, str, dict[str, Any]]]) -> None:
        if self.pipe is None:
            if self.pipe_factory is not None:
                self.pipe = self.pipe_factory()
            else:
                target = resolve_device(self.device)
                self.pipe = self.backend.load_text_pipeline(device=target, dtype=resolve_dtype(self.dtype, target))
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            out = self.backend.encode_captions(chunk, pipe=self.pipe, batch_size=self.batch_size,
                                               out_dtype=self.cache.dtype)
            for j, (path, key, parts) in enumerate(entries[start : start + self.batch_size]):
                self.cache.write(path, key, parts, {n: out[n][j] for n in self.names}, writer=self.writer)
            del out
            self.bar.update(len(chunk))

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()
        self.pipe = None
        release_memory()


def _remove_entry(path: Path) -> None:
    """Delete a failed entry. A folder in its place is not ours to delete: an empty one is removed (a miss,
    recomputed), one holding files is a :class:`CorruptEntryError` naming it."""
    if path.is_dir() and not path.is_symlink():
        try:
            path.rmdir()
        except OSError:
            raise CorruptEntryError(f"the cache entry {path} is a folder holding files, not an entry: move it out "
                                    "of the feature cache (--cache-dir), then rerun to recompute the entry") from None
        return
    path.unlink(missing_ok=True)


def read_tokens(path: str | Path) -> torch.Tensor:
    """The ``tokens`` tensor of a cache entry, verified (sha256); raises :class:`CorruptEntryError`
    naming the file when it fails (:meth:`FeatureCache.load_tokens` recomputes instead)."""
    path = Path(path)
    cache = FeatureCache(path.parent, dtype=_entry_dtype(path))
    tensors = cache.read_entry(path)
    if tensors is None or "tokens" not in tensors:
        raise CorruptEntryError(f"cache entry {path} is missing or corrupt (deleted): rerun `seeingsounds cache` "
                                "or the training command to recompute it")
    return tensors["tokens"]


def _entry_dtype(path: Path) -> str:
    try:
        with safe_open(path, framework="pt") as f:
            name = str((f.metadata() or {}).get("dtype", "float16"))
        return name if name in CACHE_DTYPES else "float16"
    except (OSError, SafetensorError):
        return "float16"
