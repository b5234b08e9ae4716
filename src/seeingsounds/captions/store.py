"""Class-captions file: label -> one caption or a list of captions (the paper's class-level t_y).

The file is JSON (``.json``) or YAML (``.yaml``/``.yml``)::

    {"dog barking": "a dog barking in a backyard",
     "rail transport": ["a train passing by", "a freight train on the tracks"]}

Labels and captions are normalised on load: surrounding whitespace is removed and runs of
whitespace (newlines included) become one space; labels are also put in Unicode NFC form
(:func:`canonical_label`, as manifests' labels are, so "café" typed on a Mac matches "café" typed
elsewhere). Labels stay case-sensitive. The file is UTF-8 (a byte-order mark is fine) or UTF-16 with
a byte-order mark (:mod:`seeingsounds.textfiles`). Every problem in
the file is reported at once in one :class:`~seeingsounds.errors.DatasetError`.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from seeingsounds.errors import DatasetError
from seeingsounds.paths import atomic_write_text
from seeingsounds.textfiles import parse_json_or_yaml, read_text_file

__all__ = ["load_captions", "save_captions", "missing_labels", "normalise_text", "canonical_label",
           "atomic_write_text"]

_JSON = (".json",)
_YAML = (".yaml", ".yml")


def normalise_text(text: str) -> str:
    """Strip ``text`` and collapse every run of whitespace into one space."""
    return " ".join(text.split())


def canonical_label(label: str) -> str:
    """A class label as every file of a dataset must spell it to match: :func:`normalise_text` in
    Unicode NFC form (a byte-order mark a Windows editor left at its start removed), so labels from a
    manifest, a class folder's name (NFD on macOS), a labels file and a captions file agree."""
    return unicodedata.normalize("NFC", normalise_text(label.replace("\ufeff", "")))


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _JSON:
        return "json"
    if suffix in _YAML:
        return "yaml"
    raise DatasetError(
        [f"unknown file type {path.suffix or '(no suffix)'!r}: name the file *.json, *.yaml or *.yml"],
        header=f"cannot use captions file {path}",
    )


def _is_pairs(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(p, tuple) and len(p) == 2 for p in data)


def _is_caption_set(data: Any) -> bool:
    """Whether parsed ``data`` is a run's ``captions.json`` (:class:`~seeingsounds.captions.caption_set.CaptionSet`):
    ``{"captions": [{"text", "kind", "labels", ...}, ...]}``."""
    if not (_is_pairs(data) and len(data) == 1 and data[0][0] == "captions" and isinstance(data[0][1], list)):
        return False
    entries = data[0][1]
    return bool(entries) and all(_is_pairs(e) and {"text", "kind", "labels"} <= {k for k, _ in e} for e in entries)


def _validate(pairs: Iterable[tuple[Any, Any]]) -> tuple[dict[str, list[str]], list[str]]:
    """Check every (label, value) pair; return the normalised mapping and all problems found."""
    out: dict[str, list[str]] = {}
    problems: list[str] = []
    raw_of: dict[str, Any] = {}
    for label, value in pairs:
        if not isinstance(label, str):
            problems.append(f"label {label!r} is a {type(label).__name__}, not a string: quote it")
            continue
        key = canonical_label(label)
        if not key:
            problems.append(f"label {label!r} is empty: give every class a name")
            continue
        if key in raw_of:
            first = raw_of[key]
            same = ("appears twice" if first == label else
                    f"duplicates label {first!r} after normalising whitespace and Unicode form")
            problems.append(f"label {label!r} {same}: keep one entry per class")
            continue
        raw_of[key] = label
        values = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value
        if value and _is_pairs(value):
            problems.append(f"label {key!r}: caption is a mapping; give a caption string or a list of strings")
            out[key] = []
            continue
        if not isinstance(values, list):
            kind = "nothing" if value is None else f"a {type(value).__name__}"
            problems.append(f"label {key!r}: caption is {kind}; give a caption string or a list of strings")
            out[key] = []
            continue
        if not values:
            problems.append(f"label {key!r}: the caption list is empty; give at least one caption")
            out[key] = []
            continue
        captions: list[str] = []
        for i, caption in enumerate(values):
            # a single caption: say it is the caption, not the label, that is at fault
            where = f"label {key!r} caption {i + 1}" if not isinstance(value, str) else f"the caption of label {key!r}"
            if not isinstance(caption, str):
                kind = "nothing" if caption is None else f"a {type(caption).__name__}"
                problems.append(f"{where} is {kind}, not a string")
                continue
            text = normalise_text(caption)
            if not text:
                problems.append(f"{where} is empty: write a short description of the class")
                continue
            if text in captions:
                problems.append(f"{where} repeats caption {text!r}: remove the copy")
                continue
            captions.append(text)
        out[key] = captions
    return out, problems


