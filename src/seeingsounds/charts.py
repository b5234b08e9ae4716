"""Small charts drawn with PIL (no plotting library): results a person can read at a glance.

Used by the demo (:mod:`seeingsounds.demo`): a confusion matrix of what held-out clips were
heard as, stacked bars for the volume sweep, a grid of two-sound mixes, a training curve, and a
report page that puts them side by side with one plain sentence under each.

Why not matplotlib: it would be a new dependency of every install (with its own font and backend
set-up) for five fixed charts that PIL, already required, draws in a few hundred lines; and the
charts' layout (labels that never overlap, the report page's grid) is plain to test here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
INK: RGB = (33, 37, 41)
MUTED: RGB = (108, 117, 125)
RULE: RGB = (222, 226, 230)
BLUE: RGB = (34, 102, 204)
GREEN: RGB = (47, 158, 68)
ORANGE: RGB = (247, 143, 30)
RED: RGB = (214, 51, 51)
#: series colours, in order (colour-blind-safe-ish: blue, orange, teal, red, purple)
PALETTE: tuple[RGB, ...] = ((34, 102, 204), (247, 143, 30), (18, 150, 136), (214, 51, 51), (136, 84, 208))

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def font(size: int) -> Font:
    """PIL's bundled scalable font at ``size`` px (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def text_width(text: str, face: Font) -> int:
    return int(math.ceil(face.getlength(text)))


