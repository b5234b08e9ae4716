"""The captioned picture set (seeingsounds.data.pictures): vocabulary, captions, rendering, errors."""

from __future__ import annotations

from collections.abc import Callable

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeingsounds.data import pictures
from seeingsounds.data.pictures import CONCEPTS, Concept, captions_for, load_pictures, on_white
from seeingsounds.errors import ConfigError

#: everyday sound-making concepts the vocabulary must cover (issue 18)
SOUND_MAKERS = ("dog", "cat", "cow", "rooster", "bird", "bell", "drum", "guitar", "violin", "piano", "trumpet",
                "train", "car", "airplane", "helicopter", "fire", "rain", "door", "baby", "clapping", "siren",
                "saw", "clock", "sheep", "pig", "horse", "duck", "frog", "bee", "telephone", "thunderstorm",
                "hammer", "ambulance", "motorcycle", "ship", "wind", "ocean_waves")


def needs_noto() -> None:
    if not pictures.NOTO_FONT.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{pictures.NOTO_FONT} is missing: scripts/system-deps.sh should have installed "
                        f"{pictures.NOTO_PACKAGE}")
        pytest.skip(f"{pictures.NOTO_FONT} not installed (apt-get install {pictures.NOTO_PACKAGE})")


def test_vocabulary_covers_sound_makers_with_unique_ids_and_emoji():
    ids = [c.id for c in CONCEPTS]
    assert len(ids) == len(set(ids)) == 144
    assert len({c.emoji for c in CONCEPTS}) == len(CONCEPTS)
    assert set(SOUND_MAKERS) <= set(ids)
    assert pictures.GROUPS == ("animals", "nature", "music", "vehicles", "objects", "people")


def test_captions_are_deterministic_phrasings_of_the_concept():
    dog = captions_for("dog")
    assert dog == ("a dog", "dog", "the sound of a dog", "a dog barking", "the sound of a dog barking", "dog face",
                   "a picture of a dog", "dog, puppy, pet, woof", "puppy", "pet", "woof")
    assert captions_for(pictures.concept("dog")) == dog
    # no repeats, no empty phrasing, for every concept; Emoji 15 names do not depend on Python's Unicode tables
    for c in CONCEPTS:
        caps = captions_for(c)
        assert len(caps) == len(set(caps)) >= 4 and all(caps)
    assert [pictures.concept(i).unicode_name for i in ("donkey", "goose", "flute", "maracas", "airplane")] == [
        "donkey", "goose", "flute", "maracas", "airplane"]
    # a concept without sound phrase or keywords still gets its noun phrase forms
    bare = Concept("thing", "\U0001F4A1", "a thing")
    assert captions_for(bare) == ("a thing", "thing", "the sound of a thing", "electric light bulb", "a picture of a thing")


def test_unknown_concept_and_style_are_config_errors():
    with pytest.raises(ConfigError, match="no picture concept 'unicorn'"):
        captions_for("unicorn")
    with pytest.raises(ConfigError, match="unknown picture style 'sketch'.*noto"):
        load_pictures("sketch")
    with pytest.raises(ConfigError, match="at least 4 px"):
        load_pictures("noto", size=2)


def test_on_white_centres_the_visible_pixels_on_white():
    glyph = Image.new("RGBA", (100, 60), (0, 0, 0, 0))
    glyph.paste((255, 0, 0, 255), (10, 20, 50, 40))  # a 40x20 red box off-centre
    out = on_white(glyph, 20, margin=0.0)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    red = (out[..., 0] > 200) & (out[..., 1] < 50)
    rows = np.flatnonzero(red.any(1))
    assert red[:, 0].any() and red[:, -1].any()  # the box spans the width (aspect kept)
    assert (rows.min(), rows.max()) == (5, 14)  # centred vertically: 10 of 20 rows
    assert (out[0, 0] == 255).all()  # transparent -> white
    with pytest.raises(ValueError, match="empty"):
        on_white(Image.new("RGBA", (8, 8)), 4)


