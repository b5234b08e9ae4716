"""Reading the text files users write by hand or export from a spreadsheet: manifests, annotation
files, captions files, labels files and training config files. One reader, so each accepts the same
encodings: UTF-8 (a byte-order mark is skipped) or UTF-16 with a byte-order mark; anything else is one
problem naming the file, the first bad byte's line and the fix. One JSON/YAML parser
(:func:`parse_json_or_yaml`), which keeps a key given twice visible instead of keeping the last."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import yaml


class Pairs(list):  # type: ignore[type-arg]
    """A parsed mapping as its ``(key, value)`` pairs in file order, so that a key given twice is seen."""


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps mappings as :class:`Pairs` instead of overwriting duplicate keys."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Pairs:
    loader.flatten_mapping(node)
    return Pairs((loader.construct_object(k, deep=deep), loader.construct_object(v, deep=deep)) for k, v in node.value)


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_json_or_yaml(text: str, fmt: str) -> tuple[Any, list[str]]:
    """Parse ``text`` as ``fmt`` (``"json"`` or ``"yaml"``); mappings come back as :class:`Pairs`.
    Returns ``(data, [])``, or ``(None, [the syntax problem])``."""
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=Pairs), []
        except json.JSONDecodeError as exc:
            return None, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    try:
        return yaml.load(text, Loader=_StrictYamlLoader), []  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        return None, [f"not valid YAML: {exc}".replace("\n", " ")]

from seeingsounds.errors import DatasetError


def read_data_text(path: Path, problems: list[str]) -> str | None:
    """The text of ``path``: UTF-8 (a byte-order mark is skipped) or UTF-16 with a byte-order mark.
    Otherwise None, with one problem naming the file, the encoding issue and the fix."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
        return None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # spreadsheets' "Unicode text"
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: broken UTF-16 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
            return None
    head = raw[:4096]
    if head.count(0) * 4 >= len(head) > 0:
        problems.append(f"{path}: not a text file (binary data, or UTF-16 without a byte-order mark); "
                        "save it as UTF-8 text")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problems.append(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}: {exc.reason}; "
                        "Latin-1 or Windows-1252?); save the file as UTF-8")
        return None


def read_text_file(path: Path, what: str) -> str:
    """The text of the hand-written file ``path``, read as :func:`read_data_text` reads it; a missing file
    or one in another encoding is a :class:`DatasetError` headed ``<what> <path> has problems``."""
    header = f"{what} {path} has problems"
    if not path.exists():
        raise DatasetError([f"{path} does not exist: check the path"], header=header)
    problems: list[str] = []
    text = read_data_text(path, problems)
    if text is None:
        raise DatasetError(problems, header=header)
    return text
