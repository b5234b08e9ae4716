"""Caption-cache I/O: the JSON Lines cache (one appended line per caption) against rewriting the
whole JSON file per caption (the format before seeingsounds-caption-cache/2).

    python benchmarks/caption_cache.py [--captions 2000] [--json out.json]

Prints seconds and bytes written for N captions with each scheme; the rewrite is quadratic in N.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from seeingsounds.captions.llm import _Cache
from seeingsounds.paths import atomic_write_text


def record(i: int) -> dict:
    return {"operation": "fuse", "inputs": [f"a sound number {i}", f"another sound {i + 1}"], "model": "gpt-4o",
            "temperature": 0.0, "system_prompt_sha256": "0" * 64,
            "caption": f"a scene where sound number {i} and another sound {i + 1} happen together"}


def appended(folder: Path, n: int) -> tuple[float, int]:
    path = folder / "cache.jsonl"
    cache = _Cache(path)
    start = time.perf_counter()
    for i in range(n):
        cache.put(f"key{i:08d}", record(i))
    return time.perf_counter() - start, path.stat().st_size


def rewritten(folder: Path, n: int) -> tuple[float, int]:
    path, entries, written = folder / "cache.json", {}, 0
    start = time.perf_counter()
    for i in range(n):
        entries[f"key{i:08d}"] = record(i)
        text = json.dumps({"format": "seeingsounds-caption-cache/1", "entries": entries}, indent=1) + "\n"
        atomic_write_text(path, text)
        written += len(text.encode())
    return time.perf_counter() - start, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("jsonl-append", appended), ("json-rewrite", rewritten)):
            folder = Path(tmp) / name
            folder.mkdir()
            seconds, written = fn(folder, args.captions)
            rows.append({"scheme": name, "captions": args.captions, "seconds": seconds, "bytes_written": written})
    print(f"{'scheme':<14}{'captions':>10}{'seconds':>10}{'MB written':>12}")
    for r in rows:
        print(f"{r['scheme']:<14}{r['captions']:>10}{r['seconds']:>10.2f}{r['bytes_written'] / 1e6:>12.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
