"""Builders and manifest readers fed what users really have: annotation files in Latin-1, UTF-16 or binary,
non-finite start times, an unclosed quote, file and folder names that are not UTF-8, labels holding a
NUL or a line break, a clip annotated twice. Every problem is listed at once (one DatasetError), nothing
is written then, and a manifest that is written is one that train and the protocols read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seeingsounds.cli.main import main
from seeingsounds.data.builders import build_esc50, build_landscape, build_vggsound, resolve_classes
from seeingsounds.data.manifest import load_dataset, write_manifest
from seeingsounds.data.protocols import get_protocol
from seeingsounds.errors import DatasetError

LATIN1 = b"\xe9"  # "é" in Latin-1: not UTF-8


def tiny_wav(path: Path | bytes) -> Path | bytes:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        sf.write(f, (0.1 * np.sin(np.arange(320) / 5)).astype(np.float32), 16000, format="WAV")
    return path


@pytest.fixture()
def vgg(tmp_path):
    """media/{a,b,c}_000010.wav and an annotation-file writer."""
    media = tmp_path / "media"
    for ytid in ("a", "b", "c"):
        tiny_wav(media / f"{ytid}_000010.wav")

    def annotations(text: str | bytes, name: str = "vggsound.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    return tmp_path, media, annotations


# ------------------------------------------------------------------ encodings


@pytest.mark.parametrize("encoding,expected", [
    ("latin-1", "not UTF-8 text (byte 0xe9 on line 2"),
    ("cp1252", "not UTF-8 text (byte 0xe9 on line 2"),
    ("utf-16-le", "not a text file (binary data, or UTF-16 without a byte-order mark)"),
    ("binary", "not UTF-8 text (byte 0x89 on line 1"),
])
def test_an_annotation_file_in_another_encoding_is_one_named_problem(vgg, encoding, expected, capsys):
    root, media, annotations = vgg
    text = "a,10,dog barking,train\nb,10,caf\u00e9 ambience,train\n"
    data = (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4) if encoding == "binary" else text.encode(encoding)
    path = annotations(data)
    with pytest.raises(DatasetError) as info:
        build_vggsound(path, media, root / "out.csv")
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{path}: {expected}")
    assert not (root / "out.csv").exists()
    assert main(["data", "vggsound", "--annotations", str(path), "--media", str(media), "-o", str(root / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])  # a spreadsheet's "CSV UTF-8" / "Unicode text"
def test_utf8_with_a_bom_and_utf16_with_a_bom_are_read(vgg, encoding):
    root, media, annotations = vgg
    path = annotations("a,10,caf\u00e9 ambience,train\nb,10,dog barking,test\n".encode(encoding))
    report = build_vggsound(path, media, root / "out.csv")
    assert report.matched == 2
    assert (root / "out.csv").read_text(encoding="utf-8") == \
        "path,label\nmedia/a_000010.wav,caf\u00e9 ambience\nmedia/b_000010.wav,dog barking\n"


def test_esc50_meta_and_a_classes_file_in_latin1_are_named(tmp_path):
    esc = tmp_path / "ESC-50"
    tiny_wav(esc / "audio" / "1-1-A-0.wav")
    (esc / "meta").mkdir()
    (esc / "meta" / "esc50.csv").write_bytes(b"filename,fold,target,category,esc10,src_file,take\n"
                                             b"1-1-A-0.wav,1,0,dog,True,1,A\n1-2-A-0.wav,1,0,d" + LATIN1 + b"g,True,1,A\n")
    with pytest.raises(DatasetError, match=r"esc50.csv: not UTF-8 text \(byte 0xe9 on line 3"):
        build_esc50(esc, tmp_path / "e.csv")
    classes = tmp_path / "classes.txt"
    classes.write_bytes(b"dog barking\ncaf" + LATIN1 + b"\n")
    with pytest.raises(DatasetError, match=r"classes.txt: not UTF-8 text \(byte 0xe9 on line 2"):
        resolve_classes(classes)


def test_readers_of_train_and_evaluate_name_an_encoding_problem(tmp_path):
    """The one manifest reader serves load_dataset and the protocols (evaluate --data) alike."""
    tiny_wav(tmp_path / "a.wav")
    for name, data in (("latin.csv", b"path,label\na.wav,caf" + LATIN1 + b"\n"),
                       ("latin.jsonl", b'{"path": "a.wav", "label": "caf' + LATIN1 + b'"}\n'),
                       ("utf16.csv", "path,label\na.wav,dog\n".encode("utf-16-le"))):
        (tmp_path / name).write_bytes(data)
        for read in (lambda p: load_dataset(p, {"dog": "a dog"}), lambda p: get_protocol("landscape").load(p)):
            with pytest.raises(DatasetError) as info:
                read(tmp_path / name)
            assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{tmp_path / name}: not ")


# ------------------------------------------------------------------ rows


def test_every_row_problem_of_an_annotation_file_is_listed_at_once(vgg):
    root, media, annotations = vgg
    path = annotations('a,10,dog barking,train\n'
                       'b,nan,dog barking,train\n'
                       'c,inf,dog barking,train\n'
                       'd,-inf,dog barking,train\n'
                       'e,1e400,dog barking,train\n'
                       'f,2.5,dog barking,train\n'
                       'g,10,"dog\nbarking",train\n'
                       'h,10,dog\x00barking,train\n'
                       ',10,dog barking,train\n'
                       'i,10,,train\n'
                       'j,10\n')
    with pytest.raises(DatasetError) as info:
        build_vggsound(path, media, root / "out.csv")
    problems = info.value.problems
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4", "5", "6", "8", "9", "10", "11", "12"]
    for line, value in ((2, "nan"), (3, "inf"), (4, "-inf"), (5, "1e400"), (6, "2.5")):
        assert f"vggsound.csv:{line}: start_seconds '{value}' is not a whole number of seconds" in problems
    assert "vggsound.csv:8: the label 'dog\\nbarking' holds a line break or another control character" in problems
    assert "vggsound.csv:9: the label 'dog\\x00barking' holds a NUL character" in problems
    assert "vggsound.csv:10: empty ytid" in problems and "vggsound.csv:11: empty label" in problems
    assert problems[-1].startswith("vggsound.csv:12: expected ytid,start_seconds,label,split")
    assert not (root / "out.csv").exists()


def test_a_200_kb_quoted_field_is_named_with_its_line(vgg, capsys):
    root, media, annotations = vgg
    path = annotations('a,10,dog barking,train\nb,10,"' + "x" * 200_000 + '",train\nc,10,dog barking,train\n')
    with pytest.raises(DatasetError) as info:
        build_vggsound(path, media, root / "out.csv")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("vggsound.csv:2: field larger than field limit")
    assert "the rest of the file was not read" in info.value.problems[0]
    # an unclosed quote swallows the rest of the file: the same, named where it began
    path = annotations('a,10,dog barking,train\nb,10,"dog barking,train\n' + "c,10,x,train\n" * 20_000)
    with pytest.raises(DatasetError, match="vggsound.csv:2: field larger than field limit"):
        build_vggsound(path, media, root / "out.csv")
    manifest = root / "m.csv"
    manifest.write_text('path,label\nmedia/a_000010.wav,"' + "y" * 200_000 + '"\n')
    with pytest.raises(DatasetError, match="m.csv:2: field larger than field limit"):
        load_dataset(manifest, {"dog": "a dog"})


def test_manifest_rows_with_a_nul_a_line_break_or_an_unquoted_comma(tmp_path):
    tiny_wav(tmp_path / "a.wav")
    tiny_wav(tmp_path / "b.wav")
    (tmp_path / "m.csv").write_text('path,label\na.wav,"dog\nbarking"\nb\x00.wav,dog\nmy,file.wav,dog\nb.wav,dog,\n')
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "m.csv", {"dog": "a dog"})
    assert sorted(info.value.problems) == [
        "m.csv:3: the label 'dog\\nbarking' holds a line break or another control character",
        "m.csv:4: the path 'b\\x00.wav' holds a NUL character",
        "m.csv:5: 3 fields, the header has 2 (quote a path or label holding a comma)",
    ]
    with pytest.raises(DatasetError) as info:
        get_protocol("landscape").load(tmp_path / "m.csv")
    assert "m.csv:4: the path 'b\\x00.wav' holds a NUL character" in info.value.problems


def test_a_jsonl_path_holding_a_unicode_line_separator_is_one_row(tmp_path):
    name = "rain\u2028night.wav"  # json.dumps(ensure_ascii=False) writes U+2028 as is
    for label in ("dog", "cat"):
        for i in range(2):
            tiny_wav(tmp_path / label / f"{i}{name}")
    rows = [(tmp_path / label / f"{i}{name}", label) for label in ("dog", "cat") for i in range(2)]
    path = write_manifest(tmp_path / "m.jsonl", rows)
    assert len(path.read_text(encoding="utf-8").split("\n")) == 5
    assert len(get_protocol("landscape").load(path).rows) == 4
    assert len(load_dataset(path, {"dog": "a dog", "cat": "a cat"}).clips) == 4


# ------------------------------------------------------------------ file names


def test_names_that_are_not_utf8_are_listed_and_nothing_is_written(tmp_path, capsys):
    media = os.fsencode(tmp_path / "media")
    tiny_wav(media + b"/caf" + LATIN1 + b"_000010.wav")  # an annotated clip
    tiny_wav(media + b"/ok_000010.wav")
    annotations = tmp_path / "vggsound.csv"
    # the annotation names "café" in UTF-8; the file's name is Latin-1: unmatched, shown escaped, no crash
    annotations.write_text("ok,10,dog barking,train\ncaf\u00e9,10,dog barking,train\n", encoding="utf-8")
    report = build_vggsound(annotations, tmp_path / "media", tmp_path / "v.csv")
    assert report.matched == 1 and len(report.unmatched) == 1
    assert "unmatched" in report.summary() and "caf\\xe9_000010.wav" in report.summary()
    # a class folder and a file whose names are not UTF-8
    land = os.fsencode(tmp_path / "land")
    tiny_wav(land + b"/for" + LATIN1 + b"t/1.wav")
    tiny_wav(land + b"/beach/w" + LATIN1 + b"ves.wav")
    tiny_wav(land + b"/beach/ok.wav")
    out = tmp_path / "land.csv"
    with pytest.raises(DatasetError) as info:
        build_landscape(tmp_path / "land", out)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 3 and not out.exists()
    assert "land/beach/w\\xe9ves.wav: the path" in text and "land/for\\xe9t/1.wav: the label 'for\\xe9t' is not UTF-8" in text
    assert main(["data", "landscape", "--media", str(tmp_path / "land"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text (a file or folder name in another encoding): rename it" in err and "Traceback" not in err
    # train's class-folder reader says the same instead of failing later
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "land", {"beach": "a beach", "for\udce9t": "a forest"})
    assert sorted(p.split(": ", 1)[1][:9] for p in info.value.problems) == ["the label", "the path ", "the path "]


# ------------------------------------------------------------------ one clip, two labels


def test_a_clip_annotated_with_two_labels_is_left_out_and_reported(vgg, capsys):
    root, media, annotations = vgg
    path = annotations("a,10,dog barking,train\n"
                       "a,10,cat meowing,train\n"  # the same clip, another label: ambiguous
                       "b,10,dog barking,train\n"
                       "b,10,dog barking,train\n"  # the same clip, the same label: one row
                       "c,10,cat meowing,train\n")
    out = root / "out.csv"
    report = build_vggsound(path, media, out)
    assert (report.annotated, report.matched, report.repeated) == (5, 2, 1)
    assert report.conflicting == [f"{media / 'a_000010.wav'}: cat meowing, dog barking"]
    assert out.read_text() == "path,label\nmedia/c_000010.wav,cat meowing\nmedia/b_000010.wav,dog barking\n"
    text = report.summary()
    assert "matched   2 of 5 annotated clip(s)" in text
    assert "conflict  1 clip(s) annotated with different labels (left out)" in text
    assert "repeated  1 further annotation(s)" in text and "e.g. conflict: " in text
    dataset = load_dataset(out, {"dog barking": "a dog", "cat meowing": "a cat"})  # train reads it as is
    assert sorted(c.label for c in dataset.clips) == ["cat meowing", "dog barking"]
    # the same clip in two official splits would leak test into train: also left out
    path = annotations("a,10,dog barking,train\na,10,dog barking,test\nb,10,dog barking,train\n")
    report = build_vggsound(path, media, out, official_split=True)
    assert report.matched == 1 and report.conflicting == [f"{media / 'a_000010.wav'}: dog barking (test), dog barking (train)"]
    assert main(["data", "vggsound", "--annotations", str(path), "--media", str(media), "-o", str(out), "--json",
                 "--official-split"]) == 0
    assert json.loads(capsys.readouterr().out)["conflicting"] == 1


def test_one_file_reached_twice_is_one_clip(tmp_path):
    """A root given twice, a root inside another, a symlinked file or folder: one row per real file."""
    land = tmp_path / "land"
    tiny_wav(land / "beach" / "1.wav")
    tiny_wav(land / "forest" / "2.wav")
    (land / "beach" / "same.wav").symlink_to(land / "beach" / "1.wav")
    (land / "forest" / "stolen.wav").symlink_to(land / "beach" / "1.wav")  # one file in two classes
    (land / "forest" / "again.wav").symlink_to(land / "forest" / "2.wav")  # one file twice in one class
    elsewhere = tmp_path / "more"
    tiny_wav(elsewhere / "3.wav")
    (land / "forest" / "more").symlink_to(elsewhere, target_is_directory=True)  # a linked folder is followed
    (elsewhere / "loop").symlink_to(land, target_is_directory=True)  # ... once: no endless walk
    out = tmp_path / "l.csv"
    report = build_landscape([land, land, land / "beach"], out)
    assert report.conflicting == [f"{land / 'beach' / '1.wav'}: beach, forest"]
    assert report.repeated == 1 and report.matched == 2
    assert out.read_text() == "path,label\nland/forest/2.wav,forest\nland/forest/more/3.wav,forest\n"
    assert len(load_dataset(out, {"forest": "a forest"}).clips) == 2


def test_manifest_headers_and_json_values_that_would_be_misread(tmp_path):
    tiny_wav(tmp_path / "a.wav")
    tiny_wav(tmp_path / "b.wav")
    caps = {"dog": "a dog"}
    (tmp_path / "twice.csv").write_text("path,label,path\na.wav,dog,b.wav\n")  # which path?
    with pytest.raises(DatasetError, match=r"twice.csv: the header names column\(s\) \['path'\] more than once"):
        load_dataset(tmp_path / "twice.csv", caps)
    (tmp_path / "semi.csv").write_text("path;label\na.wav;dog\n")  # a spreadsheet's regional CSV
    with pytest.raises(DatasetError, match=r"separated by ';'\? write commas"):
        load_dataset(tmp_path / "semi.csv", caps)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"path": "a.wav", "label": ["dog"]}, {"path": None, "label": "dog"}, {"path": "b.wav", "label": True})))
    for read in (lambda p: load_dataset(p, caps), lambda p: get_protocol("landscape").load(p)):
        with pytest.raises(DatasetError) as info:
            read(tmp_path / "m.jsonl")
        wrong = [p for p in info.value.problems if "path and label must be text" in p]
        assert [p.split(":")[1] for p in wrong] == ["1", "2", "3"]
