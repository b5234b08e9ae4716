"""Evaluation reports: JSON (everything), Markdown (the paper's table layout), per-class image grids."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from seeingsounds.imaging import contact_sheet, save_png
from seeingsounds.paths import atomic_write_text, slug

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
GRIDS_DIR = "grids"
#: column order of the Markdown table (the paper's metrics first)
METRIC_ORDER = ("AIC", "R@1", "R@5", "R@10", "AIS", "caption_top1", "caption_top5", "caption_mean_cosine")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: null means "not measured"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def write_json(report: Mapping[str, Any], out: Path) -> Path:
    return atomic_write_text(Path(out) / REPORT_JSON, json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(report: Mapping[str, Any]) -> str:
    """The paper's layout: one row per model, one column per metric, the paper's row first."""
    metrics: Mapping[str, Any] = report.get("metrics", {})
    reference: Mapping[str, Any] = report.get("reference", {})
    columns = [m for m in METRIC_ORDER if m in metrics or m in reference]
    columns += [m for m in metrics if m not in columns and not isinstance(metrics[m], Mapping)]
    protocol = report.get("protocol", {}).get("name", "?")
    lines = [f"# SeeingSounds evaluation — {protocol}", ""]
    lines += [f"| model | {' | '.join(columns)} |", "|---|" + "---|" * len(columns)]
    if reference:
        lines.append("| SeeingSounds (paper, FLUX.1-dev) | " + " | ".join(_fmt(reference.get(c)) for c in columns) + " |")
    lines.append(f"| this run (`{report.get('checkpoint', '?')}`) | " + " | ".join(_fmt(metrics.get(c)) for c in columns) + " |")
    lines.append("")
    counts = report.get("counts", {})
    judges = report.get("judges", {})
    lines += [
        "All scores in percent (higher is better); mean cosines in [-1, 1]. – : not reported / not measured.",
        "",
        f"- clips: {counts.get('clips', '?')}, images: {counts.get('images', '?')} "
        f"(generated now: {counts.get('generated', 0)}, reused: {counts.get('reused', 0)}), seeds: {report.get('seeds')}",
    ]
    if "R@5" in metrics or "R@1" in metrics:
        lines.append(f"- R@k gallery: {report.get('gallery')}")
    for kind, desc in judges.items():
        lines.append(f"- judge {kind}: `{desc.get('model_id')}`" + (f" ({desc['model']})" if "model" in desc else "")
                     + (f" at {desc['sample_rate']} Hz" if "sample_rate" in desc else ""))
    for note in report.get("notes", []):
        lines.append(f"- note: {note}")
    per_class = report.get("per_class", {})
    if per_class:
        keys = sorted({k for v in per_class.values() for k in v})
        lines += ["", "## Per class", "", f"| class | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
        for name, values in per_class.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(values.get(k)) for k in keys) + " |")
    grids = report.get("grids", [])
    if grids:
        lines += ["", "## Image grids (rows: clips, columns: seeds)", ""]
        lines += [f"- [{Path(g).stem}]({g})" for g in grids]
    return "\n".join(lines) + "\n"


def write_markdown(report: Mapping[str, Any], out: Path) -> Path:
    return atomic_write_text(Path(out) / REPORT_MD, markdown(report))


def class_file_name(label: str, *, hashed: bool = False) -> str:
    """A class's file-name stem (its images' folder, its grid): :func:`~seeingsounds.paths.slug` of the
    label, with a short hash of the label when the slug drops more than case and separators (``狗`` and
    ``猫`` would both be ``class``, ``café`` ``caf``) or when ``hashed`` (two labels with one slug), so
    distinct classes keep distinct files."""
    name = slug(label, empty="class")
    if not hashed and re.fullmatch(r"[A-Za-z0-9 _-]+", label) and name != "class":
        return name
    return f"{name}-{hashlib.sha1(label.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def write_grids(images_by_class: Mapping[str, Sequence[Sequence[Path]]], out: Path, *,
                max_clips: int = 8) -> list[str]:
    """One grid per class: a row per clip (first ``max_clips``), a column per seed. Returns relative paths."""
    written: list[str] = []
    for name, clips in images_by_class.items():
        clips = [list(c) for c in clips[:max_clips] if c]
        if not clips:
            continue
        columns = max(len(c) for c in clips)
        tiles, labels = [], []
        for row in clips:
            for j in range(columns):
                path = row[j] if j < len(row) else row[-1]
                with Image.open(path) as im:
                    tiles.append(im.convert("RGB"))
                labels.append(Path(path).stem)
        sheet = contact_sheet(tiles, labels, columns=columns, label_lines=1)
        rel = f"{GRIDS_DIR}/{class_file_name(name)}.png"
        if rel in written:  # "Rock Pop" and "rock pop", "a/b" and "a b": two classes, one slug
            rel = f"{GRIDS_DIR}/{class_file_name(name, hashed=True)}.png"
        save_png(sheet, Path(out) / rel, {"class": name})
        written.append(rel)
    return written
