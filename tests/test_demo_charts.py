"""The demo's pictures (seeingsounds.charts): what each shows, checked on the pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from seeingsounds import charts
from seeingsounds.demo import _edit_marker


def colour_at(image: Image.Image, xy: tuple[float, float]) -> tuple[int, int, int]:
    return image.convert("RGB").getpixel((int(xy[0]), int(xy[1])))


def cell_centres(image: Image.Image, colour_test) -> list[tuple[int, int]]:
    """Pixels whose colour passes ``colour_test`` (a coarse scan)."""
    rgb = image.convert("RGB")
    return [(x, y) for y in range(0, rgb.height, 4) for x in range(0, rgb.width, 4) if colour_test(rgb.getpixel((x, y)))]


def greenish(c):
    return c[1] > c[0] + 40 and c[1] > c[2] + 40


def reddish(c):
    return c[0] > c[1] + 40 and c[0] > c[2] + 40


def test_confusion_matrix_shades_right_answers_green_and_mistakes_red():
    labels = ["a", "b", "c"]
    perfect = charts.confusion_matrix([[3, 0, 0], [0, 3, 0], [0, 0, 3]], labels, title="t")
    assert cell_centres(perfect, greenish) and not cell_centres(perfect, reddish)
    mixed = charts.confusion_matrix([[3, 0, 0], [2, 1, 0], [0, 0, 3]], labels, title="t")
    red = cell_centres(mixed, reddish)
    green = cell_centres(mixed, greenish)
    assert red and green
    # the mistake (row b, column a) is left of and below the first right answer (row a, column a)
    assert min(x for x, _ in red) < max(x for x, _ in green) and max(y for _, y in red) > min(y for _, y in green)
    with pytest.raises(ValueError):
        charts.confusion_matrix([[1, 0]], labels, title="t")


def test_stacked_bars_heights_follow_the_shares():
    shares = {"plain": [1.0, 0.5, 0.0], "quiet": [0.0, 0.5, 1.0]}
    image = charts.stacked_bars(["100%", "50%", "10%"], shares, title="t", colors={"plain": (0, 0, 255),
                                                                                  "quiet": (255, 0, 0)})
    rgb = image.convert("RGB")

    def column(x):  # (blue pixels, red pixels) down the bar's centre line
        px = [rgb.getpixel((x, y)) for y in range(rgb.height)]
        return sum(p == (0, 0, 255) for p in px), sum(p == (255, 0, 0) for p in px)

    # bars are 62 px wide, 22 px apart, after a 54 px axis and half a gap: their centre lines
    mids = [54 + 11 + 31 + k * 84 for k in range(3)]
    (b0, r0), (b1, r1), (b2, r2) = (column(x) for x in mids)
    assert b0 > 200 and r0 == 0  # all plain (the percentage written on it takes a few pixels)
    assert abs(b1 - r1) < 25 and b1 > 80  # half and half
    assert b2 == 0 and r2 > 200


def test_pair_grid_marks_right_pairs_green():
    cells = {("a", "b"): ("both", True), ("a", "c"): ("only a", False), ("b", "c"): ("both", True)}
    image = charts.pair_grid(["a", "b", "c"], cells, title="t")
    assert cell_centres(image, greenish)
    orange = cell_centres(image, lambda c: c[0] > 200 and 120 < c[1] < 200 and c[2] < 120)
    assert orange


def test_report_lays_panels_out_with_their_sentences():
    a = Image.new("RGB", (400, 200), (0, 0, 255))
    tiny = Image.new("RGB", (40, 20), (255, 0, 0))
    page = charts.report([(a, "first sentence " * 10), (tiny, "second")], title="T", subtitle="S", column_width=300)
    assert page.width == 24 + 2 * (300 + 24)
    rgb = page.convert("RGB")
    # the big panel is scaled down to the column, the tiny one enlarged by a whole factor (7 x 40 = 280 px)
    blue = [x for x in range(page.width) if rgb.getpixel((x, 140)) == (0, 0, 255)]
    red = [x for x in range(page.width) if rgb.getpixel((x, 120)) == (255, 0, 0)]
    assert len(blue) == 300 and len(red) == 280


def test_wrap_and_edit_markers():
    face = charts.font(14)
    lines = charts.wrap("one two three four five six seven", face, 60)
    assert len(lines) > 1 and all(charts.text_width(line, face) <= 60 or " " not in line for line in lines)
    plain = "a small bird singing on a branch"
    assert _edit_marker(plain, "a distant small bird singing on a branch") == "a distant …"
    assert _edit_marker(plain, plain + " in the middle distance") == "… in the middle distance"
