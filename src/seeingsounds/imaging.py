"""Images out: PNGs that carry their provenance in text chunks, and labelled contact sheets.

This module is the one home of the provenance key names: the CLI (``generate``, ``edit``), the
web demo and the mp4 writer all build their metadata with :func:`provenance`, so a key is spelled
one way everywhere (``Software`` is the PNG specification's registered keyword, capitalised as it
spells it; every other key is lower-case snake case).

PNGs are written without timestamps (PIL writes no ``tIME`` chunk) and with sorted JSON, so
the same image and metadata give the same bytes. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from seeingsounds import __version__
from seeingsounds.paths import atomic_path

#: the text chunk holding the full provenance as JSON
PROVENANCE_KEY = "seeingsounds"
#: the PNG specification's keyword for the program that made the file
SOFTWARE_KEY = "Software"

#: every provenance key and what it holds (the one spelling; tests check that writers use only these)
PROVENANCE_FIELDS: dict[str, str] = {
    SOFTWARE_KEY: "the program: 'seeingsounds <version>'",
    "seeingsounds_version": "the library version",
    "checkpoint": "the checkpoint as the user named it",
    "preset": "the preset's name",
    "generator": "<backend>:<generator id>",
    "encoder": "<encoder>:<encoder id>",
    "steps": "diffusion steps",
    "guidance": "guidance scale",
    "size": "<width>x<height>",
    "dtype": "weights' precision",
    "lora": "the generator LoRA, or null",
    "seed": "the seed of this image",
    "source": "the sound file",
    "source_sha256": "sha256 of the sound file's bytes",
    "effects": "[[name, params], ...] applied to the sound, or null",
    "effect_descriptions": "their descriptions d_j, or null",
    "mix": "{path, sha256, ratio} of the clip mixed in, or null",
    "caption": "the caption (text path)",
    "image": "the picture that was edited",
    "image_sha256": "sha256 of its bytes",
    "mask": "the edit mask, or null",
    "mask_sha256": "sha256 of its bytes, or null",
    "strength": "the edit strength in (0, 1]",
    "frames": "frames of a video",
    "fps": "frame rate of a video",
    "poster_of": "the video a poster PNG shows",
    "images": "the files a contact sheet shows",
}


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance metadata: ``Software`` and ``seeingsounds_version`` plus ``fields``.

    Every key must be one of :data:`PROVENANCE_FIELDS` (a misspelt key is a ``KeyError``).
    """
    unknown = sorted(set(fields) - set(PROVENANCE_FIELDS))
    if unknown:
        raise KeyError(f"unknown provenance keys {unknown}; known: {sorted(PROVENANCE_FIELDS)}")
    return {SOFTWARE_KEY: f"seeingsounds {__version__}", "seeingsounds_version": __version__, **fields}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (read in blocks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def png_info(metadata: Mapping[str, Any]) -> PngInfo:
    """One text chunk per field (strings as is, others as JSON) plus ``seeingsounds`` with all of it as JSON."""
    info = PngInfo()
    for key in sorted(metadata):
        if metadata[key] is not None:
            info.add_text(str(key), _text(metadata[key]))
    info.add_text(PROVENANCE_KEY, json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, default=str))
    return info


def save_png(image: Image.Image, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``image`` as a PNG with ``metadata`` in its text chunks, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: images are written as .png")
    with atomic_path(path, suffix=".png") as tmp:  # the umask's permissions, like every file
        image.save(tmp, format="PNG", pnginfo=png_info(metadata or {}))
    return path


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance a PNG written by :func:`save_png` carries (``{}`` if none)."""
    with Image.open(path) as image:
        image.load()
        text = dict(getattr(image, "text", {}))
    return json.loads(text[PROVENANCE_KEY]) if PROVENANCE_KEY in text else {}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(images: Sequence[Image.Image], labels: Sequence[str] | None = None, *, columns: int | None = None,
                  tile: int | None = None, label_lines: int = 2, background: str = "white") -> Image.Image:
    """A grid of ``images`` with up to ``label_lines`` lines of label under each (lines split on ``\\n``).

    ``tile`` is the thumbnail side (default: the largest image side, at least 128 — tiny images are
    enlarged with nearest-neighbour so their pixels stay visible, at most 512).
    """
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    if len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    tile = tile or min(512, max(128, *(max(im.size) for im in images)))
    font_size = max(10, tile // 14)
    font = _font(font_size)
    band = (font_size + 4) * label_lines + 6
    pad = 6
    sheet = Image.new("RGB", (columns * (tile + pad) + pad, rows * (tile + band + pad) + pad), background)
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels)):
        r, c = divmod(i, columns)
        x, y = pad + c * (tile + pad), pad + r * (tile + band + pad)
        thumb = image.convert("RGB")
        scale = tile / max(thumb.size)
        size = (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale)))
        thumb = thumb.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
        sheet.paste(thumb, (x + (tile - size[0]) // 2, y + (tile - size[1]) // 2))
        for j, line in enumerate(str(label).split("\n")[:label_lines]):
            draw.text((x + 2, y + tile + 3 + j * (font_size + 4)), _fit(draw, line, font, tile - 4), fill="black", font=font)
    return sheet