def test_noto_pictures_render_every_concept_distinctly():
    needs_noto()
    items = load_pictures("noto", size=32)
    assert [p.concept for p in items] == [c.id for c in CONCEPTS]
    first = items[0]
    assert first.style == "noto" and first.captions == captions_for("dog")
    stack = np.stack([p.image for p in items]).astype(np.float32)
    assert stack.shape == (144, 32, 32, 3) and items[0].image.dtype == np.uint8
    ink = (stack.min(-1) < 240).mean((1, 2))
    assert ink.min() > 0.08, [items[i].concept for i in np.flatnonzero(ink <= 0.08)]  # no blank glyph (tofu is white)
    assert (stack[:, 0, 0] == 255).all()  # white corners
    flat = stack.reshape(len(items), -1)
    dist = ((flat[:, None] - flat[None]) ** 2).mean(-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 100  # every picture differs from every other
    # deterministic, and a subset in the asked order and size
    again = load_pictures("noto", size=16, concepts=["cat", "dog"])
    assert [p.concept for p in again] == ["cat", "dog"] and again[0].image.shape == (16, 16, 3)
    assert np.array_equal(load_pictures("noto", size=16, concepts=["cat"])[0].image, again[0].image)
    # the cat is yellow-orange and the frog green: colour comes from the colour font
    cat, frog = (load_pictures("noto", size=32, concepts=[c])[0].image.reshape(-1, 3).astype(int) for c in ("cat", "frog"))
    assert cat[(cat.min(1) < 200)].mean(0)[2] < 120 and frog[(frog.min(1) < 200)].mean(0)[1] > 140


def test_missing_noto_font_says_which_package(monkeypatch, tmp_path):
    monkeypatch.setattr(pictures, "NOTO_FONT", tmp_path / "absent.ttf")
    pictures._noto_font.cache_clear()
    try:
        with pytest.raises(ConfigError, match="apt-get install fonts-noto-color-emoji"):
            load_pictures("noto")
    finally:
        pictures._noto_font.cache_clear()


def _fake_datasource(tgz: Path) -> None:
    """A two-emoji stand-in for the emoji-datasource-twitter npm tarball."""
    root = tgz.parent / "src" / "package"
    (root / "img" / "twitter" / "64").mkdir(parents=True)
    (root / "emoji.json").write_text('[{"unified": "1F436", "image": "1f436.png"},'
                                     ' {"unified": "2708-FE0F", "non_qualified": "2708", "image": "2708-fe0f.png"}]')
    for name, colour in (("1f436.png", (200, 120, 40, 255)), ("2708-fe0f.png", (40, 40, 200, 255))):
        im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        im.paste(colour, (16, 16, 48, 48))
        im.save(root / "img" / "twitter" / "64" / name)
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(root, arcname="package")


def fake_npm(monkeypatch, tmp_path, tarball: str, make: Callable[[Path], None]) -> list[list[str]]:
    """``npm pack`` replaced by ``make(folder / tarball)``; returns the npm arguments of every call."""
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(tmp_path / "home"))
    calls: list[list[str]] = []

    def fake_run(cmd, cwd, **kwargs):
        calls.append(cmd[1:])
        make(Path(cwd) / tarball)

    monkeypatch.setattr(pictures.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(pictures.subprocess, "run", fake_run)
    return calls


def test_twemoji_is_fetched_once_with_npm_into_the_cache(monkeypatch, tmp_path):
    calls = fake_npm(monkeypatch, tmp_path, "emoji-datasource-twitter-16.0.0.tgz", _fake_datasource)
    items = load_pictures("twemoji", size=8, concepts=["dog", "airplane", "cat"])
    assert calls == [["pack", "emoji-datasource-twitter@16.0.0", "--silent"]]
    assert [p.concept for p in items] == ["dog", "airplane"]  # the style lacks "cat": left out
    assert tuple(items[0].image[4, 4]) == (200, 120, 40) and tuple(items[1].image[4, 4]) == (40, 40, 200)
    folder = tmp_path / "home" / "pictures" / "emoji-datasource-twitter-16.0.0"
    assert (folder / "emoji.json").is_file()
    assert [p.name for p in (tmp_path / "home" / "pictures").iterdir()] == [folder.name]  # no temp left
    load_pictures("twemoji", size=8, concepts=["dog"])
    assert len(calls) == 1  # cached


def test_twemoji_without_npm_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(tmp_path))
    monkeypatch.setattr(pictures.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"npm pack emoji-datasource-twitter@16\.0\.0.*Node\.js/npm"):
        load_pictures("twemoji")


SVG = ('<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg">'
       '<rect x="18" y="18" width="36" height="36" fill="{}" stroke="#000000" stroke-width="2"/></svg>')


def _fake_openmoji(tgz: Path) -> None:
    """A stand-in for the openmoji npm tarball: a dog, an airplane (file named with FE0F) and a broken SVG."""
    root = tgz.parent / "src" / "package"
    (root / "color" / "svg").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "openmoji.json").write_text('[{"hexcode": "1F436"}, {"hexcode": "2708-FE0F"}]')
    (root / "color" / "svg" / "1F436.svg").write_text(SVG.format("#c87828"))
    (root / "color" / "svg" / "2708-FE0F.svg").write_text(SVG.format("#2828c8"))
    (root / "color" / "svg" / "1F431.svg").write_text("<svg><not closed")
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(root, arcname="package")


