"""Manifests from the datasets as they ship: official annotation files or class folders -> ``path,label[,split]``.

One builder per dataset of the paper's protocols; each finds the media files however a mirror named them,
writes a manifest that ``train`` (:func:`~seeingsounds.data.manifest.load_dataset`) and ``evaluate
--protocol`` (:meth:`~seeingsounds.data.protocols.Protocol.load`) read as is, and returns a
:class:`BuildReport` (matched / missing / unmatched counts with examples). Labels are the protocols' own
class names (:func:`~seeingsounds.data.protocols.normalise_label` matches them), so captions and protocol
checks line up.

=============  ==============================================  =================================================
builder        annotations                                     media files found (anywhere under ``media``)
=============  ==============================================  =================================================
vggsound       ``vggsound.csv``: ``ytid,start_seconds,label,   ``{ytid}_{start:06d}``, ``{ytid}_{start}``,
               split`` (no header)                             ``{ytid}_{start:06d}_{end:06d}``, ``{ytid}`` (when
                                                               the id is annotated once) in any audio/video format
vegas          class folders (``Baby_cry/...``, ``dog/...``)   a path component naming a VEGAS class
esc50          ``meta/esc50.csv``: ``filename,fold,target,     ``{filename}`` with any audio suffix
               category,esc10,src_file,take``
ravdess        the file name: ``03-01-05-01-02-01-12.wav``     audio-only (03) and audio-video (01) files; the
               (3rd field = emotion 01..08)                    video-only ones (02) have no sound and are counted
landscape      class folders (one or more roots)               ``ROOT/<class>/.../<clip>``
=============  ==============================================  =================================================

Several files for one clip (a video and its extracted audio): the extracted audio is listed (wav, then flac,
then other audio, then video). One file is one clip, however it is reached (a symlink, a folder given twice):
annotated again with the same label it is written once (``repeated``); annotated with two different labels
(or, with ``official_split``, two splits) it is ambiguous and left out, listed under ``conflict`` in the
report. Annotation and class files are UTF-8 (a byte-order mark is fine) or UTF-16 with a byte-order mark;
every problem in them (encoding, malformed rows, non-finite or fractional start times, a label holding a
line break or NUL) and every file or folder name a manifest cannot hold (not UTF-8) is listed at once in one
:class:`~seeingsounds.errors.DatasetError`, and nothing is written. No split column is written unless asked (``official_split=True`` for
VGGSound): the protocols and the trainer then apply their own seeded splits. Paths are written relative to the
manifest's folder when the media lie below it, absolute otherwise.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seeingsounds.audio.io import CONTAINER_SUFFIXES, audio_info
from seeingsounds.data.manifest import SPLITS, Clip, csv_records, media_files, shown, text_problem, write_manifest
from seeingsounds.data.protocols import get_protocol, normalise_label
from seeingsounds.errors import AudioLoadError, ConfigError, DatasetError
from seeingsounds.paths import check_output_file
from seeingsounds.textfiles import read_data_text

DATASETS = ("vggsound", "vegas", "esc50", "ravdess", "landscape")
#: examples listed per category in a report
EXAMPLES = 5
#: VGGSound clips are 10 s long: some mirrors name them {ytid}_{start}_{end}
VGGSOUND_CLIP_SECONDS = 10
#: RAVDESS modality codes (1st field): 01 audio-video, 02 video only (no sound), 03 audio only
RAVDESS_MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
#: RAVDESS vocal channel codes (2nd field)
RAVDESS_CHANNELS = {"01": "speech", "02": "song"}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
#: folder names mirrors give VEGAS classes (normalised) -> the protocol's class name
VEGAS_ALIASES = {"baby": "baby crying", "baby cry": "baby crying", "babycry": "baby crying",
                 "rail": "rail transport", "railtransport": "rail transport",
                 "water": "water flowing", "waterflowing": "water flowing", "drums": "drum",
                 "dogs": "dog", "printers": "printer", "helicopters": "helicopter", "snore": "snoring"}
#: which file to list when a clip exists in several formats (lower first)
_FORMAT_RANK = {".wav": 0, ".flac": 1}


#: what an unmatched file lacks, by where the labels come from
_UNMATCHED = {"annotations": "that no annotation names", "folders": "outside any class folder",
              "file names": "whose names are not the dataset's naming"}


@dataclass
class BuildReport:
    """What a builder found: counts, examples of each kind of mismatch, and per-class clip counts."""

    dataset: str
    manifest: Path
    annotated: int = 0  # entries in the annotations (clips named by the annotation file or the file names)
    matched: int = 0  # rows written
    missing: list[str] = field(default_factory=list)  # annotated clips with no file
    unmatched: list[Path] = field(default_factory=list)  # media files no annotation names
    excluded: int = 0  # annotated clips outside the chosen classes
    duplicates: list[Path] = field(default_factory=list)  # other formats of a listed clip
    conflicting: list[str] = field(default_factory=list)  # clips annotated with different labels (left out)
    repeated: int = 0  # further annotations of a listed clip with its label (one row written)
    unreadable: list[str] = field(default_factory=list)  # files refused by the audio check (path: reason)
    skipped: dict[str, int] = field(default_factory=dict)  # other reasons a file was left out -> count
    per_class: dict[str, int] = field(default_factory=dict)
    empty_classes: list[str] = field(default_factory=list)  # chosen classes with no clip
    labels_from: str = "annotations"  # where the labels come from: "annotations", "folders" or "file names"

    def summary(self, examples: int = EXAMPLES) -> str:
        """The report as text: one line per count, then up to ``examples`` examples of each."""
        lines = [f"{self.dataset}: {self.matched} clip(s) in {len(self.per_class)} class(es) -> {self.manifest}",
                 f"  matched   {self.matched} of {self.annotated} annotated clip(s)"
                 if self.labels_from == "annotations" else
                 f"  matched   {self.matched} of {self.annotated} clip(s) labelled by their {self.labels_from}",
                 f"  missing   {len(self.missing)} annotated clip(s) with no media file",
                 f"  unmatched {len(self.unmatched)} media file(s) " + _UNMATCHED[self.labels_from]]
        if self.labels_from != "annotations":
            del lines[2]  # nothing is annotated without a file
        if self.excluded:
            lines.append(f"  excluded  {self.excluded} annotated clip(s) outside the chosen classes")
        if self.duplicates:
            lines.append(f"  duplicate {len(self.duplicates)} other-format file(s) of listed clips (not listed)")
        if self.repeated:
            lines.append(f"  repeated  {self.repeated} further annotation(s) of listed clips with the same label "
                         "(one row each)")
        if self.conflicting:
            lines.append(f"  conflict  {len(self.conflicting)} clip(s) annotated with different labels (left out)")
        if self.unreadable:
            lines.append(f"  unreadable {len(self.unreadable)} file(s) refused by the audio check (not listed)")
        for why, n in sorted(self.skipped.items()):
            lines.append(f"  skipped   {n} file(s): {why}")
        for title, items in (("missing", self.missing), ("unmatched", self.unmatched),
                             ("unreadable", self.unreadable), ("conflict", self.conflicting)):
            if items:
                more = f" (and {len(items) - examples} more)" if len(items) > examples else ""
                lines.append(f"  e.g. {title}{more}: " + "; ".join(shown(x) for x in items[:examples]))
        if self.empty_classes:
            lines.append(f"  warning: {len(self.empty_classes)} class(es) have no clip: {', '.join(self.empty_classes)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {"dataset": self.dataset, "manifest": str(self.manifest), "annotated": self.annotated,
                "matched": self.matched, "missing": len(self.missing), "unmatched": len(self.unmatched),
                "excluded": self.excluded, "duplicates": len(self.duplicates), "unreadable": len(self.unreadable),
                "conflicting": len(self.conflicting), "repeated": self.repeated,
                "skipped": dict(self.skipped), "per_class": dict(self.per_class),
                "empty_classes": list(self.empty_classes)}


# ---- shared helpers -------------------------------------------------------------------------
def _protocol_classes(name: str) -> tuple[str, ...]:
    classes = get_protocol(name).classes
    assert classes is not None, name
    return classes


def _format_rank(path: Path) -> tuple[int, str]:
    suffix = path.suffix.lower()
    rank = _FORMAT_RANK.get(suffix, 3 if suffix in CONTAINER_SUFFIXES else 2)
    return rank, str(path)


def _best(paths: Sequence[Path]) -> tuple[Path, list[Path]]:
    """The file to list among formats of one clip, and the others."""
    ordered = sorted(paths, key=_format_rank)
    return ordered[0], ordered[1:]


def _by_stem(files: Iterable[Path]) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = defaultdict(list)
    for p in files:
        index[p.stem].append(p)
    return index


def resolve_classes(classes: str | os.PathLike[str] | Sequence[str] | None) -> list[str] | None:
    """A class subset: a protocol name (``vggsound50``), a text file with one class per line, or names."""
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        path = Path(classes).expanduser()
        if path.is_file():
            problems: list[str] = []
            text = read_data_text(path, problems)
            names = [line.strip() for line in (text or "").replace("\r\n", "\n").split("\n")]
            names = [n for n in names if n and not n.startswith("#")]
            problems += [f"{path.name}: {why}" for why in map(lambda n: text_problem(n, "label"), names) if why]
            if problems:
                raise DatasetError(problems, header=f"cannot read the classes file {path}")
            if not names:
                raise ConfigError(f"the classes file {path} lists no class")
            return names
        protocol = get_protocol(str(classes))  # ConfigError naming the protocols when unknown
        if protocol.classes is None:
            raise ConfigError(f"protocol {protocol.name!r} takes its classes from the manifest: pass a file of "
                              "class names to --classes instead")
        return list(protocol.classes)
    return [str(c) for c in classes]


def _check_output(output: Path, inputs: Sequence[Path | None]) -> None:
    """Before any scan: never overwrite an input (the annotations) or a file that is not a manifest, and
    check the folder can be written."""
    check_output_file(output, inputs=inputs, what="manifest (-o)")
    if output.suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError(f"the output {output} must end in .csv or .jsonl (the manifest formats train reads)")
    if output.is_file() and output.stat().st_size:
        with open(output, encoding="utf-8-sig", errors="replace") as f:
            head = f.readline().strip()
        if not (head.startswith("path,label") or head.startswith('{"path"')):
            raise ConfigError(f"the output {output} exists and is not a manifest (its first line is {head[:60]!r}): "
                              "choose another output file")


def _one_row_per_clip(entries: list[Clip], report: BuildReport) -> list[Clip]:
    """One entry per file (the same real file, also through a symlink or a repeated root, is one clip):
    repeats with the same label (and split) are written once and counted; a clip annotated with
    different labels (or splits) is left out and listed in ``report.conflicting`` (the rule in the
    module docstring)."""
    by_file: dict[str, list[Clip]] = defaultdict(list)
    for e in entries:
        by_file[os.path.realpath(e.path)].append(e)
    kept = []
    for group in by_file.values():
        labels = sorted({(e.label, e.split) for e in group})
        if len(labels) > 1:
            names = ", ".join(f"{label} ({split})" if split else label for label, split in labels)
            report.conflicting.append(f"{shown(group[0].path)}: {names}")
            continue
        kept.append(group[0])
        report.repeated += len(group) - 1
    return kept


def _finish(report: BuildReport, entries: list[Clip], classes: Sequence[str] | None, output: Path,
            check_audio: bool) -> BuildReport:
    problems = [f"{shown(e.path)}: {why}" for e in entries
                for why in (text_problem(str(e.path), "path"), text_problem(e.label, "label")) if why]
    if problems:  # names a manifest cannot hold, all listed before any file is opened
        raise DatasetError(problems, header=f"cannot write these {report.dataset} clips to {output}: nothing written")
    entries = _one_row_per_clip(entries, report)
    if check_audio:
        kept = []
        for e in entries:
            try:
                audio_info(e.path)
            except AudioLoadError as exc:
                report.unreadable.append(f"{e.path}: {exc.reason}")
                continue
            kept.append(e)
        entries = kept
    entries = sorted(entries, key=lambda e: (e.label, str(e.path)))
    counts = Counter(e.label for e in entries)
    report.per_class = dict(sorted(counts.items()))
    report.matched = len(entries)
    if classes is not None:
        report.empty_classes = [c for c in classes if counts[c] == 0]
    if not entries:
        raise DatasetError([report.summary()], header=f"no {report.dataset} clip was found: nothing written")
    write_manifest(output, entries)
    return report


class _Labels:
    """Canonical class names, matched by :func:`normalise_label` (plus aliases); ``None`` classes: any label."""

    def __init__(self, classes: Sequence[str] | None, aliases: dict[str, str] | None = None):
        self.classes = list(classes) if classes is not None else None
        self.known = {normalise_label(c): c for c in classes or ()}
        self.aliases = {normalise_label(k): v for k, v in (aliases or {}).items()}

    def match(self, label: str) -> str | None:
        key = normalise_label(label)
        if self.classes is None:
            return label.strip()
        if key in self.known:
            return self.known[key]
        alias = self.aliases.get(key) or self.aliases.get(key.replace(" ", ""))
        return self.known.get(normalise_label(alias)) if alias else None


# ---- VGGSound -------------------------------------------------------------------------------
def _vggsound_rows(annotations: Path) -> tuple[list[tuple[str, int, str, str]], list[str]]:
    problems: list[str] = []
    text = read_data_text(annotations, problems)
    if text is None:
        return [], problems
    rows = []
    for line, fields in csv_records(annotations, text, problems):
        where = f"{annotations.name}:{line}"
        if not fields or not "".join(fields).strip():
            continue
        if line == 1 and [x.strip().lower() for x in fields[:2]] in (["ytid", "start_seconds"], ["youtube_id", "start_seconds"],
                                                                 ["# ytid", "start_seconds"]):
            continue  # a header some copies add
        if len(fields) < 3:
            problems.append(f"{where}: expected ytid,start_seconds,label,split, got {fields}")
            continue
        ytid, start_text, label = fields[0].strip(), fields[1].strip(), fields[2].strip()
        bad = [f"{where}: {why}" for why in (text_problem(ytid, "ytid"), text_problem(label, "label")) if why]
        bad += [f"{where}: empty {name}" for name, value in (("ytid", ytid), ("label", label)) if not value]
        if bad:
            problems.extend(bad)
            continue
        try:
            start = float(start_text)
        except ValueError:
            problems.append(f"{where}: start_seconds {start_text!r} is not a number")
            continue
        if not math.isfinite(start) or start != int(start) or start < 0:
            problems.append(f"{where}: start_seconds {start_text!r} is not a whole number of seconds")
            continue
        split = fields[3].strip().lower() if len(fields) > 3 else ""
        rows.append((ytid, int(start), label, split))
    return rows, problems


def build_vggsound(annotations: str | os.PathLike[str], media: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                   output: str | os.PathLike[str], *, classes: str | os.PathLike[str] | Sequence[str] | None = None,
                   official_split: bool = False, check_audio: bool = False) -> BuildReport:
    """Manifest of the VGGSound clips of ``annotations`` (the official ``vggsound.csv``) found under ``media``.

    Args:
        classes: keep only these classes (a protocol name such as ``vggsound50``, a file, or names); labels
            are written as the protocol's class names.
        official_split: write the annotation's ``train``/``test`` as the split column (by default no split
            column: the protocol's seeded 90/10 split and the trainer's val split apply).
        check_audio: open every listed file (:func:`~seeingsounds.audio.io.audio_info`) and leave out those
            that cannot be read (listed in the report).
    """
    annotations, output = Path(annotations).expanduser(), Path(output).expanduser()
    roots = [media] if isinstance(media, (str, os.PathLike)) else list(media)
    if not annotations.is_file():
        raise DatasetError([f"the annotations file {annotations} does not exist or is not a file "
                            "(the official vggsound.csv)"],
                           header="cannot build the manifest")
    _check_output(output, [annotations])
    subset = resolve_classes(classes)
    labels = _Labels(subset)
    rows, problems = _vggsound_rows(annotations)
    if problems:
        raise DatasetError(problems, header=f"cannot use the annotations file {annotations}")
    files = media_files(roots)
    index = _by_stem(files)
    times_annotated = Counter(ytid for ytid, _, _, _ in rows)
    report = BuildReport("vggsound", output, annotated=len(rows))
    used: set[Path] = set()
    entries: list[Clip] = []
    for ytid, start, label, split in rows:
        end = start + VGGSOUND_CLIP_SECONDS
        stems = [f"{ytid}_{start:06d}", f"{ytid}_{start}", f"{ytid}_{start:06d}_{end:06d}", f"{ytid}_{start}_{end}"]
        if times_annotated[ytid] == 1:
            stems.append(ytid)
        candidates = [p for s in dict.fromkeys(stems) for p in index.get(s, ())]
        used.update(candidates)
        canonical = labels.match(label)
        if canonical is None:
            report.excluded += 1
            continue
        if not candidates:
            report.missing.append(f"{ytid} at {start} s ({label})")
            continue
        best, others = _best(candidates)
        report.duplicates.extend(others)
        entries.append(Clip(best, canonical, split if official_split else ""))
    if official_split:
        bad = sorted({e.split for e in entries} - set(SPLITS))
        if bad:
            raise DatasetError([f"split value(s) {bad} in {annotations} are not {'/'.join(SPLITS)}"],
                               header="cannot use the official split")
    report.unmatched = [p for p in files if p not in used]
    return _finish(report, entries, subset, output, check_audio)


# ---- class folders (VEGAS, Landscape) -------------------------------------------------------
def _class_folder_entries(roots: Sequence[Path], files: Sequence[Path], classify: Callable[[tuple[str, ...]], str | None],
                          report: BuildReport) -> list[Clip]:
    """Entries of files whose folders name a class (``classify`` of the path's folder parts under its root);
    one entry per (class, file stem): other formats of the same clip are duplicates."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in files:
        root = next(r for r in roots if path.is_relative_to(r))
        label = classify(path.relative_to(root).parts[:-1])
        if label is None:
            report.unmatched.append(path)
            continue
        groups[(label, path.stem)].append(path)
    entries = []
    for (label, _), paths in sorted(groups.items()):
        best, others = _best(paths)
        report.duplicates.extend(others)
        entries.append(Clip(best, label))
    report.annotated = len(groups)
    return entries


def _roots(media: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    items = [media] if isinstance(media, (str, os.PathLike)) else list(media)
    return [Path(os.path.abspath(Path(m).expanduser())) for m in items]


def build_vegas(media: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                classes: str | os.PathLike[str] | Sequence[str] | None = None, check_audio: bool = False) -> BuildReport:
    """Manifest of the VEGAS clips under ``media``: the class is the nearest folder naming a VEGAS class
    (``Baby_cry``, ``baby_crying``, ``Rail_transport``, ``dog``, ...; other folders such as ``videos/`` or
    ``audio/`` are looked through). ``classes``: a subset (e.g. 5 names for ``vegas5``)."""
    roots, output = _roots(media), Path(output).expanduser()
    _check_output(output, [])
    subset = resolve_classes(classes)
    vegas = list(_protocol_classes("vegas"))
    labels = _Labels(vegas, VEGAS_ALIASES)
    chosen = _Labels(subset) if subset is not None else None
    if chosen is not None:
        wrong = [c for c in subset if labels.match(c) is None]
        if wrong:
            raise ConfigError(f"not VEGAS classes: {', '.join(wrong)}; the classes are {', '.join(vegas)}")
    report = BuildReport("vegas", output, labels_from="folders")

    def classify(parts: tuple[str, ...]) -> str | None:
        for part in reversed(parts):
            label = labels.match(part)
            if label is not None:
                return label
        return None

    entries = _class_folder_entries(roots, media_files(roots), classify, report)
    if chosen is not None:
        keep = {labels.match(c) for c in subset}
        report.excluded = sum(e.label not in keep for e in entries)
        entries = [e for e in entries if e.label in keep]
    return _finish(report, entries, [labels.match(c) for c in subset] if subset else vegas, output, check_audio)


def build_landscape(media: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                    classes: str | os.PathLike[str] | Sequence[str] | None = None,
                    check_audio: bool = False) -> BuildReport:
    """Manifest of ``ROOT/<class>/.../<clip>`` trees (Landscape, Into the Wild: pass both roots); classes of
    the same name (case, ``_`` and spaces ignored) in several roots are one class, named as first seen.
    Files directly in a root are unmatched."""
    roots, output = _roots(media), Path(output).expanduser()
    _check_output(output, [])
    subset = resolve_classes(classes)
    chosen = _Labels(subset) if subset is not None else None
    names: dict[str, str] = {}
    report = BuildReport("landscape", output, labels_from="folders")

    def classify(parts: tuple[str, ...]) -> str | None:
        if not parts:
            return None
        return names.setdefault(normalise_label(parts[0]), parts[0].strip())

    entries = _class_folder_entries(roots, media_files(roots), classify, report)
    if chosen is not None:
        kept = [Clip(e.path, chosen.match(e.label) or "", e.split) for e in entries]
        report.excluded = sum(not e.label for e in kept)
        entries = [e for e in kept if e.label]
    return _finish(report, entries, subset, output, check_audio)


# ---- ESC-50 ---------------------------------------------------------------------------------
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def build_esc50(media: str | os.PathLike[str], output: str | os.PathLike[str], *,
                annotations: str | os.PathLike[str] | None = None, esc10: bool = False,
                check_audio: bool = False) -> BuildReport:
    """Manifest of ESC-50 from ``meta/esc50.csv`` (default: ``media/meta/esc50.csv``); a clip is found by
    its file name's stem anywhere under ``media`` (``audio/1-100032-A-0.wav``, or re-encoded as .flac/.ogg).
    ``esc10``: only the ESC-10 subset (``esc10 == True``)."""
    roots, output = _roots(media), Path(output).expanduser()
    annotations = Path(annotations).expanduser() if annotations is not None else roots[0] / "meta" / "esc50.csv"
    if not annotations.is_file():
        raise DatasetError([f"the annotations file {annotations} does not exist (ESC-50's meta/esc50.csv): pass "
                            "--annotations or the ESC-50 folder as --media"], header="cannot build the manifest")
    _check_output(output, [annotations])
    labels = _Labels(_protocol_classes("esc50"))
    problems: list[str] = []
    rows = []
    text = read_data_text(annotations, problems)
    records = csv_records(annotations, text, problems) if text is not None else []
    columns = [c.strip() for c in records[0][1]] if records else []
    if text is not None and not {"filename", "category"} <= set(columns):
        problems.append(f"{annotations}: the header must have {','.join(ESC50_COLUMNS)} (got {columns})")
        records = []
    for line, fields in records[1:]:
        if not "".join(fields).strip():
            continue
        where = f"{annotations.name}:{line}"
        row = dict(zip(columns, (f.strip() for f in fields)))
        filename, category = row.get("filename", ""), row.get("category", "")
        bad = [f"{where}: {why}" for why in (text_problem(filename, "filename"),) if why]
        bad += [] if filename else [f"{where}: empty filename"]
        label = labels.match(category)
        if label is None:
            bad.append(f"{where}: category {category!r} is not an ESC-50 class")
        if bad:
            problems.extend(bad)
            continue
        rows.append((filename, label, row.get("esc10", "").lower() == "true"))
    if problems:
        raise DatasetError(problems, header=f"cannot use the annotations file {annotations}")
    files = media_files(roots)
    index = _by_stem(files)
    report = BuildReport("esc50", output, annotated=len(rows))
    used: set[Path] = set()
    entries = []
    for filename, label, in_esc10 in rows:
        candidates = index.get(Path(filename).stem, [])
        used.update(candidates)
        if esc10 and not in_esc10:
            report.excluded += 1
            continue
        if not candidates:
            report.missing.append(f"{filename} ({label})")
            continue
        best, others = _best(candidates)
        report.duplicates.extend(others)
        entries.append(Clip(best, label))
    report.unmatched = [p for p in files if p not in used]
    classes = sorted({label for _, label, in10 in rows if in10}) if esc10 else list(_protocol_classes("esc50"))
    return _finish(report, entries, classes, output, check_audio)


# ---- RAVDESS --------------------------------------------------------------------------------
def ravdess_fields(name: str) -> dict[str, str] | None:
    """The 7 fields of a RAVDESS file name (``03-01-05-01-02-01-12``), or None when it is not one."""
    m = _RAVDESS_NAME.match(Path(name).stem)
    if not m:
        return None
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, m.groups()))


