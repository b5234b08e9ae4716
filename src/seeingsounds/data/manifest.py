"""Labelled audio datasets: a manifest (CSV / JSONL) or a class-per-folder tree, plus class captions.

Manifest columns: ``path`` (absolute, or relative to the manifest's folder), ``label``, and an
optional ``split`` in ``{train, val, test}``; the file is UTF-8 (a byte-order mark is fine) or UTF-16
with a byte-order mark. A class-per-folder tree is ``ROOT/<label>/<clip>`` (the clips' paths count
from ``ROOT``, however it is spelled). :func:`read_manifest` and :func:`write_manifest` are the one
reader and writer of manifests (training, the protocols, the dataset builders).
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
import io
import json
import os
import re
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.audio.io import AUDIO_SUFFIXES, audio_info  # AUDIO_SUFFIXES: what a class folder scan picks up
from seeingsounds.captions.store import canonical_label, load_captions
from seeingsounds.errors import AudioLoadError, ConfigError, DatasetError
from seeingsounds.paths import atomic_write_text, file_sha256, found_spelling
from seeingsounds.textfiles import read_data_text

SPLITS = ("train", "val", "test")
MANIFEST_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class Clip:
    """One manifest row: a labelled audio file, its split (``""`` where none is given) and, for the
    protocols that have one, its video frame. The row type of datasets, protocols and builders."""

    path: Path
    label: str
    split: str = ""
    frame: Path | None = None


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
        """Content hashes of the manifest (or the tree's listing) and of the captions file, with their
        absolute paths (a run resumed from another working directory names the same files)."""
        out: dict[str, Any] = {"data": str(self.source.resolve())}
        if self.source.is_file():
            out["data_sha256"] = file_sha256(self.source)
        else:
            listing = "\n".join(f"{c.path.relative_to(self.source)}\t{c.label}" for c in self.clips)
            out["data_listing_sha256"] = hashlib.sha256(listing.encode()).hexdigest()
        if self.captions_path is not None:
            out["captions"] = str(self.captions_path.resolve())
            out["captions_sha256"] = file_sha256(self.captions_path)
        out["clips"] = {s: len(self.split(s)) for s in SPLITS}
        return out


# ---- captions -------------------------------------------------------------------------------
def read_captions(path: str | Path) -> dict[str, list[str]]:
    """Class captions from ``path`` (:func:`seeingsounds.captions.store.load_captions`), as lists of str."""
    return {str(k): [str(c) for c in v] for k, v in load_captions(path).items()}


# ---- text files and rows --------------------------------------------------------------------
#: characters a label may not hold (a line break or a NUL would change the manifest's rows)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text: bytes of a file name that are not UTF-8 appear as ``\\xNN``."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def text_problem(text: str, what: str) -> str | None:
    """Why ``text`` (a label, a path) cannot go into a manifest row, or None: not UTF-8 (a file name's
    bytes), a NUL, or (labels) a line break or another control character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} '{shown(text)}' is not UTF-8 text (a file or folder name in another encoding): rename it"
    if "\x00" in text:
        return f"the {what} {text!r} holds a NUL character"
    if what == "label" and _CONTROL.search(text):
        return f"the label {text!r} holds a line break or another control character"
    return None


def csv_records(path: Path, text: str, problems: list[str]) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of each CSV record of ``text`` (``line``: the record's last line, right across
    quoted line breaks). A record the csv module refuses (a field over its size limit: an unclosed quote)
    ends the file with one problem naming the line where the record began."""
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        began = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            problems.append(f"{path.name}:{began}: {exc} (an unclosed quote?); the rest of the file was not read")
            return records
        records.append((reader.line_num, fields))


def read_manifest(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Rows of a CSV / JSONL manifest as dicts (keys and string values stripped) with a ``_where``
    (file:line) entry; every problem of the file goes to ``problems``."""
    if path.is_dir():
        problems.append(f"{path} is a folder, not a manifest file (write one with `seeingsounds data`, "
                        "or list path,label in a .csv)")
        return []
    if not path.is_file():
        problems.append(f"manifest {path} does not exist")
        return []
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        problems.append(f"{path}: a manifest must be .csv or .jsonl")
        return []
    text = read_data_text(path, problems)
    if text is None:
        return []
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        records = csv_records(path, text, problems)
        if not records:
            problems.append(f"{path}: missing column(s) ['path', 'label']; the file is empty (need path and label[, split])")
            return []
        columns = [c.strip().lower() for c in records[0][1]]  # "Path,Label" from a spreadsheet too
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            other = next((f" (separated by {sep!r}? write commas)" for sep in (";", "\t", "|")
                          if any(sep in c for c in columns)), "")
            problems.append(f"{path}: missing column(s) {missing}; the header has {columns or 'nothing'}{other} "
                            "(need path and label[, split])")
            return []
        twice = sorted({c for c in columns if c and columns.count(c) > 1})
        if twice:
            problems.append(f"{path}: the header names column(s) {twice} more than once")
            return []
        for line, fields in records[1:]:
            if not fields:  # a blank line
                continue
            where = f"{path.name}:{line}"
            extra = [f for f in fields[len(columns):] if f.strip()]
            if extra:
                problems.append(f"{where}: {len(fields)} fields, the header has {len(columns)} "
                                "(quote a path or label holding a comma)")
                continue
            row: dict[str, Any] = {c: f.strip() for c, f in zip(columns, fields)}
            row.update({c: "" for c in columns[len(fields):]})
            row["_where"] = where
            rows.append(row)
        return rows
    for line, line_text in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line_text.strip():
            continue
        where = f"{path.name}:{line}"
        try:
            row = json.loads(line_text)
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
        if not all(isinstance(row[c], (str, int, float)) and not isinstance(row[c], bool) for c in ("path", "label")):
            problems.append(f"{where}: path and label must be text, got {row['path']!r} and {row['label']!r}")
            continue
        row = {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}
        row["_where"] = where
        rows.append(row)
    return rows


