"""Feature-store layouts for 10^5-10^6 clips: one safetensors file per clip vs sharded layouts.

    python benchmarks/feature_store.py [--entries 2000] [--shard 256] [--json out.json]

Random tokens of AST's real shape [1214, 768] fp16 (1.86 MB an entry) are written in three
layouts, then measured:

* ``file-per-clip``: the layout :class:`seeingsounds.cache.FeatureCache` uses (its own ``write``,
  ``check_entry`` and ``read_entry``): one safetensors file per entry, atomic, sha256 in the header;
* ``safetensors-shards``: ``--shard`` entries per safetensors file, per-entry sha256 in the header;
* ``webdataset-tar``: ``--shard`` entries per tar (WebDataset's layout), an offset index built by
  scanning the tar headers, per-entry sha256 in a member.

Columns: write time, start-up check time with headers only and with a full sha256 of every byte,
random-access read of a batch of 32 entries (cold: pages evicted with ``posix_fadvise``; verified),
files created; then the start-up and file counts extrapolated linearly to 10^5 and 10^6 entries.
Each layout is deleted before the next one is written (peak disk: one layout).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from seeingsounds.cache import FeatureCache, tensor_digest

SHAPE = (1214, 768)
BATCH = 32


def entry_key(i: int) -> str:
    return hashlib.sha256(f"entry {i}".encode()).hexdigest()


def tokens_pool(n: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(SHAPE, generator=g).half() for _ in range(n)]


def tokens(pool: list[torch.Tensor], i: int) -> torch.Tensor:
    t = pool[i % len(pool)].clone()
    t[0, 0] = float(i)  # every entry distinct
    return t


def evict(files: list[Path]) -> None:
    """Drop the files' pages from the page cache (no root needed) so reads hit the disk."""
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class FilePerClip:
    name = "file-per-clip"

    def __init__(self, root: Path, shard: int):
        self.cache = FeatureCache(root)
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / "audio" / "bench" / key[:2] / f"{key}.safetensors"

    def write_all(self, n: int, pool: list[torch.Tensor]) -> None:
        for i in range(n):
            key = entry_key(i)
            self.cache.write(self.path(key), key, {"i": i}, {"tokens": tokens(pool, i)})

    def check_headers(self, keys: list[str]) -> int:  # what ensure_audio runs at start-up
        return sum(self.cache.check_entries([(self.path(k), k) for k in keys], {"tokens": SHAPE}))

    def check_full(self, keys: list[str]) -> int:
        return sum(self.cache.read_entry(self.path(k)) is not None for k in keys)

    def read(self, keys: list[str]) -> list[torch.Tensor]:
        return [self.cache.read_entry(self.path(k))["tokens"] for k in keys]

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.safetensors"))


class SafetensorsShards:
    name = "safetensors-shards"

    def __init__(self, root: Path, shard: int):
        self.root, self.shard = root, shard
        self.index: dict[str, Path] = {}
        root.mkdir(parents=True, exist_ok=True)

    def write_all(self, n: int, pool: list[torch.Tensor]) -> None:
        for s in range(0, n, self.shard):
            data = {entry_key(i): tokens(pool, i) for i in range(s, min(n, s + self.shard))}
            meta = {"sha256": json.dumps({k: tensor_digest({"tokens": t}) for k, t in data.items()})}
            path = self.root / f"shard-{s // self.shard:06d}.safetensors"
            tmp = path.with_suffix(".tmp")
            save_file(data, str(tmp), metadata=meta)
            os.replace(tmp, path)

    def check_headers(self, keys: list[str]) -> int:
        self.index = {}
        for path in self.files():
            try:  # safe_open checks the header and that the file's size is the one it implies
                with safe_open(str(path), framework="pt") as f:
                    shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            except SafetensorError:
                continue
            for k, shape in shapes.items():
                if shape == SHAPE:
                    self.index[k] = path
        return sum(k in self.index for k in keys)

    def check_full(self, keys: list[str]) -> int:
        ok = 0
        for path in self.files():
            with safe_open(str(path), framework="pt") as f:
                sums = json.loads(f.metadata()["sha256"])
                for k in f.keys():
                    ok += sums[k] == tensor_digest({"tokens": f.get_tensor(k)})
        return ok

    def read(self, keys: list[str]) -> list[torch.Tensor]:
        out = []
        for k in keys:
            with safe_open(str(self.index[k]), framework="pt") as f:
                t = f.get_tensor(k)
                sums = json.loads(f.metadata()["sha256"])
            assert sums[k] == tensor_digest({"tokens": t})
            out.append(t)
        return out

    def files(self) -> list[Path]:
        return sorted(self.root.glob("shard-*.safetensors"))