def build_ravdess(media: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                  channel: str = "all", check_audio: bool = False) -> BuildReport:
    """Manifest of RAVDESS under ``media`` with the emotion of each file's name (3rd field: 01 neutral ..
    08 surprised, the ravdess protocol's classes). Audio-only (03) and audio-video (01) files are listed, the
    audio-only one when both exist; video-only (02) files have no sound and are skipped (counted).
    ``channel``: ``speech``, ``song`` or ``all``."""
    if channel not in ("speech", "song", "all"):
        raise ConfigError(f"channel must be speech, song or all, got {channel!r}")
    roots, output = _roots(media), Path(output).expanduser()
    _check_output(output, [])
    emotions = list(_protocol_classes("ravdess"))
    files = media_files(roots)
    report = BuildReport("ravdess", output, labels_from="file names")
    groups: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    skipped: Counter[str] = Counter()
    for path in files:
        fields_ = ravdess_fields(path.name)
        if fields_ is None or not 1 <= int(fields_["emotion"]) <= len(emotions) \
                or fields_["modality"] not in RAVDESS_MODALITIES or fields_["channel"] not in RAVDESS_CHANNELS:
            report.unmatched.append(path)
            continue
        if fields_["modality"] == "02":
            skipped["video-only (modality 02: no sound)"] += 1
            continue
        if channel != "all" and RAVDESS_CHANNELS[fields_["channel"]] != channel:
            report.excluded += 1
            continue
        recording = tuple(v for k, v in fields_.items() if k != "modality")
        groups[recording].append(path)
    entries = []
    for recording, paths in sorted(groups.items()):
        ordered = sorted(paths, key=lambda p: (ravdess_fields(p.name)["modality"] != "03", _format_rank(p)))
        report.duplicates.extend(ordered[1:])
        entries.append(Clip(ordered[0], emotions[int(recording[1]) - 1]))
    report.annotated = len(groups)
    report.skipped = dict(skipped)
    return _finish(report, entries, emotions, output, check_audio)


def build_manifest(dataset: str, **options: object) -> BuildReport:
    """Run the builder of ``dataset`` (one of :data:`DATASETS`) with its keyword options."""
    builders: dict[str, Callable[..., BuildReport]] = {
        "vggsound": build_vggsound, "vegas": build_vegas, "esc50": build_esc50,
        "ravdess": build_ravdess, "landscape": build_landscape,
    }
    if dataset not in builders:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return builders[dataset](**options)