def test_openmoji_is_fetched_and_rasterised_once_into_the_cache(monkeypatch, tmp_path):
    pytest.importorskip("cairosvg", reason="the openmoji style rasterises SVGs with cairosvg (the judge extra)")
    calls = fake_npm(monkeypatch, tmp_path, "openmoji-17.0.0.tgz", _fake_openmoji)
    items = load_pictures("openmoji", size=12, concepts=["dog", "airplane", "cat"])
    assert calls == [["pack", "openmoji@17.0.0", "--silent"]]
    assert [p.concept for p in items] == ["dog", "airplane"]  # the cat's SVG does not draw: left out, not fatal
    centre = [tuple(int(v) for v in p.image[6, 6]) for p in items]
    assert np.abs(np.subtract(centre, [(200, 120, 40), (40, 40, 200)])).max() <= 2, centre
    assert items[0].image.min() < 100  # the black stroke is drawn (a square: cropped to it, so no white corner)
    folder = tmp_path / "home" / "pictures" / "openmoji-17.0.0"
    pngs = folder / f"color-png-{pictures.OPENMOJI_RASTER_SIZE}"
    assert sorted(p.name for p in pngs.iterdir()) == ["1F436.png", "2708-FE0F.png"]
    assert Image.open(pngs / "1F436.png").size == (128, 128)
    assert sorted(pictures.openmoji_pngs()) == ["1F436", "2708"]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp folder left
    # cached: neither npm nor the rasteriser runs again
    monkeypatch.setattr(pictures, "_rasterise_svgs", lambda *a: pytest.fail("rasterised twice"))
    assert np.array_equal(load_pictures("openmoji", size=12, concepts=["dog"])[0].image, items[0].image)
    assert len(calls) == 1


def test_openmoji_without_cairosvg_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(tmp_path))
    monkeypatch.setattr(pictures.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(pictures.subprocess, "run", lambda cmd, cwd, **kw: _fake_openmoji(Path(cwd) / "o.tgz"))
    monkeypatch.setitem(__import__("sys").modules, "cairosvg", None)  # import cairosvg -> ImportError
    with pytest.raises(ConfigError, match=r"needs cairosvg.*seeingsounds\[judge\]"):
        load_pictures("openmoji")
    assert not (tmp_path / "pictures" / "openmoji-17.0.0" / f"color-png-{pictures.OPENMOJI_RASTER_SIZE}").exists()
    # the package itself stayed fetched: only the rasterising is missing
    assert (tmp_path / "pictures" / "openmoji-17.0.0" / "data" / "openmoji.json").is_file()


def test_openmoji_pictures_are_distinct_colour_pictures():
    """The real package (skipped when npm cannot fetch it): every concept has an OpenMoji picture."""
    pytest.importorskip("cairosvg", reason="the openmoji style rasterises SVGs with cairosvg (the judge extra)")
    try:
        pictures.openmoji_folder()
    except ConfigError as exc:  # npm absent or unreachable: the message says how to get the package
        pytest.skip(f"openmoji cannot be fetched here: {exc}")
    items = load_pictures("openmoji", size=32)
    assert [p.concept for p in items] == [c.id for c in CONCEPTS]
    stack = np.stack([p.image for p in items]).astype(np.float32)
    flat = stack.reshape(len(items), -1)
    dist = ((flat[:, None] - flat[None]) ** 2).mean(-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 100 and (stack[:, 0, 0] == 255).all()
    frog = items[[c.id for c in CONCEPTS].index("frog")].image.reshape(-1, 3).astype(int)
    assert frog[frog.min(1) < 200].mean(0)[1] > 120  # green: the colour SVG, not the black line art


def test_emojione_is_read_from_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(pictures, "EMOJIONE_PNG", tmp_path / "absent")
    with pytest.raises(ConfigError, match="apt-get install ruby-gemojione"):
        load_pictures("emojione")
    # a stand-in package folder: file names as gemojione writes them, FE0F dropped when matching
    monkeypatch.setattr(pictures, "EMOJIONE_PNG", tmp_path)
    for name, colour in (("1F436.png", (200, 120, 40, 255)), ("2708-FE0F.png", (40, 40, 200, 255))):
        im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        im.paste(colour, (16, 16, 48, 48))
        im.save(tmp_path / name)
    items = load_pictures("emojione", size=8, concepts=["dog", "airplane", "cat"])
    assert [(p.concept, tuple(p.image[4, 4])) for p in items] == [("dog", (200, 120, 40)), ("airplane", (40, 40, 200))]


def test_emojione_pictures_cover_most_concepts_distinctly():
    if not pictures.EMOJIONE_PNG.is_dir():
        pytest.skip(f"{pictures.EMOJIONE_PNG} not installed (apt-get install {pictures.EMOJIONE_PACKAGE})")
    items = load_pictures("emojione", size=32)
    assert len(items) == 126 and {"dog", "cat", "bell", "train"} <= {p.concept for p in items}
    flat = np.stack([p.image for p in items]).astype(np.float32).reshape(len(items), -1)
    dist = ((flat[:, None] - flat[None]) ** 2).mean(-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 100