def load_captions(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a captions file; every label maps to a non-empty list of captions.

    Raises :class:`DatasetError` listing every problem: missing/unreadable file, bad syntax, not a
    mapping, non-string or empty labels, labels duplicated (also after whitespace normalisation),
    captions that are empty, not strings, repeated, or empty caption lists.
    """
    path = Path(path)
    header = f"captions file {path} has problems"
    fmt = _format(path)
    text = read_text_file(path, "captions file")
    data, problems = parse_json_or_yaml(text, fmt)
    if problems:
        raise DatasetError(problems, header=header)
    if _is_caption_set(data):
        raise DatasetError([f"{path} is a training run's caption set (written by `seeingsounds train`), not a class "
                            "captions file: pass the captions file the run was trained with (its config.json names "
                            "it under data.captions)"], header=header)
    if not _is_pairs(data):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise DatasetError(
            [f"the file is {kind}, not a mapping of label -> caption (or list of captions)"], header=header
        )
    captions, problems = _validate(data)
    if not captions and not problems:
        problems.append("the file has no labels: add one entry per class")
    if problems:
        raise DatasetError(problems, header=header)
    return captions


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels of a labels file: one per line, as :func:`canonical_label` spells them (a byte-order mark,
    doubled spaces, NFD), blank and ``#`` lines skipped; a repeated label or no label is a
    :class:`DatasetError`."""
    path = Path(path)
    text = read_text_file(path, "labels file")
    labels: dict[str, int] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        label = canonical_label(line)
        if not label or label.startswith("#"):
            continue
        if label in labels:
            problems.append(f"line {number}: label {label!r} already on line {labels[label]}")
            continue
        labels[label] = number
    if not labels and not problems:
        problems.append("no labels: write one class label per line")
    if problems:
        raise DatasetError(problems, header=f"labels file {path} has problems")
    return list(labels)


def save_captions(path: str | os.PathLike[str], mapping: Mapping[str, str | list[str]]) -> Path:
    """Validate ``mapping`` like :func:`load_captions` and write it atomically (JSON or YAML by suffix).

    A class with exactly one caption is written as a plain string, more as a list.
    """
    path = Path(path)
    fmt = _format(path)
    if not isinstance(mapping, Mapping):
        raise DatasetError(
            [f"got a {type(mapping).__name__}, not a mapping of label -> caption"],
            header=f"cannot save captions to {path}",
        )
    captions, problems = _validate(mapping.items())
    if not captions and not problems:
        problems.append("no labels to save")
    if problems:
        raise DatasetError(problems, header=f"cannot save captions to {path}")
    data = {label: caps[0] if len(caps) == 1 else caps for label, caps in captions.items()}
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
    return atomic_write_text(path, text)


def missing_labels(captions: Mapping[str, object], labels: Iterable[str]) -> list[str]:
    """Labels (sorted, unique, :func:`canonical_label`) that have no entry in ``captions``."""
    have = {canonical_label(k) for k in captions}
    return sorted({canonical_label(label) for label in labels} - have)
