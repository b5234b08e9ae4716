"""On-disk cache of what the frozen models compute: audio-encoder tokens per clip, targets per caption.

Both the audio encoder and the generator's text encoders are frozen, so their outputs are
computed once and reused across runs and datasets (the encoder is ~1000x the cost of an aligner
step at the paper's dimensions). Entries are safetensors files (fp16 by default) keyed by
everything that changes them:

* audio tokens: sha256 of the file's bytes, the encoder's :meth:`identity`, the preprocessing
  (target sample rate, window length), the effect chain and the mix partner + ratio (paper Eq. 7)
  and the storage dtype;
* caption targets: backend name, model id + revision, conditioning spec, max sequence length,
  the text model that defines the targets (where a backend has its own), the caption text and the
  storage dtype.

Change any part and the key changes (a miss). Writes are atomic (temp file + ``os.replace``).
Each entry stores its key and a sha256 of its tensor bytes; an entry that is truncated, corrupt
or not the one asked for is deleted and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeingsounds.errors import ConfigError

#: bump when the layout or the preprocessing changes: every old entry becomes a miss
CACHE_VERSION = 1
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

Effects = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


def canonical_effects(effects: Sequence[tuple[str, Mapping[str, Any]]] | None) -> Effects:
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
    effects: Effects = ()
    mix: tuple[Path, float] | None = None

    @classmethod
    def of(cls, path: str | Path, effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
           mix: tuple[str | Path, float] | None = None) -> AudioItem:
        return cls(Path(path), canonical_effects(effects),
                   None if mix is None else (Path(mix[0]), float(mix[1])))

    def effect_list(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, dict(params)) for name, params in self.effects]


def load_item_wave(item: AudioItem, sample_rate: int, num_samples: int) -> np.ndarray:
    """The waveform the encoder gets for ``item``: loaded, resampled, cropped/padded to the
    window, then mixed (level-matched, :func:`seeingsounds.audio.effects.mix`), then the effect
    chain — the order of ``seeingsounds describe/generate --mix ... --volume ...``."""
    from seeingsounds.audio.io import fit_length, load_audio

    wave = load_audio(item.path, target_sr=sample_rate, num_samples=num_samples)
    if item.mix is not None:
        from seeingsounds.audio.effects import mix

        other = load_audio(item.mix[0], target_sr=sample_rate, num_samples=num_samples)
        wave = mix(wave, other, item.mix[1])
    if item.effects:
        from seeingsounds.audio.effects import apply_effects

        wave, _ = apply_effects(wave, sample_rate, item.effect_list())
    return np.ascontiguousarray(fit_length(np.asarray(wave, dtype=np.float32), num_samples), dtype=np.float32)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    corrupt_files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f", {self.corrupt} corrupt entries recomputed" if self.corrupt else ""
        return f"{self.hits} hits, {self.misses} misses{extra}"


class FeatureCache:
    """Encoder tokens and caption targets on disk (default ``home()/features``).

    Args:
        root: cache folder.
        dtype: storage dtype, ``float16`` (default), ``bfloat16`` or ``float32``. Part of the key.
    """

    def __init__(self, root: str | Path | None = None, dtype: str = "float16"):
        if dtype not in DTYPES:
            raise ConfigError(f"cache dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if root is None:
            from seeingsounds.paths import home

            root = home() / "features"
        self.root = Path(root).expanduser()
        self.dtype_name = dtype
        self.dtype = DTYPES[dtype]
        self.stats = CacheStats()
        self._hashes: dict[Path, tuple[int, int, str]] = {}

    # ---- keys -------------------------------------------------------------------------------
    def file_hash(self, path: str | Path) -> str:
        """sha256 of a file's bytes (memoised per size + mtime within this object)."""
        path = Path(path)
        st = path.stat()
        memo = self._hashes.get(path)
        if memo is not None and memo[:2] == (st.st_size, st.st_mtime_ns):
            return memo[2]
        from seeingsounds.data.manifest import file_sha256

        sha = file_sha256(path)
        self._hashes[path] = (st.st_size, st.st_mtime_ns, sha)
        return sha

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
    def read(self, path: Path, key: str, shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, torch.Tensor] | None:
        """The tensors of the entry at ``path`` if it is intact and is ``key``; else delete it, None."""
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
            ok = meta.get("key") == key and meta.get("sha256") == _tensor_digest(tensors)
            if ok and shapes is not None:
                ok = set(tensors) == set(shapes) and all(
                    tuple(tensors[n].shape) == tuple(s) for n, s in shapes.items())
        except Exception:  # truncated header, short data, garbage: all mean "not trustworthy"
            ok = False
        if not ok:
            self.stats.corrupt += 1
            self.stats.corrupt_files.append(str(path))
            path.unlink(missing_ok=True)
            return None
        return tensors

    def write(self, path: Path, key: str, parts: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        """Store ``tensors`` (cast to the cache dtype) atomically."""
        from safetensors.torch import save_file

        data = {n: t.detach().to("cpu", self.dtype).contiguous() for n, t in tensors.items()}
        meta = {"key": key, "parts": json.dumps(parts, sort_keys=True, default=str), "sha256": _tensor_digest(data)}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(data, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # ---- audio ------------------------------------------------------------------------------
    def ensure_audio(self, encoder: Any, items: Sequence[AudioItem], *, batch_size: int = 16,
                     progress: bool = True, desc: str = "encoding audio") -> list[Path]:
        """Make sure every item's tokens are cached; return their entry paths (row-aligned)."""
        from tqdm.auto import tqdm

        shape = {"tokens": (encoder.num_tokens, encoder.hidden_size)}
        entries = [self.audio_path(encoder, it) for it in items]
        todo: list[int] = []
        checked: set[Path] = set()
        for i, (path, key, _) in enumerate(entries):
            if path in checked:
                continue
            checked.add(path)
            if self._valid(path, key, shape):
                self.stats.hits += 1
            else:
                self.stats.misses += 1
                todo.append(i)
        bar = tqdm(total=len(todo), desc=desc, unit="clip", disable=not progress or not todo)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            waves = [load_item_wave(items[i], encoder.sample_rate, encoder.window_samples) for i in chunk]
            tokens = encoder.encode(waves, batch_size=batch_size)
            for i, t in zip(chunk, tokens):
                path, key, parts = entries[i]
                self.write(path, key, parts, {"tokens": t})
            bar.update(len(chunk))
        bar.close()
        return [e[0] for e in entries]

    def _valid(self, path: Path, key: str, shapes: Mapping[str, Sequence[int]]) -> bool:
        """Cheap validity check for :meth:`ensure_audio` (full check: header, key, checksum, shape)."""
        return self.read(path, key, shapes) is not None

    def audio_tokens(self, encoder: Any, items: Sequence[AudioItem], *, batch_size: int = 16,
                     progress: bool = True) -> torch.Tensor:
        """Tokens ``[N, m, d]`` (float32) of ``items``, computed only where missing."""
        paths = self.ensure_audio(encoder, items, batch_size=batch_size, progress=progress)
        if not paths:
            return torch.empty(0, encoder.num_tokens, encoder.hidden_size)
        return torch.stack([read_tokens(p) for p in paths]).float()

    # ---- caption targets --------------------------------------------------------------------
    def caption_targets(self, backend: Any, captions: Sequence[str], *,
                        pipe_factory: Callable[[], Any] | None = None, batch_size: int = 16,
                        progress: bool = True) -> dict[str, torch.Tensor]:
        """Targets ``{name: [N, ...]}`` (float32) for ``captions``; the text pipeline is loaded
        (``pipe_factory``, default ``backend.load_text_pipeline``) only when something is missing."""
        from tqdm.auto import tqdm

        spec = backend.conditioning_spec()
        shapes = {n: s.shape for n, s in spec.items()}
        backend_id = self.backend_identity(backend)
        unique = list(dict.fromkeys(str(c) for c in captions))
        found: dict[str, dict[str, torch.Tensor]] = {}
        todo: list[str] = []
        for cap in unique:
            path, key, _ = self.target_path(backend_id, cap)
            tensors = self.read(path, key, shapes)
            if tensors is None:
                self.stats.misses += 1
                todo.append(cap)
            else:
                self.stats.hits += 1
                found[cap] = tensors
        if todo:
            pipe = (pipe_factory or backend.load_text_pipeline)()
            bar = tqdm(total=len(todo), desc="encoding captions", unit="caption", disable=not progress)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                out = backend.encode_captions(chunk, pipe=pipe, batch_size=batch_size)
                for j, cap in enumerate(chunk):
                    path, key, parts = self.target_path(backend_id, cap)
                    tensors = {n: out[n][j] for n in spec}
                    self.write(path, key, parts, tensors)
                    found[cap] = {n: t.to(self.dtype) for n, t in tensors.items()}
                bar.update(len(chunk))
            bar.close()
        return {n: torch.stack([found[str(c)][n] for c in captions]).float() if captions
                else torch.empty(0, *shapes[n]) for n in spec}


def read_tokens(path: str | Path) -> torch.Tensor:
    """The ``tokens`` tensor of a cache entry (already verified by :meth:`FeatureCache.ensure_audio`)."""
    from safetensors.torch import load_file

    return load_file(str(path))["tokens"]


def encode_live(encoder: Any, items: Sequence[AudioItem], *, batch_size: int = 16) -> torch.Tensor:
    """Tokens of ``items`` straight from the encoder (no cache)."""
    waves = [load_item_wave(it, encoder.sample_rate, encoder.window_samples) for it in items]
    return encoder.encode(waves, batch_size=batch_size)