def wrap(text: str, face: Font, width: int) -> list[str]:
    """``text`` split into lines no wider than ``width`` px (a longer single word gets its own line)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and text_width(candidate, face) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = min(1.0, max(0.0, t))
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _centered(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lines: Sequence[str], face: Font,
              fill: RGB) -> None:
    x0, y0, x1, y1 = box
    step = face.size + 2 if hasattr(face, "size") else 12
    top = (y0 + y1) / 2 - step * len(lines) / 2
    for k, line in enumerate(lines):
        draw.text(((x0 + x1) / 2, top + k * step + step / 2), line, fill=fill, font=face, anchor="mm")


def _title(draw: ImageDraw.ImageDraw, title: str, width: int, size: int = 20) -> int:
    draw.text((16, 12), title, fill=INK, font=font(size))
    return 12 + size + 14


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str,
                     row_axis: str = "the sound was", column_axis: str = "the model heard", cell: int = 74) -> Image.Image:
    """Counts ``matrix[true][predicted]`` as a shaded grid: the diagonal (right answers) in green,
    mistakes in red, the shade by the share of the row."""
    n = len(labels)
    if any(len(row) != n for row in matrix) or len(matrix) != n:
        raise ValueError(f"a confusion matrix over {n} labels must be {n}x{n}")
    small, label_face, number_face = font(13), font(14), font(20)
    left = max(text_width(lb, label_face) for lb in labels) + 30
    head_lines = [wrap(lb, small, cell - 6) for lb in labels]
    head = (max(len(h) for h in head_lines) * 15) + 28
    width, height = left + n * cell + 20, 48 + head + n * cell + 16
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    top = _title(draw, title, width) + head
    draw.text((left + n * cell / 2, top - head + 6), column_axis, fill=MUTED, font=small, anchor="mt")
    for j, lines in enumerate(head_lines):
        _centered(draw, (left + j * cell, top - head + 22, left + (j + 1) * cell, top - 4), lines, small, INK)
    draw.text((6, top - 14), row_axis, fill=MUTED, font=small)
    for i, row in enumerate(matrix):
        total = max(1, sum(row))
        y = top + i * cell
        draw.text((left - 10, y + cell / 2), labels[i], fill=INK, font=label_face, anchor="rm")
        for j, count in enumerate(row):
            x = left + j * cell
            share = count / total
            colour = _mix(WHITE, GREEN if i == j else RED, 0.15 + 0.85 * share) if count else WHITE
            draw.rectangle((x, y, x + cell - 2, y + cell - 2), fill=colour, outline=RULE)
            if count:
                draw.text((x + cell / 2, y + cell / 2), str(count), fill=WHITE if share > 0.5 else INK,
                          font=number_face, anchor="mm")
    return image


def stacked_bars(categories: Sequence[str], shares: Mapping[str, Sequence[float]], *, title: str,
                 x_axis: str = "", colors: Mapping[str, RGB] | None = None, bar: int = 62,
                 plot_height: int = 250) -> Image.Image:
    """One bar per category, split into the ``shares`` of each series (each bar sums to at most 1),
    with the percentage written in each part tall enough to hold it, and a legend underneath."""
    series = list(shares)
    colors = dict(colors or {})
    for k, name in enumerate(series):
        colors.setdefault(name, PALETTE[k % len(PALETTE)])
    small, face = font(13), font(14)
    gap, left = 22, 54
    plot_width = len(categories) * (bar + gap)
    width = max(left + plot_width + 20, 360)
    legend_rows = wrap_items([f"{name}" for name in series], face, width - left, extra=34)
    height = 48 + plot_height + 56 + len(legend_rows) * 24 + 8
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    top = _title(draw, title, width)
    bottom = top + plot_height
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - tick * plot_height
        draw.line((left - 4, y, left + plot_width, y), fill=RULE)
        draw.text((left - 8, y), f"{tick:.0%}", fill=MUTED, font=small, anchor="rm")
    for c, category in enumerate(categories):
        x = left + gap // 2 + c * (bar + gap)
        y = float(bottom)
        for name in series:
            share = float(shares[name][c])
            if share <= 0:
                continue
            h = share * plot_height
            draw.rectangle((x, y - h, x + bar, y), fill=colors[name])
            if h >= 18:
                draw.text((x + bar / 2, y - h / 2), f"{share:.0%}", fill=WHITE, font=small, anchor="mm")
            y -= h
        draw.text((x + bar / 2, bottom + 8), category, fill=INK, font=face, anchor="mt")
    if x_axis:
        draw.text((left + plot_width / 2, bottom + 28), x_axis, fill=MUTED, font=small, anchor="mt")
    ly = bottom + 52
    for row in legend_rows:
        lx = left
        for name in row:
            draw.rectangle((lx, ly, lx + 16, ly + 16), fill=colors[name])
            draw.text((lx + 22, ly + 8), name, fill=INK, font=face, anchor="lm")
            lx += text_width(name, face) + 34
        ly += 24
    return image


def wrap_items(items: Sequence[str], face: Font, width: int, *, extra: int = 0) -> list[list[str]]:
    """``items`` in rows no wider than ``width`` px (each item takes its text width plus ``extra``)."""
    rows: list[list[str]] = [[]]
    used = 0
    for item in items:
        w = text_width(item, face) + extra
        if rows[-1] and used + w > width:
            rows.append([])
            used = 0
        rows[-1].append(item)
        used += w
    return rows


def pair_grid(labels: Sequence[str], cells: Mapping[tuple[str, str], tuple[str, bool]], *, title: str,
              cell: int = 92) -> Image.Image:
    """A triangle of label pairs: each cell's short text, green when ``ok`` is true, orange when not."""
    n = len(labels)
    small, label_face = font(13), font(14)
    left = max(text_width(lb, label_face) for lb in labels) + 24
    head_lines = [wrap(lb, small, cell - 6) for lb in labels]
    head = max(len(h) for h in head_lines) * 15 + 12
    width, height = left + n * cell + 20, 48 + head + n * cell + 16
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    top = _title(draw, title, width) + head
    for j, lines in enumerate(head_lines):
        _centered(draw, (left + j * cell, top - head, left + (j + 1) * cell, top - 4), lines, small, INK)
    for i, u in enumerate(labels):
        y = top + i * cell
        draw.text((left - 10, y + cell / 2), u, fill=INK, font=label_face, anchor="rm")
        for j, v in enumerate(labels):
            x = left + j * cell
            box = (x, y, x + cell - 2, y + cell - 2)
            found = cells.get((u, v)) or cells.get((v, u))
            if i == j or found is None:
                draw.rectangle(box, fill=(248, 249, 250), outline=RULE)
                continue
            text, ok = found
            draw.rectangle(box, fill=_mix(WHITE, GREEN if ok else ORANGE, 0.8), outline=RULE)
            _centered(draw, box, wrap(text, small, cell - 10)[:4], small, WHITE if ok else INK)
    return image