class WebDatasetTar:
    name = "webdataset-tar"

    def __init__(self, root: Path, shard: int):
        self.root, self.shard = root, shard
        self.index: dict[str, tuple[Path, int, int, str]] = {}
        root.mkdir(parents=True, exist_ok=True)

    def write_all(self, n: int, pool: list[torch.Tensor]) -> None:
        for s in range(0, n, self.shard):
            path = self.root / f"shard-{s // self.shard:06d}.tar"
            tmp = path.with_suffix(".tmp")
            with tarfile.open(tmp, "w") as tar:
                for i in range(s, min(n, s + self.shard)):
                    raw = tokens(pool, i).numpy().tobytes()
                    key = entry_key(i)
                    for suffix, payload in ((".tokens.f16", raw), (".sha256", hashlib.sha256(raw).hexdigest().encode())):
                        info = tarfile.TarInfo(key + suffix)
                        info.size = len(payload)
                        tar.addfile(info, io.BytesIO(payload))
            os.replace(tmp, path)

    def check_headers(self, keys: list[str]) -> int:
        self.index = {}
        for path in self.files():
            with tarfile.open(path, "r") as tar:
                members = tar.getmembers()  # walks the 512-byte headers only
                sums = {}
                for m in members:
                    if m.name.endswith(".sha256"):
                        sums[m.name[: -len(".sha256")]] = tar.extractfile(m).read().decode()
                for m in members:
                    if m.name.endswith(".tokens.f16") and m.size == 2 * SHAPE[0] * SHAPE[1]:
                        k = m.name[: -len(".tokens.f16")]
                        self.index[k] = (path, m.offset_data, m.size, sums.get(k, ""))
        return sum(k in self.index for k in keys)

    def check_full(self, keys: list[str]) -> int:
        self.check_headers(keys)
        ok = 0
        for path, offset, size, digest in self.index.values():
            with open(path, "rb") as f:
                f.seek(offset)
                ok += hashlib.sha256(f.read(size)).hexdigest() == digest
        return ok

    def read(self, keys: list[str]) -> list[torch.Tensor]:
        out = []
        for k in keys:
            path, offset, size, digest = self.index[k]
            with open(path, "rb") as f:
                f.seek(offset)
                raw = f.read(size)
            assert hashlib.sha256(raw).hexdigest() == digest
            out.append(torch.frombuffer(bytearray(raw), dtype=torch.float16).view(SHAPE))
        return out

    def files(self) -> list[Path]:
        return sorted(self.root.glob("shard-*.tar"))


def measure(layout_cls, root: Path, n: int, shard: int, batches: int, pool: list[torch.Tensor]) -> dict:
    layout = layout_cls(root, shard)
    keys = [entry_key(i) for i in range(n)]
    start = time.perf_counter()
    layout.write_all(n, pool)
    os.sync()
    write_s = time.perf_counter() - start
    files = layout.files()
    evict(files)
    start = time.perf_counter()
    assert layout.check_headers(keys) == n
    header_s = time.perf_counter() - start
    evict(files)
    start = time.perf_counter()
    assert layout.check_full(keys) == n
    full_s = time.perf_counter() - start
    rng = random.Random(0)
    cold = []
    for _ in range(batches):
        evict(files)
        batch = rng.sample(keys, BATCH)
        start = time.perf_counter()
        got = layout.read(batch)
        cold.append(time.perf_counter() - start)
        assert len(got) == BATCH and tuple(got[0].shape) == SHAPE
    per_entry = header_s / n
    return {
        "layout": layout_cls.name, "entries": n, "shard": shard if layout_cls is not FilePerClip else 1,
        "bytes": sum(f.stat().st_size for f in files), "files": len(files),
        "write_s": write_s, "write_ms_per_entry": 1e3 * write_s / n,
        "startup_header_s": header_s, "startup_full_hash_s": full_s,
        "read_batch32_ms": 1e3 * sorted(cold)[len(cold) // 2],
        "startup_header_s_1e5": per_entry * 1e5, "startup_header_s_1e6": per_entry * 1e6,
        "startup_full_hash_s_1e6": full_s / n * 1e6,
        "files_1e6": len(files) / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--shard", type=int, default=256, help="entries per shard (sharded layouts)")
    parser.add_argument("--batches", type=int, default=10, help="random batches of 32 to time (median)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pool = tokens_pool()
    rows = []
    base = Path(tempfile.mkdtemp(prefix="feature-store-", dir=args.dir))
    try:
        for layout in (FilePerClip, SafetensorsShards, WebDatasetTar):
            root = base / layout.name
            rows.append(measure(layout, root, args.entries, args.shard, args.batches, pool))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    head = (f"{'layout':<20}{'files':>7}{'GB':>7}{'write ms/entry':>16}{'start-up hdr s':>16}{'full hash s':>13}"
            f"{'batch32 ms':>12}{'hdr s @1e5':>12}{'hdr s @1e6':>12}{'hash s @1e6':>13}{'files @1e6':>12}")
    print(f"{args.entries} entries of [1214, 768] fp16")
    print(head)
    for r in rows:
        print(f"{r['layout']:<20}{r['files']:>7}{r['bytes'] / 1e9:>7.2f}{r['write_ms_per_entry']:>16.2f}"
              f"{r['startup_header_s']:>16.3f}{r['startup_full_hash_s']:>13.2f}{r['read_batch32_ms']:>12.1f}"
              f"{r['startup_header_s_1e5']:>12.1f}{r['startup_header_s_1e6']:>12.1f}"
              f"{r['startup_full_hash_s_1e6']:>13.0f}{r['files_1e6']:>12.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
