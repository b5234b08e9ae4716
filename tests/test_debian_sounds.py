"""The labelled manifest of real sounds from Debian packages."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import debian_sounds

from seeingsounds.data.debian_sounds import (
    RULES,
    SOURCES,
    build_debian_manifest,
    caption_for,
    main,
    scan_debian_sounds,
)
from seeingsounds.errors import DatasetError


@pytest.fixture(scope="module")
def installed() -> None:
    for name in ("tuxpaint", "sonic-pi", "freedesktop"):
        debian_sounds(name)


def _read(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_manifest_finds_many_labelled_classes(installed, tmp_path):
    manifest, captions_path = build_debian_manifest(tmp_path)
    rows = _read(manifest)
    counts = Counter(r["label"] for r in rows)
    captions = json.loads(captions_path.read_text())
    # measured: 259 clips in 33 classes
    assert len(counts) >= 30 and len(rows) >= 240, counts
    assert min(counts.values()) >= 3
    assert set(captions) == set(counts)
    assert captions["bird"] == "the sound of a bird" and captions["speech"] == "the sound of speech"
    assert all(Path(r["path"]).is_file() for r in rows)
    assert len({r["path"] for r in rows}) == len(rows)  # every clip has one label
    # classes from all three packages
    for source, root in SOURCES.items():
        assert any(r["path"].startswith(str(root)) for r in rows), source
    by_label = {label: {Path(r["path"]).name for r in rows if r["label"] == label} for label in counts}
    assert {"bd_808.flac", "drum_heavy_kick.flac"} <= by_label["kick drum"]
    assert {"cow.ogg", "bull.ogg"} <= by_label["cow"]
    assert {"phone-incoming-call.oga", "mehackit_phone1.flac"} <= by_label["telephone"]
    # spoken descriptions are speech, never the object's sound; other languages are left out
    assert all(not n.endswith("_desc.ogg") for label, names in by_label.items() if label != "speech" for n in names)
    assert all("_desc_" not in r["path"] for r in rows)
    assert counts["speech"] == 8 + 16  # freedesktop's 8 channel names + a seeded sample of Tux Paint descriptions


def test_min_max_per_class_and_seed(installed, tmp_path):
    manifest, _ = build_debian_manifest(tmp_path / "a", min_per_class=10, max_per_class=12, seed=1)
    counts = Counter(r["label"] for r in _read(manifest))
    assert counts and all(10 <= n <= 12 for n in counts.values())
    assert counts["tabla"] == 12 and "cow" not in counts
    again, _ = build_debian_manifest(tmp_path / "b", min_per_class=10, max_per_class=12, seed=1)
    other, _ = build_debian_manifest(tmp_path / "c", min_per_class=10, max_per_class=12, seed=2)
    assert _read(again) == _read(manifest)
    assert _read(other) != _read(manifest)
    with pytest.raises(DatasetError, match="max_per_class"):
        build_debian_manifest(tmp_path / "d", min_per_class=5, max_per_class=3)


def test_missing_packages_raise_an_actionable_error(tmp_path):
    empty = {name: tmp_path / name for name in SOURCES}
    with pytest.raises(DatasetError, match="apt-get install") as info:
        build_debian_manifest(tmp_path / "out", sources=empty)
    assert any("sonic-pi-samples" in p for p in info.value.problems)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_rules_on_a_fake_tree(tmp_path):
    """The rule table alone decides labels: first match wins, unmatched files are left out."""
    tux, spi = tmp_path / "tux", tmp_path / "spi"
    for rel in ("animals/birds/owl.ogg", "animals/birds/owl_desc.ogg", "animals/birds/owl_desc_fr.ogg",
                "symbols/math/1.ogg", "animals/mammals/dogs/dog.ogg"):
        (tux / rel).parent.mkdir(parents=True, exist_ok=True)
        (tux / rel).write_bytes(b"")
    spi.mkdir()
    for name in ("bd_808.flac", "drum_bass_hard.flac", "misc_crow.flac", "notes.txt"):
        (spi / name).write_bytes(b"")
    classes = scan_debian_sounds({"tuxpaint": tux, "sonic-pi": spi})
    names = {label: sorted(p.name for p in paths) for label, paths in classes.items()}
    assert names == {"bird": ["misc_crow.flac", "owl.ogg"], "speech": ["owl_desc.ogg"],
                     "kick drum": ["bd_808.flac", "drum_bass_hard.flac"]}
    assert all(r.source in SOURCES for r in RULES)


def test_caption_rule():
    assert caption_for("electronic blip") == "the sound of an electronic blip"
    assert caption_for("kick_drum") == "the sound of a kick drum"
    assert caption_for("speech") == "the sound of speech"


def test_command_line_entry_point(installed, tmp_path, capsys):
    assert main([str(tmp_path), "--min-per-class", "5", "--max-per-class", "8"]) == 0
    out = capsys.readouterr().out
    rows = _read(tmp_path / "manifest.csv")
    assert f"{len(rows)} clips in {len({r['label'] for r in rows})} classes" in out
    assert (tmp_path / "captions.json").is_file()


def test_picture_concepts_map_rule_labels_to_picture_set_concepts():
    from seeingsounds.data.debian_sounds import PICTURE_CONCEPTS
    from seeingsounds.data.pictures import CONCEPTS

    assert set(PICTURE_CONCEPTS) <= {r.label for r in RULES}
    assert set(PICTURE_CONCEPTS.values()) <= {c.id for c in CONCEPTS}
    assert PICTURE_CONCEPTS["tabla"] == "long_drum" and "cat" not in PICTURE_CONCEPTS  # lions and tigers are not cats