def media_files(roots: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every audio/video file (a suffix :func:`~seeingsounds.audio.io.load_audio` reads) under ``roots``,
    root by root in the order given, sorted within a root; hidden files and folders (macOS ``._clip.wav``)
    are skipped. Symlinked folders are followed (each real folder once; never a link back to a root or
    above it), and a broken symlink is listed, so the audio check names it instead of dropping it."""
    found: list[Path] = []
    problems = []
    seen: set[Path] = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            problems.append(f"the media folder {root} does not exist or is not a folder")
            continue
        below: list[Path] = []
        visited: set[str] = set()  # symlinked folders are followed, each real folder once (no cycles)
        above = {os.path.realpath(root), *map(str, Path(os.path.realpath(root)).parents)}
        for folder, dirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in visited or (folder != str(root) and real in above):  # a link to the root or above it
                dirs[:] = []
                continue
            visited.add(real)
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            below.extend(Path(folder) / f for f in files
                         if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_SUFFIXES)
        found.extend(p for p in sorted(below) if p not in seen)  # a root given twice, or inside another
        seen.update(below)
    if problems:
        raise DatasetError(problems, header="cannot build the manifest")
    return found


def _scan_folder(root: Path, problems: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        problems.append(f"{root}: no class folders (expected ROOT/<label>/<clip>.wav)")
    for folder in classes:
        files = media_files([folder])
        if not files:
            problems.append(f"class {folder.name!r}: folder {folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
        for p in files:  # relative to ``root``, as a manifest's rows are to its folder (joined once, in load_dataset)
            rel = str(p.relative_to(root))
            rows.append({"path": rel, "label": folder.name, "_where": shown(rel)})
    return rows


def _audio_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as audio (the reason :func:`~seeingsounds.audio.io.load_audio` would give), or None."""
    try:
        audio_info(path)
    except AudioLoadError as exc:
        return exc.reason
    return None


def row_path(base: Path, text: str) -> Path:
    """The file a manifest row's ``path`` names: ``~`` expanded, relative to ``base`` (the manifest's
    folder). A name missing as typed is looked up in the other Unicode form (a manifest written in NFC
    for clips a Mac stored decomposed, NFD, or back), so it is found the way a file manager shows it."""
    path = Path(text).expanduser()
    return Path(found_spelling(str(path if path.is_absolute() else base / path)))


def assign_splits(labels: Sequence[str], *, seed: int, val_fraction: float) -> list[str]:
    """Seeded stratified train/val split: per class ``round(n * val_fraction)`` val clips, but at
    least one train clip. Each class is shuffled with its own seed, so adding a class does not
    change the others' split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"the split seed must be an integer >= 0, got {seed!r}")
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
    for name, value in (("data", data), ("captions", captions)):
        if isinstance(value, (str, os.PathLike)) and not os.fspath(value).strip():  # Path("") is the working directory
            raise DatasetError([f"the {name} path is empty; name a manifest or class folder" if name == "data"
                                else "the captions path is empty; name a captions file (JSON or YAML)"])
    data = Path(data).expanduser()
    problems: list[str] = []
    if data.is_dir():
        rows = _scan_folder(data, problems)
        base = data
    elif data.is_file():
        if data.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DatasetError([f"{data}: a manifest must be .csv or .jsonl (or pass a class-per-folder directory)"],
                               header="cannot read the dataset")
        rows = read_manifest(data, problems)
        base = data.parent
    else:
        raise DatasetError([f"{data} does not exist"], header="cannot read the dataset")

    captions_path: Path | None = None
    if isinstance(captions, Mapping):
        caps = {canonical_label(str(k)): [v] if isinstance(v, str) else [str(c) for c in v] for k, v in captions.items()}
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
            problems.append(f"{where}: empty label for {shown(raw_path)}")
            continue
        bad = [why for why in (text_problem(raw_path, "path"), text_problem(label, "label")) if why]
        if bad:
            problems.extend(f"{where}: {why}" for why in bad)
            continue
        label = canonical_label(label)  # as the captions file's labels are: one spelling of each class
        path = row_path(base, raw_path)
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
        by_case = {lb.casefold(): lb for lb in caps}
        named = [repr(lb) + (f" (the captions have {by_case[lb.casefold()]!r}: labels are case-sensitive)"
                             if lb.casefold() in by_case else "") for lb in without]
        problems.append(f"{len(without)} label(s) have no caption in "
                        f"{captions_path or 'the captions'}: {', '.join(named)}")
    if has_split:
        train_labels = {label for _, label, split, _ in clips_rows if split == "train"}
        for lb in labels_all:
            if lb not in train_labels and any(label == lb and s == "val" for _, label, s, _ in clips_rows):
                problems.append(f"class {lb!r} has no train clip (only val/test): add one or drop the class")
    if not rows and not problems:
        problems.append(f"{data}: the dataset is empty")
    elif clips_rows and not used and not problems:
        problems.append("every clip is in the test split: training needs train (and val) clips")

    if problems and data.is_dir():
        manifests = sorted((p.stem != "manifest", p.name) for p in data.iterdir()
                           if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file())
        manifests = [name for _, name in manifests]
        if manifests:  # read as a class-per-folder tree, its sub-folders as classes; the user meant the manifest
            problems.append(f"{data} was read as class folders, but it holds the manifest {manifests[0]}: "
                            f"pass --data {data / manifests[0]} to read it")
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
    return {canonical_label(str(r.get("label") or "")) for r in rows if canonical_label(str(r.get("label") or ""))}


def _path_text(path: Path, base: Path) -> str:
    """``path`` as a manifest row writes it: relative to ``base`` (the manifest's folder) when below it
    (compared without resolving links, so a symlinked tree stays relative), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return str(path)


def write_manifest(path: str | os.PathLike[str],
                   clips: Iterable[Clip | tuple[str | os.PathLike[str], str] | tuple[str | os.PathLike[str], str, str]]) -> Path:
    """Write a CSV (``path,label[,split]``) or JSONL manifest (by ``path``'s suffix), atomically; paths are
    relative to the manifest's folder when they lie below it, absolute otherwise (what
    :func:`load_dataset` and the protocols read back). A row that cannot be written as UTF-8 text or
    read back as one row (:func:`text_problem`) is a :class:`DatasetError` listing them all; nothing
    is written then."""
    path = Path(path)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ConfigError(f"the manifest {path} must end in .csv or .jsonl")
    items = [c if isinstance(c, Clip) else Clip(Path(c[0]), c[1], c[2] if len(c) > 2 else "") for c in clips]
    problems = [f"{shown(c.path)}: {why}" for c in items
                for why in (text_problem(str(c.path), "path"), text_problem(c.label, "label")) if why]
    if problems:
        raise DatasetError(problems, header=f"cannot write the manifest {path}")
    with_split = any(c.split for c in items)
    rows = [[_path_text(c.path, path.parent), c.label] + ([c.split] if with_split else []) for c in items]
    if path.suffix.lower() == ".jsonl":
        columns = ["path", "label", "split"][: 3 if with_split else 2]
        text = "".join(json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "label", "split"] if with_split else ["path", "label"])
        writer.writerows(rows)
        text = buffer.getvalue()
    return atomic_write_text(path, text)


#: the file that marks a generated dataset folder complete, holding the parameters it was made with
DATASET_STAMP = "dataset.json"


def reusable_dataset(root: Path, params: Mapping[str, Any]) -> tuple[Path, Path] | None:
    """``(manifest.csv, captions.json)`` of a dataset ``root`` already made with ``params`` and still whole
    (every listed clip present), else ``None``, with the stamp removed so an interrupted rewrite is never
    taken as complete. Writers call :func:`stamp_dataset` last."""
    stamp, manifest, captions = root / DATASET_STAMP, root / "manifest.csv", root / "captions.json"
    if stamp.is_file() and manifest.is_file() and captions.is_file():
        try:
            same = json.loads(stamp.read_text(encoding="utf-8")) == json.loads(json.dumps(params))
        except ValueError:
            same = False
        problems: list[str] = []
        rows = read_manifest(manifest, problems) if same else []
        if same and not problems and all((root / str(r["path"])).is_file() for r in rows):
            return manifest, captions
    stamp.unlink(missing_ok=True)
    return None


def stamp_dataset(root: Path, params: Mapping[str, Any]) -> None:
    """Mark ``root`` as a complete dataset made with ``params`` (see :func:`reusable_dataset`)."""
    atomic_write_text(root / DATASET_STAMP, json.dumps(params, indent=1) + "\n")