def line_chart(xs: Sequence[float], series: Mapping[str, Sequence[float]], *, title: str, x_axis: str = "",
               marker: float | None = None, marker_label: str = "", width: int = 560,
               plot_height: int = 230) -> Image.Image:
    """Lines of ``series`` over ``xs`` (with a vertical ``marker``, e.g. the best epoch), y from 0."""
    small, face = font(13), font(14)
    left, right = 58, 20
    height = 48 + plot_height + 70
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    top = _title(draw, title, width)
    bottom = top + plot_height
    values = [float(v) for s in series.values() for v in s if math.isfinite(float(v))]
    y_max = max(values) * 1.05 if values and max(values) > 0 else 1.0
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0
    px = lambda x: left + (float(x) - x0) / span * (width - left - right)  # noqa: E731
    py = lambda y: bottom - float(y) / y_max * plot_height  # noqa: E731
    for k in range(5):
        y = y_max * k / 4
        draw.line((left, py(y), width - right, py(y)), fill=RULE)
        draw.text((left - 8, py(y)), f"{y:.2g}", fill=MUTED, font=small, anchor="rm")
    for x in sorted({round(x0), round(x1), *[round(x0 + span * t / 4) for t in range(1, 4)]}):
        draw.text((px(x), bottom + 8), str(x), fill=MUTED, font=small, anchor="mt")
    if x_axis:
        draw.text(((left + width - right) / 2, bottom + 28), x_axis, fill=MUTED, font=small, anchor="mt")
    if marker is not None:
        draw.line((px(marker), top, px(marker), bottom), fill=GREEN, width=2)
        if marker_label:
            room = width - right - px(marker) > text_width(marker_label, small) + 8
            draw.text((px(marker) + (6 if room else -6), top + 4), marker_label, fill=GREEN, font=small,
                      anchor="la" if room else "ra")
    for k, (name, ys) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = [(px(x), py(y)) for x, y in zip(xs, ys) if math.isfinite(float(y))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3, joint="curve")
        for p in points[-1:]:
            draw.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=colour)
        lx = left + 10 + k * 170
        draw.rectangle((lx, bottom + 50, lx + 14, bottom + 60), fill=colour)
        draw.text((lx + 20, bottom + 55), name, fill=INK, font=face, anchor="lm")
    return image


def report(panels: Sequence[tuple[Image.Image, str]], *, title: str, subtitle: str = "", columns: int = 2,
           column_width: int = 620) -> Image.Image:
    """One page: ``title``, then the panels in a grid, each scaled to ``column_width`` at most (small
    images enlarged by whole factors, pixels kept sharp) with its sentence wrapped underneath."""
    face, title_face, sub_face = font(16), font(28), font(15)
    pad = 24
    laid: list[tuple[Image.Image, list[str]]] = []
    for image, sentence in panels:
        scale = min(column_width / image.width, 1.0)
        if image.width * 2 <= column_width:  # a tiny image (e.g. a contact sheet of 32 px tiles)
            scale = float(column_width // image.width)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resized = image.convert("RGB").resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
        laid.append((resized, wrap(sentence, face, column_width)))
    rows = [laid[i : i + columns] for i in range(0, len(laid), columns)]
    line = face.size + 6
    row_heights = [max(im.height + 12 + len(lines) * line for im, lines in row) for row in rows]
    head = pad + 40 + (len(wrap(subtitle, sub_face, columns * (column_width + pad))) * 22 if subtitle else 0) + 12
    width = pad + columns * (column_width + pad)
    page = Image.new("RGB", (width, head + sum(row_heights) + pad * len(rows) + pad), WHITE)
    draw = ImageDraw.Draw(page)
    draw.text((pad, pad), title, fill=INK, font=title_face)
    if subtitle:
        for k, text in enumerate(wrap(subtitle, sub_face, width - 2 * pad)):
            draw.text((pad, pad + 42 + k * 22), text, fill=MUTED, font=sub_face)
    y = head
    for row, row_height in zip(rows, row_heights):
        for c, (image, lines) in enumerate(row):
            x = pad + c * (column_width + pad)
            page.paste(image, (x, y))
            draw.rectangle((x - 1, y - 1, x + image.width, y + image.height), outline=RULE)
            for k, text in enumerate(lines):
                draw.text((x, y + image.height + 10 + k * line), text, fill=INK, font=face)
        y += row_height + pad
    return page
