"""Labelled audio datasets: a manifest (CSV / JSONL) or a class-per-folder tree, plus class captions.

Manifest columns: ``path`` (absolute, or relative to the manifest's folder), ``label``, and an
optional ``split`` in ``{train, val, test}``. A class-per-folder tree is ``ROOT/<label>/<clip>``.
Without a split column the clips are split per class with a seeded shuffle (default 90/10
train/val, at least one train clip per class). Training uses ``train`` and ``val`` and never
reads ``test``.

Everything is validated before any heavy work, and *all* problems are reported at once in one
:class:`~seeingsounds.errors.DatasetError`. ``skip_bad=True`` turns missing/unreadable audio files
into a printed summary instead of an error; nothing else is ever dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.audio.io import AUDIO_SUFFIXES, audio_info  # AUDIO_SUFFIXES: what a class folder scan picks up
from seeingsounds.captions.store import load_captions
from seeingsounds.errors import AudioLoadError, ConfigError, DatasetError

SPLITS = ("train", "val", "test")
MANIFEST_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: Path
    label: str
    split: str


@dataclass
class Dataset:
    """Validated clips with their class captions.

    ``captions[label]`` is the list of class-level captions of ``label`` (the first is the
    class's main caption). ``source`` is the manifest file or folder it came from.
    """

    clips: list[Clip]
    captions: dict[str, list[str]]
    source: Path
    captions_path: Path | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Every label that has a train or val clip, sorted."""
        return sorted({c.label for c in self.clips if c.split != "test"})

    def split(self, name: str) -> list[Clip]:
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}")
        return [c for c in self.clips if c.split == name]

    @property
    def train(self) -> list[Clip]:
        return self.split("train")

    @property
    def val(self) -> list[Clip]:
        return self.split("val")

    @property
    def test(self) -> list[Clip]:
        return self.split("test")

    def summary(self) -> str:
        counts = Counter(c.split for c in self.clips)
        return (f"{len(self.labels)} classes, {counts['train']} train / {counts['val']} val clips"
                + (f" ({counts['test']} test clips left untouched)" if counts["test"] else ""))

    def fingerprint(self) -> dict[str, Any]:
        """Content hashes of the manifest (or the tree's listing) and of the captions file."""
        out: dict[str, Any] = {"data": str(self.source)}
        if self.source.is_file():
            out["data_sha256"] = file_sha256(self.source)
        else:
            listing = "\n".join(f"{c.path.relative_to(self.source)}\t{c.label}" for c in self.clips)
            out["data_listing_sha256"] = hashlib.sha256(listing.encode()).hexdigest()
        if self.captions_path is not None:
            out["captions"] = str(self.captions_path)
            out["captions_sha256"] = file_sha256(self.captions_path)
        out["clips"] = {s: len(self.split(s)) for s in SPLITS}
        return out


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- captions -------------------------------------------------------------------------------
def read_captions(path: str | Path) -> dict[str, list[str]]:
    """Class captions from ``path`` (:func:`seeingsounds.captions.store.load_captions`), as lists of str."""
    return {str(k): [str(c) for c in v] for k, v in load_captions(path).items()}


