"""Manifest builders on fake layouts named as the real datasets name their files (renamed, missing, stray and
duplicate files included): exact counts, the rows written, and that train's and the protocols' loaders accept
the manifest as is."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_video_fixtures import encode_media

from seeingsounds.cli.main import main
from seeingsounds.data.builders import (
    build_esc50,
    build_landscape,
    build_ravdess,
    build_vegas,
    build_vggsound,
    ravdess_fields,
)
from seeingsounds.data.manifest import load_dataset
from seeingsounds.data.protocols import get_protocol
from seeingsounds.errors import ConfigError, DatasetError


def tiny_wav(path: Path, *, seconds: float = 0.02, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format=fmt)
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ VGGSound


@pytest.fixture(scope="module")
def vggsound_layout(tmp_path_factory):
    """All 50 vggsound50 classes x 2 clips + an out-of-subset class, in every naming a mirror uses."""
    root = tmp_path_factory.mktemp("vggsound")
    media = root / "media"
    classes = list(get_protocol("vggsound50").classes)
    rows: list[list[str]] = []
    mp4 = encode_media(root / "template.mp4", "mp4", seconds=0.2)  # a real H.264 + AAC clip, copied below
    for c, label in enumerate(classes):
        for k in range(2):
            i = 2 * c + k
            ytid, start = f"-x{i:03d}_Yt{c}", 10 * k + 3
            rows.append([ytid, str(start), label, "train" if k == 0 else "test"])
            naming = i % 5
            if naming == 0:  # in a class folder, as some mirrors sort them
                (media / label).mkdir(parents=True, exist_ok=True)
                shutil.copy(mp4, media / label / f"{ytid}_{start:06d}.mp4")
            elif naming == 1:
                tiny_wav(media / f"{ytid}_{start}.wav")
            elif naming == 2:
                tiny_wav(media / "audio" / f"{ytid}.flac")
            elif naming == 3:
                tiny_wav(media / f"{ytid}_{start:06d}_{start + 10:06d}.wav")
            else:  # a video and its extracted audio: the audio is listed
                (media / "video").mkdir(parents=True, exist_ok=True)
                shutil.copy(mp4, media / "video" / f"{ytid}_{start:06d}.mp4")
                tiny_wav(media / "audio" / f"{ytid}_{start:06d}.wav")
    # out of the 50-class subset; one of its files exists
    rows.append(["zzOther01", "0", "zebra braying", "train"])
    tiny_wav(media / "zzOther01_000000.wav")
    # annotated, no file anywhere
    rows.append(["gone00001", "30", classes[0], "train"])
    rows.append(["gone00002", "40", classes[1], "test"])
    # one id annotated twice: a bare {ytid}.wav cannot say which clip it is
    rows.append(["twice0001", "0", classes[2], "train"])
    rows.append(["twice0001", "20", classes[2], "train"])
    tiny_wav(media / "twice0001.wav")
    tiny_wav(media / "notes" / "stray_recording.wav")  # no annotation names it
    (media / "notes" / "readme.txt").write_text("not media")
    annotations = root / "vggsound.csv"
    with open(annotations, "w", newline="") as f:  # the official file: no header, labels with commas quoted
        csv.writer(f).writerows(rows)
    return root, annotations, media, classes


def test_vggsound50_manifest_counts_rows_and_both_loaders_accept_it(vggsound_layout):
    root, annotations, media, classes = vggsound_layout
    out = root / "vggsound50.csv"
    report = build_vggsound(annotations, media, out, classes="vggsound50")
    assert report.annotated == 100 + 5
    assert report.matched == 100 and report.excluded == 1
    assert sorted(report.missing) == sorted([f"gone00001 at 30 s ({classes[0]})", f"gone00002 at 40 s ({classes[1]})",
                                             f"twice0001 at 0 s ({classes[2]})", f"twice0001 at 20 s ({classes[2]})"])
    assert sorted(p.name for p in report.unmatched) == ["stray_recording.wav", "twice0001.wav"]
    assert len(report.duplicates) == 20 and all(p.suffix == ".mp4" for p in report.duplicates)
    assert report.per_class == {c: 2 for c in sorted(classes)} and report.empty_classes == []
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label"] and len(rows) == 100  # no split column by default
    assert {r["label"] for r in rows} == set(classes)  # the protocol's names ("railroad car, train wagon")
    suffixes = sorted({Path(r["path"]).suffix for r in rows})
    assert suffixes == [".flac", ".mp4", ".wav"]
    assert all(not Path(r["path"]).is_absolute() for r in rows)  # media below the manifest: relative paths
    assert "-x004_Yt2_000003.wav" in {Path(r["path"]).name for r in rows}  # extracted audio beats the video
    text = report.summary()
    assert "matched   100 of 105" in text and "missing   4" in text and "unmatched 2" in text
    assert "gone00001 at 30 s" in text and "stray_recording.wav" in text

    data = get_protocol("vggsound50").load(out)
    assert len(data.classes) == 50 and len(data.split("test")) == 50 and len(data.split("train")) == 50
    protocol = get_protocol("vggsound50")
    dataset = load_dataset(out, protocol.default_captions())  # train's loader opens every file (mp4 included)
    assert len(dataset.clips) == 100 and len(dataset.labels) == 50


def test_vggsound_official_split_and_no_subset(vggsound_layout, tmp_path):
    _, annotations, media, classes = vggsound_layout
    out = tmp_path / "all.csv"
    report = build_vggsound(annotations, media, out, official_split=True, check_audio=True)
    assert report.matched == 101 and report.excluded == 0 and report.unreadable == []
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "split"]
    assert {r["split"] for r in rows} == {"train", "test"}
    assert sum(r["label"] == "zebra braying" for r in rows) == 1
    assert all(Path(r["path"]).is_absolute() for r in rows)  # media not below the manifest's folder


def test_vggsound_cli_prints_the_report_and_never_overwrites_the_annotations(vggsound_layout, capsys, tmp_path):
    root, annotations, media, _ = vggsound_layout
    before = annotations.read_bytes()
    out = tmp_path / "v.csv"
    assert main(["data", "vggsound", "--annotations", str(annotations), "--media", str(media), "-o", str(out),
                 "--classes", "vggsound50"]) == 0
    printed = capsys.readouterr().out
    assert "matched   100 of 105" in printed and len(read_rows(out)) == 100
    assert main(["data", "vggsound", "--annotations", str(annotations), "--media", str(media),
                 "-o", str(root / "." / "vggsound.csv")]) == 2  # the brief's own example, same folder
    assert "is also an input" in capsys.readouterr().err
    assert annotations.read_bytes() == before
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own,spreadsheet\n1,2,3\n")
    with pytest.raises(ConfigError, match="not a manifest"):
        build_vggsound(annotations, media, notes)
    assert notes.read_text() == "my,own,spreadsheet\n1,2,3\n"
    with pytest.raises(ConfigError, match="unknown protocol"):
        build_vggsound(annotations, media, out, classes="vggsound51")


def test_vggsound_with_nothing_found_writes_nothing(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "vggsound.csv").write_text("abc,0,dog barking,train\n")
    with pytest.raises(DatasetError, match="nothing written"):
        build_vggsound(tmp_path / "vggsound.csv", tmp_path / "media", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    (tmp_path / "bad.csv").write_text("abc,thirty,dog barking,train\n")
    with pytest.raises(DatasetError, match="not a number"):
        build_vggsound(tmp_path / "bad.csv", tmp_path / "media", tmp_path / "out.csv")


# ------------------------------------------------------------------ VEGAS


def test_vegas_class_folders_with_mirror_names(tmp_path):
    media = tmp_path / "VEGAS" / "data"
    for folder, n in (("Baby_cry", 3), ("Rail_transport", 2), ("dog", 2), ("Water_flowing", 1), ("Chainsaw", 2)):
        for k in range(n):
            tiny_wav(media / folder / "audio" / f"{folder.lower()}_{k:04d}.wav")
    shutil.move(media / "Chainsaw", touch(media / "train" / ".keep").parent / "Chainsaw")  # a split folder above
    shutil.copy(media / "dog" / "audio" / "dog_0000.wav", touch(media / "dog" / "video" / "dog_0000.mp4"))
    tiny_wav(media / "unsorted" / "clip.wav")  # no folder names a class
    tiny_wav(media / "train" / "loose.wav")  # a split folder is no class (not "rail transport")
    out = tmp_path / "vegas.csv"
    report = build_vegas(media.parent, out)
    assert report.matched == 10 and len(report.duplicates) == 1
    assert sorted(p.name for p in report.unmatched) == ["clip.wav", "loose.wav"]
    assert report.per_class == {"baby crying": 3, "chainsaw": 2, "dog": 2, "rail transport": 2, "water flowing": 1}
    assert report.empty_classes == ["drum", "fireworks", "helicopter", "printer", "snoring"]
    assert {r["label"] for r in read_rows(out)} == set(report.per_class)
    assert load_dataset(out, get_protocol("vegas").default_captions(list(report.per_class))).summary().startswith("5 classes")


def test_vegas5_subset_at_protocol_size_is_accepted(tmp_path):
    media = tmp_path / "VEGAS"
    five = ["Baby_cry", "Dog", "Drum", "Fireworks", "Helicopter"]
    for folder in five + ["Printer"]:
        for k in range(850):
            touch(media / folder / f"{k:05d}.mp4")
    (tmp_path / "five.txt").write_text("baby crying\ndog\ndrum\nfireworks\nhelicopter\n")
    out = tmp_path / "vegas5.csv"
    report = build_vegas(media, out, classes=tmp_path / "five.txt")
    assert report.matched == 5 * 850 and report.excluded == 850 and report.empty_classes == []
    data = get_protocol("vegas5").load(out)
    assert data.classes == ["baby crying", "dog", "drum", "fireworks", "helicopter"]
    assert len(data.split("test")) == 5 * 50 and len(data.split("train")) == 5 * 800
    with pytest.raises(ConfigError, match="not VEGAS classes: kazoo"):
        build_vegas(media, out, classes=["dog", "kazoo"])


# ------------------------------------------------------------------ ESC-50


def _esc50_layout(root: Path) -> list[str]:
    classes = list(get_protocol("esc50").classes)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    names = []
    for target, category in enumerate(classes):
        for k in range(40):
            name = f"{k % 5 + 1}-{100000 + 100 * target + k}-A-{target}.wav"
            lines.append(f"{name},{k % 5 + 1},{target},{category},{'True' if target < 10 else 'False'},"
                         f"{100000 + 100 * target + k},A")
            names.append(name)
            stored = root / "audio" / name
            touch(stored.with_suffix(".flac") if k == 7 else stored)  # a mirror re-encoded a few
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return names


def test_esc50_from_meta_csv_and_the_zero_shot_protocol(tmp_path):
    root = tmp_path / "ESC-50-master"
    names = _esc50_layout(root)
    out = tmp_path / "esc50.csv"
    report = build_esc50(root, out)
    assert report.annotated == 2000 and report.matched == 2000 and not report.missing and not report.unmatched
    rows = read_rows(out)
    assert sum(r["path"].endswith(".flac") for r in rows) == 50
    assert {r["label"] for r in rows} == set(get_protocol("esc50").classes)  # "chirping_birds" as the protocol names it
    data = get_protocol("esc50").load(out)
    assert len(data.split("test")) == 2000 and not data.split("train")

    (root / "audio" / names[0]).unlink()
    touch(root / "audio" / "1-999999-A-0.wav")
    report = build_esc50(root, out, esc10=True)
    assert report.matched == 399 and report.excluded == 1600
    assert report.missing == [f"{names[0]} (dog)"] and [p.name for p in report.unmatched] == ["1-999999-A-0.wav"]
    build_esc50(root, out)
    with pytest.raises(DatasetError, match="40 clips per class; these differ: dog"):
        get_protocol("esc50").load(out)  # the protocol's own check of what the report counted


# ------------------------------------------------------------------ RAVDESS


def test_ravdess_emotions_from_file_names(tmp_path):
    media = tmp_path / "RAVDESS"
    for actor in (1, 2):
        for emotion in range(1, 9):
            for statement in (1, 2):
                intensity = "01" if emotion == 1 else "02"
                stem = f"01-{emotion:02d}-{intensity}-{statement:02d}-01-{actor:02d}"
                tiny_wav(media / f"Actor_{actor:02d}" / f"03-{stem}.wav")  # audio only
                if statement == 1 and actor == 1:
                    shutil.copy(media / f"Actor_{actor:02d}" / f"03-{stem}.wav",
                                touch(media / "Video_Speech" / f"01-{stem}.mp4"))  # audio-video twin
                    touch(media / "Video_Speech" / f"02-{stem}.mp4")  # video only: no sound
    tiny_wav(media / "Actor_03" / "03-02-05-01-01-01-03.wav")  # song
    tiny_wav(media / "Actor_03" / "01-01-03-01-01-01-03.wav")  # an audio-video-only recording, as wav here
    tiny_wav(media / "Actor_03" / "03-01-09-01-01-01-03.wav")  # emotion 09 does not exist
    tiny_wav(media / "readme.wav")
    assert ravdess_fields("03-01-05-01-02-01-12.wav")["emotion"] == "05"
    out = tmp_path / "ravdess.csv"
    report = build_ravdess(media, out, channel="speech")
    assert report.matched == 2 * 8 * 2 + 1 and report.excluded == 1
    assert report.skipped == {"video-only (modality 02: no sound)": 8}
    assert len(report.duplicates) == 8 and all(p.name.startswith("01-") for p in report.duplicates)
    assert sorted(p.name for p in report.unmatched) == ["03-01-09-01-01-01-03.wav", "readme.wav"]
    rows = read_rows(out)
    by_name = {Path(r["path"]).name: r["label"] for r in rows}
    assert by_name["03-01-05-02-01-01-01.wav"] == "angry" and by_name["03-01-01-01-02-01-02.wav"] == "neutral"
    assert by_name["01-01-03-01-01-01-03.wav"] == "happy"
    assert report.per_class["happy"] == 5 and report.per_class["surprised"] == 4
    data = get_protocol("ravdess").load(out)
    assert data.classes == list(get_protocol("ravdess").classes) and len(data.split("test")) == 8
    assert len(load_dataset(out, get_protocol("ravdess").default_captions()).clips) == 33
    assert build_ravdess(media, tmp_path / "all.csv").matched == 34


# ------------------------------------------------------------------ Landscape


def test_landscape_class_folders_from_two_roots(tmp_path):
    landscape, wild = tmp_path / "Landscape", tmp_path / "IntoTheWild"
    for k in range(3):
        tiny_wav(landscape / "waterfall" / f"w{k}.wav")
        tiny_wav(landscape / "thunder" / f"t{k}.flac", fmt="FLAC")
    tiny_wav(wild / "Waterfall" / "sub" / "w9.wav")  # the same class, spelled otherwise
    tiny_wav(wild / "fire_crackling" / "f0.wav")
    tiny_wav(wild / "fire_crackling" / "f1.wav")
    tiny_wav(landscape / "loose.wav")  # not in a class folder
    out = tmp_path / "landscape.jsonl"
    report = build_landscape([landscape, wild], out)
    assert report.per_class == {"fire_crackling": 2, "thunder": 3, "waterfall": 4}
    assert [p.name for p in report.unmatched] == ["loose.wav"] and report.matched == 9
    data = get_protocol("landscape").load(out)
    assert data.classes == ["fire_crackling", "thunder", "waterfall"] and len(data.split("test")) == 3
    captions = get_protocol("landscape").default_captions(data.classes)
    assert load_dataset(out, captions).summary().startswith("3 classes")
    subset = build_landscape([landscape, wild], tmp_path / "two.csv", classes=["Waterfall", "thunder"])
    assert subset.per_class == {"Waterfall": 4, "thunder": 3} and subset.excluded == 2  # the fire_crackling clips
