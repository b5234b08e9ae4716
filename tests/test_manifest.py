"""Datasets: manifests, class-per-folder trees, seeded splits, and every validation error at once."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from conftest import sine

SR = 16000


def wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(freq, 0.2, SR), SR)
    return path


def captions_file(tmp_path: Path, mapping: dict) -> Path:
    p = tmp_path / "captions.json"
    p.write_text(json.dumps(mapping))
    return p


def test_csv_manifest_with_splits_and_relative_paths(tmp_path):
    from seeingsounds.data.manifest import load_dataset

    wav(tmp_path / "a" / "1.wav")
    wav(tmp_path / "a" / "2.wav")
    wav(tmp_path / "b" / "1.wav")
    absolute = wav(tmp_path / "elsewhere" / "x.wav")
    (tmp_path / "m.csv").write_text(
        f"path,label,split\na/1.wav,dog,train\na/2.wav,dog,val\nb/1.wav,cat,train\n{absolute},bird,test\n")
    ds = load_dataset(tmp_path / "m.csv", captions_file(tmp_path, {"dog": "a dog", "cat": ["a cat", "a kitten"]}))
    assert [c.path for c in ds.train] == [tmp_path / "a" / "1.wav", tmp_path / "b" / "1.wav"]
    assert [c.label for c in ds.val] == ["dog"] and ds.test[0].path == absolute
    assert ds.labels == ["cat", "dog"]  # test-only labels are not trained (and need no caption)
    assert ds.captions == {"cat": ["a cat", "a kitten"], "dog": ["a dog"]}
    assert "2 classes, 2 train / 1 val clips (1 test clips left untouched)" == ds.summary()
    assert len(ds.fingerprint()["data_sha256"]) == 64


def test_jsonl_and_folder_tree(tmp_path):
    from seeingsounds.data.manifest import load_dataset

    for label in ("dog", "cat"):
        for i in range(10):
            wav(tmp_path / "tree" / label / f"{i}.wav")
    caps = captions_file(tmp_path, {"dog": "a dog", "cat": "a cat"})
    tree = load_dataset(tmp_path / "tree", caps)
    assert Counter((c.label, c.split) for c in tree.clips) == {("dog", "train"): 9, ("dog", "val"): 1,
                                                               ("cat", "train"): 9, ("cat", "val"): 1}
    lines = [json.dumps({"path": f"tree/dog/{i}.wav", "label": "dog"}) for i in range(3)]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n\n")
    ds = load_dataset(tmp_path / "m.jsonl", caps)
    assert len(ds.clips) == 3 and ds.labels == ["dog"]


def test_seeded_stratified_split(tmp_path):
    from seeingsounds.data.manifest import assign_splits, load_dataset

    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 3 + ["d"]
    s0 = assign_splits(labels, seed=0, val_fraction=0.1)
    assert s0 == assign_splits(labels, seed=0, val_fraction=0.1)
    assert s0 != assign_splits(labels, seed=1, val_fraction=0.1)
    per = Counter((lb, s) for lb, s in zip(labels, s0))
    assert per[("a", "val")] == 2 and per[("b", "val")] == 1 and per[("c", "val")] == 0 and per[("d", "train")] == 1
    # a single-clip class keeps its clip in train even with a large val fraction
    s = assign_splits(["x", "y", "y"], seed=0, val_fraction=0.9)
    assert s[0] == "train" and sorted(s[1:]) == ["train", "val"]
    # adding a class does not change the others' split
    assert assign_splits(labels + ["e"] * 5, seed=0, val_fraction=0.1)[: len(labels)] == s0
    with pytest.raises(Exception, match="val_fraction"):
        assign_splits(labels, seed=0, val_fraction=1.0)
    for i in range(5):
        wav(tmp_path / f"{i}.wav")
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{i}.wav,a\n" for i in range(5)))
    caps = captions_file(tmp_path, {"a": "x"})
    a = load_dataset(tmp_path / "m.csv", caps, seed=3, val_fraction=0.4)
    b = load_dataset(tmp_path / "m.csv", caps, seed=3, val_fraction=0.4)
    assert [c.split for c in a.clips] == [c.split for c in b.clips] and len(a.val) == 2


def test_every_problem_is_reported_at_once(tmp_path):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    wav(tmp_path / "ok1.wav")
    wav(tmp_path / "ok2.wav")
    wav(tmp_path / "ok3.wav")
    wav(tmp_path / "ok4.wav")
    (tmp_path / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "m.csv").write_text(
        "path,label,split\n"
        "ok1.wav,dog,train\n"
        "ok1.wav,dog,train\n"          # duplicate row
        "missing.wav,dog,train\n"      # missing file
        "garbage.wav,dog,train\n"      # unreadable
        "empty.wav,dog,train\n"        # empty file
        "ok2.wav,cat,training\n"       # bad split value
        "ok3.wav,owl,train\n"          # no caption
        "ok4.wav,emu,val\n"            # no caption, and no train clip
        ",dog,train\n"                 # empty path
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "m.csv", captions_file(tmp_path, {"dog": "a dog", "cat": "a cat"}))
    problems = info.value.problems
    text = "\n".join(problems)
    assert len(problems) == 8, text
    assert "m.csv:3: duplicate row for ok1.wav (first at m.csv:2)" in text
    assert "missing.wav: file not found" in text
    assert "garbage.wav: unreadable or corrupt audio" in text  # load_audio's reason, word for word
    assert "empty.wav: the file is empty (zero length)" in text
    assert "split 'training' is not one of train, val, test" in text
    assert "2 label(s) have no caption" in text and "'emu'" in text and "'owl'" in text
    assert "class 'emu' has no train clip" in text
    assert "m.csv:10: empty path" in text
    assert str(info.value).startswith(f"the dataset {tmp_path / 'm.csv'} has problems (8)")


def test_manifest_format_problems(tmp_path):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    caps = captions_file(tmp_path, {"dog": "a dog"})
    (tmp_path / "m.csv").write_text("file,class\nx.wav,dog\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['path', 'label'\]"):
        load_dataset(tmp_path / "m.csv", caps)
    wav(tmp_path / "x.wav")
    (tmp_path / "m.jsonl").write_text('{"path": "x.wav", "label": "dog"}\nnot json\n{"path": "x.wav"}\n[1, 2]\n')
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "m.jsonl", caps)
    assert [p.split(":")[1] for p in info.value.problems] == ["2", "3", "4"]
    assert "missing field(s) ['label']" in info.value.problems[1]
    with pytest.raises(DatasetError, match="must be .csv or .jsonl"):
        load_dataset(caps, caps)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv", caps)
    (tmp_path / "e.csv").write_text("path,label\n")
    with pytest.raises(DatasetError, match="the dataset is empty"):
        load_dataset(tmp_path / "e.csv", caps)
    with pytest.raises(DatasetError, match="captions"):
        load_dataset(tmp_path / "m.jsonl", tmp_path / "no-captions.json")


def test_folder_tree_problems(tmp_path):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    wav(tmp_path / "tree" / "dog" / "1.wav")
    (tmp_path / "tree" / "cat").mkdir()
    (tmp_path / "tree" / "cat" / "notes.txt").write_text("no audio here")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "tree", captions_file(tmp_path, {"cat": "a cat"}))
    text = "\n".join(info.value.problems)
    assert "class 'cat': folder" in text and "holds no audio files" in text
    assert "1 label(s) have no caption" in text and "'dog'" in text
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset(tmp_path / "flat", captions_file(tmp_path, {"cat": "a cat"}))


def test_skip_bad_prints_a_summary_and_drops_nothing_else(tmp_path):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    wav(tmp_path / "ok1.wav")
    wav(tmp_path / "ok2.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    (tmp_path / "m.csv").write_text("path,label\nok1.wav,dog\nok2.wav,cat\nbad.wav,dog\nmissing.wav,cat\n")
    caps = captions_file(tmp_path, {"dog": "a dog", "cat": "a cat"})
    log = io.StringIO()
    ds = load_dataset(tmp_path / "m.csv", caps, skip_bad=True, log=log)
    assert sorted(c.path.name for c in ds.clips) == ["ok1.wav", "ok2.wav"]
    assert "skipping 2 unusable audio file(s)" in log.getvalue()
    assert "bad.wav" in log.getvalue() and "missing.wav" in log.getvalue()
    assert len(ds.skipped) == 2
    # other problems are still errors with skip_bad
    (tmp_path / "m2.csv").write_text("path,label\nok1.wav,dog\nok1.wav,dog\nbad.wav,owl\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "m2.csv", caps, skip_bad=True, log=io.StringIO())
    text = "\n".join(info.value.problems)
    assert "duplicate row" in text and "class 'owl' has no usable clip left" in text


def test_yaml_captions_and_write_manifest(tmp_path):
    from seeingsounds.data.manifest import Clip, load_dataset, write_manifest

    wav(tmp_path / "a.wav")
    (tmp_path / "c.yaml").write_text("dog:\n  - a dog barking\n  - a puppy\n")
    path = write_manifest(tmp_path / "sub" / "m.csv", [Clip(tmp_path / "a.wav", "dog", "train")])
    ds = load_dataset(path, tmp_path / "c.yaml")
    assert ds.captions == {"dog": ["a dog barking", "a puppy"]} and ds.clips[0].path.resolve() == tmp_path / "a.wav"


def test_bom_blank_lines_and_encoding_problems(tmp_path):
    """Spreadsheet "CSV UTF-8" (BOM) reads; problems name the right line; non-UTF-8 is one clear problem."""
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    wav(tmp_path / "a.wav")
    caps = captions_file(tmp_path, {"dog": "a dog"})
    (tmp_path / "m.csv").write_text("path,label\na.wav,dog\n", encoding="utf-8-sig")
    assert [c.label for c in load_dataset(tmp_path / "m.csv", caps).clips] == ["dog"]
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a.wav", "label": "dog"}) + "\n", encoding="utf-8-sig")
    assert [c.label for c in load_dataset(tmp_path / "m.jsonl", caps).clips] == ["dog"]
    (tmp_path / "blank.csv").write_text("path,label\n\na.wav,dog\n\nmissing.wav,dog\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "blank.csv", caps)
    assert info.value.problems == [f"blank.csv:5: {tmp_path / 'missing.wav'}: file not found"]
    (tmp_path / "latin1.csv").write_bytes("path,label\nb\xe9.wav,dog\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(tmp_path / "latin1.csv", caps)


def test_a_zero_byte_wav_gets_load_audios_one_message_from_the_dataset_check(tmp_path):
    from seeingsounds.audio.io import load_audio
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import AudioLoadError, DatasetError

    wav(tmp_path / "ok.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,label\nok.wav,dog\nempty.wav,dog\n")
    with pytest.raises(AudioLoadError) as loaded:  # what describe / generate / the cache say
        load_audio(tmp_path / "empty.wav", target_sr=16000)
    with pytest.raises(DatasetError) as checked:  # what train and cache warm say
        load_dataset(tmp_path / "m.csv", {"dog": "a dog"})
    assert checked.value.problems == [f"m.csv:3: {tmp_path / 'empty.wav'}: {loaded.value.reason}"]
    assert loaded.value.reason == "the file is empty (zero length)"