# ---- rows -----------------------------------------------------------------------------------
def _read_manifest(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Rows of a CSV / JSONL manifest as dicts with a ``_where`` (file:line) entry."""
    try:
        return _read_manifest_rows(path, problems)
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the manifest as UTF-8")
        return []


def _read_manifest_rows(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        # utf-8-sig: spreadsheet programs write "CSV UTF-8" with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("path", "label") if c not in columns]
            if missing:
                problems.append(f"{path}: missing column(s) {missing}; the header has {columns or 'nothing'} "
                                "(need path,label[,split])")
                return []
            for row in reader:  # line_num: the row's last line, right across blank lines and quoted newlines
                clean = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in row.items()}
                clean["_where"] = f"{path.name}:{reader.line_num}"
                rows.append(clean)
    else:
        with open(path, encoding="utf-8-sig") as f:
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                where = f"{path.name}:{line}"
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    problems.append(f"{where}: not valid JSON ({exc.msg})")
                    continue
                if not isinstance(row, dict):
                    problems.append(f"{where}: expected a JSON object with path and label")
                    continue
                missing = [c for c in ("path", "label") if c not in row]
                if missing:
                    problems.append(f"{where}: missing field(s) {missing}")
                    continue
                row = {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}
                row["_where"] = where
                rows.append(row)
    return rows


def _scan_folder(root: Path, problems: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        problems.append(f"{root}: no class folders (expected ROOT/<label>/<clip>.wav)")
    for folder in classes:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            problems.append(f"class {folder.name!r}: folder {folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
        for p in files:  # relative to ``root``, as a manifest's rows are to its folder (joined once, in load_dataset)
            where = str(p.relative_to(root))
            rows.append({"path": where, "label": folder.name, "_where": where})
    return rows


def _audio_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as audio (the reason :func:`~seeingsounds.audio.io.load_audio` would give), or None."""
    try:
        audio_info(path)
    except AudioLoadError as exc:
        return exc.reason
    return None


def assign_splits(labels: Sequence[str], *, seed: int, val_fraction: float) -> list[str]:
    """Seeded stratified train/val split: per class ``round(n * val_fraction)`` val clips, but at
    least one train clip. Each class is shuffled with its own seed, so adding a class does not
    change the others' split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    splits = ["train"] * len(labels)
    for label, idx in by_label.items():
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = rng.permutation(len(idx))
        n_val = min(int(round(len(idx) * val_fraction)), len(idx) - 1)
        for j in order[:n_val]:
            splits[idx[j]] = "val"
    return splits


def load_dataset(
    data: str | Path,
    captions: str | Path | Mapping[str, str | Sequence[str]],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    skip_bad: bool = False,
    check_audio: bool = True,
    log: Any = None,
) -> Dataset:
    """Read and validate a dataset; raise one :class:`DatasetError` listing every problem.

    Args:
        data: a ``.csv`` / ``.jsonl`` manifest or a class-per-folder directory.
        captions: a captions file, or a mapping ``label -> caption(s)``.
        seed, val_fraction: the train/val split when the manifest has no ``split`` column.
        skip_bad: drop missing/unreadable audio files (printed) instead of failing.
        check_audio: open every file's header (:func:`~seeingsounds.audio.io.audio_info`; turn off only for trusted data).
        log: where the skip summary goes (default: stderr).
    """
    data = Path(data).expanduser()
    problems: list[str] = []
    if data.is_dir():
        rows = _scan_folder(data, problems)
        base = data
    elif data.is_file():
        if data.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DatasetError([f"{data}: a manifest must be .csv or .jsonl (or pass a class-per-folder directory)"],
                               header="cannot read the dataset")
        rows = _read_manifest(data, problems)
        base = data.parent
    else:
        raise DatasetError([f"{data} does not exist"], header="cannot read the dataset")

    captions_path: Path | None = None
    if isinstance(captions, Mapping):
        caps = {str(k): [v] if isinstance(v, str) else [str(c) for c in v] for k, v in captions.items()}
    else:
        captions_path = Path(captions).expanduser()
        caps = read_captions(captions_path)

    # -- rows: labels, splits, duplicates ---------------------------------------------------
    has_split = any(str(r.get("split") or "").strip() for r in rows)
    seen: dict[Path, str] = {}
    clips_rows: list[tuple[Path, str, str | None, str]] = []
    for r in rows:
        where = r["_where"]
        label = str(r.get("label") if r.get("label") is not None else "").strip()
        raw_path = str(r.get("path") if r.get("path") is not None else "").strip()
        if not raw_path:
            problems.append(f"{where}: empty path")
            continue
        if not label:
            problems.append(f"{where}: empty label for {raw_path}")
            continue
        path = Path(raw_path).expanduser()
        path = path if path.is_absolute() else base / path
        key = Path(*path.parts).resolve() if path.exists() else path
        if key in seen:
            problems.append(f"{where}: duplicate row for {raw_path} (first at {seen[key]})")
            continue
        seen[key] = where
        split = None
        if has_split:
            split = str(r.get("split") or "").strip().lower()
            if split not in SPLITS:
                problems.append(f"{where}: split {r.get('split')!r} is not one of {', '.join(SPLITS)}")
                continue
        clips_rows.append((path, label, split, where))

    # -- audio files ------------------------------------------------------------------------
    bad_audio: list[str] = []
    if check_audio:
        kept = []
        for path, label, split, where in clips_rows:
            why = _audio_problem(path)
            if why is None:
                kept.append((path, label, split, where))
            else:
                bad_audio.append(f"{where}: {path}: {why}")
        clips_rows = kept
    if skip_bad:
        if bad_audio:
            out = log or sys.stderr
            print(f"skipping {len(bad_audio)} unusable audio file(s) (--skip-bad):", file=out)
            for line in bad_audio:
                print(f"  - {line}", file=out)
        listed = _labels_of(rows)
        kept_labels = {label for _, label, _, _ in clips_rows}
        problems.extend(f"class {lb!r} has no usable clip left after skipping bad files"
                        for lb in sorted(listed - kept_labels))
    else:
        problems.extend(bad_audio)

    # -- classes and captions ---------------------------------------------------------------
    labels_all = sorted({label for _, label, _, _ in clips_rows})
    used = sorted({label for _, label, split, _ in clips_rows if split != "test"})
    without = [lb for lb in used if not caps.get(lb) or not all(str(c).strip() for c in caps[lb])]
    if without:
        problems.append(f"{len(without)} label(s) have no caption in "
                        f"{captions_path or 'the captions'}: {', '.join(repr(x) for x in without)}")
    if has_split:
        train_labels = {label for _, label, split, _ in clips_rows if split == "train"}
        for lb in labels_all:
            if lb not in train_labels and any(label == lb and s == "val" for _, label, s, _ in clips_rows):
                problems.append(f"class {lb!r} has no train clip (only val/test): add one or drop the class")
    if not rows and not problems:
        problems.append(f"{data}: the dataset is empty")
    elif clips_rows and not used and not problems:
        problems.append("every clip is in the test split: training needs train (and val) clips")

    if problems:
        raise DatasetError(problems, header=f"the dataset {data} has problems")

    if not has_split:
        splits = assign_splits([label for _, label, _, _ in clips_rows], seed=seed, val_fraction=val_fraction)
    else:
        splits = [s for _, _, s, _ in clips_rows]  # type: ignore[misc]
    clips = [Clip(path=p, label=lb, split=s) for (p, lb, _, _), s in zip(clips_rows, splits)]
    return Dataset(clips=clips, captions={lb: caps[lb] for lb in sorted(caps) if lb in set(used)},
                   source=data, captions_path=captions_path, skipped=bad_audio)


def _labels_of(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(r.get("label") or "").strip() for r in rows if str(r.get("label") or "").strip()}


def write_manifest(path: str | Path, clips: Iterable[Clip | tuple[str | Path, str] | tuple[str | Path, str, str]]) -> Path:
    """Write a CSV manifest atomically (paths relative to the manifest when they are inside its folder)."""
    from seeingsounds.paths import atomic_open

    path = Path(path)
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f)
        items = [c if isinstance(c, Clip) else Clip(Path(c[0]), c[1], c[2] if len(c) > 2 else "") for c in clips]
        with_split = any(c.split for c in items)
        writer.writerow(["path", "label", "split"] if with_split else ["path", "label"])
        for c in items:
            p = Path(c.path)
            try:
                p = p.resolve().relative_to(path.parent.resolve())
            except ValueError:
                pass
            writer.writerow([str(p), c.label, c.split] if with_split else [str(p), c.label])
    return path
