"""Pictures in and images out: the one loader of pictures (:func:`load_picture`), PNGs that carry their
provenance in text chunks, and labelled contact sheets.

:func:`load_picture` is how ``seeingsounds edit``, the pipeline's ``edit`` and the web demo read a picture:
its size is checked against :data:`MAX_PICTURE_PIXELS` from the header, before any pixel is decoded (a
17 KB PNG can hold 144 megapixels); 16-bit and float greyscale are scaled to 8 bits (Pillow's own
conversion clamps them, so a mid-grey turns white); anything else gives a :class:`ConfigError` naming the file.

This module is the one home of the provenance key names: the CLI (``generate``, ``edit``), the
web demo and the mp4 writer all build their metadata with :func:`provenance`, so a key is spelled
one way everywhere (``Software`` is the PNG specification's registered keyword, capitalised as it
spells it; every other key is lower-case snake case).

PNGs are written without timestamps (PIL writes no ``tIME`` chunk) and with sorted JSON, so
the same image and metadata give the same bytes. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from seeingsounds import __version__
from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_path

log = logging.getLogger(__name__)

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
    "label": "the class of the sound (evaluation)",
    "protocol": "the evaluation protocol",
    "stream_time": "live mode: the stream time (seconds) at the end of the window heard",
    "heard": "live mode: the class captions heard, with their cosine similarity",
}


#: the most pixels a picture to edit may have (checked from its header, before decoding): 50 megapixels
MAX_PICTURE_PIXELS = 50_000_000
#: Pillow's modes of 16-bit greyscale (scaled by 255/65535 to 8 bits)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: what a picture may be, for error messages
PICTURE_FORMATS_TEXT = "a PNG, JPEG, WebP, BMP, GIF or TIFF file"


def load_picture(source: Any, *, what: str = "image", mode: str = "RGB", name: str | None = None,
                 max_pixels: int = MAX_PICTURE_PIXELS) -> Image.Image:
    """A decoded PIL image in ``mode`` from a path, the bytes of a file, a PIL image or an array.

    Arrays: ``uint8`` or ``bool`` (``True`` = 255) ``[H, W]`` / ``[H, W, C]``, or ``uint16`` ``[H, W]``
    (16-bit grey). A file's size is checked against ``max_pixels`` before it is decoded. High-bit-depth
    greyscale is scaled to 8 bits: 16-bit (and 32-bit integer pictures holding 0..65535) by 255/65535,
    float pictures holding 0..1 by 255; other ranges are refused. In RGB a transparent picture is laid on
    white, as viewers show it. Errors are :class:`ConfigError`s that name the picture as ``what`` and
    ``name`` (default: the path as given, ``"<bytes>"`` or nothing).
    """
    if isinstance(source, Image.Image):
        return _to_mode(source, what, name or "", mode, max_pixels)
    if isinstance(source, np.ndarray):
        return _to_mode(_from_array(source, what), what, name or "", mode, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        opened_from: Any = io.BytesIO(bytes(source))
        name = name or "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        name = name or os.fspath(source)
        if not path.is_file():
            raise ConfigError(f"{what} {name} does not exist" if not path.exists() else f"{what} {name} is not a file")
        opened_from = path
    else:
        raise ConfigError(f"the {what} must be a file path, a PIL image or a uint8 array, got {type(source).__name__}")
    try:
        with Image.open(opened_from) as opened:  # lazy: reads the header only
            _check_pixels(opened, what, name, max_pixels)
            if getattr(opened, "n_frames", 1) > 1:
                log.warning("%s %s is animated (%d frames): its first frame is used", what, name, opened.n_frames)
            opened.load()
            return _to_mode(opened, what, name, mode, max_pixels)
    except ConfigError:
        raise
    except Image.DecompressionBombError as exc:
        raise ConfigError(f"{what} {name} has over {max_pixels / 1e6:g} megapixels ({exc}): "
                          "scale it down and try again") from None
    except UnidentifiedImageError:
        raise ConfigError(f"{what} {name} is not a readable image (not a picture format Pillow reads; SVG and "
                          f"other vector or text files are not pictures): give {PICTURE_FORMATS_TEXT}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        reason = str(exc).replace(os.fspath(source), name) if isinstance(source, (str, os.PathLike)) else str(exc)
        raise ConfigError(f"{what} {name} is not a readable image (truncated or corrupt: "
                          f"{reason or type(exc).__name__}): give {PICTURE_FORMATS_TEXT}") from None


def _named(what: str, name: str) -> str:
    return f"{what} {name}" if name else f"the {what}"


def _check_pixels(image: Image.Image, what: str, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ConfigError(f"{_named(what, name)} is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                          f"pictures may have at most {max_pixels / 1e6:g} megapixels: scale it down and try again")
    if width == 0 or height == 0:
        raise ConfigError(f"{_named(what, name)} is empty ({width}x{height} pixels)")


def _from_array(array: np.ndarray, what: str) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array)  # I;16, scaled by _to_mode
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ConfigError(f"the {what} array must be uint8 [H, W] or [H, W, C] with C in 1, 3, 4, or uint16 [H, W], "
                          f"got {array.dtype} {list(array.shape)}")
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)


#: Pillow modes with an alpha channel
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _on_white(image: Image.Image) -> Image.Image:
    """A picture with transparency laid on white, as a viewer shows it: dropping the alpha channel would show
    the colours stored under transparent pixels instead (often black)."""
    try:
        rgba = image.convert("RGBA")
    except ValueError:  # a mode Pillow cannot convert (La): _to_mode says so
        return image
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_mode(image: Image.Image, what: str, name: str, mode: str, max_pixels: int) -> Image.Image:
    """``image`` in ``mode``, high-bit-depth greyscale scaled (not clamped) to 8 bits first; in RGB, a
    transparent picture laid on white (:func:`_on_white`)."""
    _check_pixels(image, what, name, max_pixels)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image).astype(np.float32)  # exact for 16-bit values
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        full_scale = 1.0 if image.mode == "F" else 65535.0
        if not (np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= full_scale):
            kind = "floating-point" if image.mode == "F" else "32-bit integer"
            raise ConfigError(f"{_named(what, name)} is a {kind} picture with values {low:g}..{high:g}, outside "
                              f"0..{full_scale:g}: save it as an 8- or 16-bit PNG")
        image = Image.fromarray(np.round(values * (255.0 / full_scale)).astype(np.uint8))
    if mode == "RGB" and (image.mode in _ALPHA_MODES or "transparency" in image.info):
        image = _on_white(image)
    try:
        return image.convert(mode)
    except ValueError:  # a mode Pillow converts to RGB(A) only (LAB -> L) or not at all (La)
        try:
            return image.convert("RGBA").convert(mode)
        except ValueError:
            raise ConfigError(f"{_named(what, name)} is a Pillow '{image.mode}' picture, which cannot be converted "
                              f"to {mode}: save it as an 8-bit RGB PNG") from None


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance metadata: ``Software`` and ``seeingsounds_version`` plus ``fields``.

    Every key must be one of :data:`PROVENANCE_FIELDS` (a misspelt key is a ``KeyError``).
    """
    unknown = sorted(set(fields) - set(PROVENANCE_FIELDS))
    if unknown:
        raise KeyError(f"unknown provenance keys {unknown}; known: {sorted(PROVENANCE_FIELDS)}")
    return {SOFTWARE_KEY: f"seeingsounds {__version__}", "seeingsounds_version": __version__, **fields}


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8: a file name in another encoding (Python's surrogates, e.g. ``caf\\udce9.wav``
    for Latin-1 bytes) is written as its ``\\udcXX`` escape, which a JSON reader reads back as the name."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_line(value: Any) -> str:
    """``value`` as one line of JSON (sorted keys, non-ASCII kept) that is valid UTF-8 (:func:`utf8_text`)."""
    return utf8_text(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))


def provenance_json(metadata: Mapping[str, Any]) -> str:
    """Provenance as one line of JSON: the form PNGs, mp4s and live mode's log store."""
    return _json_line(dict(metadata))


def _text(value: Any) -> str:
    return utf8_text(value) if isinstance(value, str) else _json_line(value)


def png_info(metadata: Mapping[str, Any]) -> PngInfo:
    """One text chunk per field (strings as is, others as JSON) plus ``seeingsounds`` with all of it as JSON."""
    info = PngInfo()
    for key in sorted(metadata):
        if metadata[key] is not None:
            info.add_text(str(key), _text(metadata[key]))
    info.add_text(PROVENANCE_KEY, provenance_json(metadata))
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
