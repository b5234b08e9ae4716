"""Benchmark protocols: shipped class lists, split logic, manifest validation, reference numbers."""

from __future__ import annotations

import json

import pytest

from seeingsounds.data.protocols import (
    available_protocols,
    class_text,
    get_protocol,
    reference_numbers,
    seeded_order,
)
from seeingsounds.errors import ConfigError, DatasetError


def _manifest(tmp_path, rows, name="m.csv", touch=True, header="path,label"):
    lines = [header]
    for row in rows:
        if touch:
            (tmp_path / row[0]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / row[0]).write_bytes(b"")
        lines.append(",".join(f'"{x}"' if "," in x else x for x in row))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_registry_and_shipped_class_lists():
    assert available_protocols() == ["esc50", "landscape", "ravdess", "vegas", "vegas5", "vggsound50"]
    vgg = get_protocol("vggsound50")
    assert len(vgg.classes) == 50 == len(set(vgg.classes))
    assert vgg.classes[0] == "airplane flyby" and vgg.classes[-1] == "woodpecker pecking tree"
    assert "railroad car, train wagon" in vgg.classes  # names with commas survive
    assert len(get_protocol("vegas").classes) == 10
    esc = get_protocol("ESC-50")
    assert len(esc.classes) == 50 == len(set(esc.classes)) and "door_wood_creaks" in esc.classes
    assert get_protocol("ravdess").classes == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    with pytest.raises(ConfigError, match="unknown protocol"):
        get_protocol("imagenet")


def test_reference_numbers_are_the_papers():
    assert get_protocol("vggsound50").reference == {"AIC": 66.64, "R@5": 91.60}
    assert get_protocol("esc50").reference == {"AIC": 22.60, "R@5": 41.35}
    assert get_protocol("ravdess").reference == {"AIC": 35.39, "AIS": 51.41}
    assert get_protocol("landscape").reference == {"AIC": 79.13, "AIS": 76.16}
    ablations = {r["variant"]: r["AIC"] for r in reference_numbers()["ablations"]["rows"]}
    assert ablations["Only T5 alignment"] == 91.00 and ablations["Only CLIP alignment"] == 51.10


def test_default_captions_rule(tmp_path):
    esc = get_protocol("esc50")
    caps = esc.default_captions()
    assert len(caps) == 50 and caps["door_wood_creaks"] == "a photo of door wood creaks"
    assert get_protocol("ravdess").default_captions()["sad"] == "a close-up photo of a person's face showing sad emotion"
    with pytest.raises(ConfigError, match="manifest"):
        get_protocol("landscape").default_captions()
    path = esc.write_captions(tmp_path / "c.json")
    assert json.loads(path.read_text())["dog"] == "a photo of dog"
    assert class_text("sea_waves") == "sea waves"


def test_seeded_ratio_split_is_reproducible(tmp_path):
    rows = [(f"a/{i:02d}.wav", "happy") for i in range(20)] + [(f"b/{i:02d}.wav", "sad") for i in range(3)]
    rows += [(f"c/{i}.wav", c) for i, c in enumerate(get_protocol("ravdess").classes[4:] * 2)]
    rows += [(f"d/{i}.wav", c) for i, c in enumerate(["neutral", "calm"] * 2)]
    data = get_protocol("ravdess").load(_manifest(tmp_path, rows), seed=0)
    test = [r for r in data.split("test") if r.label == "happy"]
    assert len(test) == 2 and len([r for r in data.split("train") if r.label == "happy"]) == 18
    assert len([r for r in data.split("test") if r.label == "sad"]) == 1  # max(1, round(0.3))
    again = get_protocol("ravdess").load(tmp_path / "m.csv", seed=0)
    assert [r.path for r in again.rows] == [r.path for r in data.rows]
    other = get_protocol("ravdess").load(tmp_path / "m.csv", seed=1)
    assert [r.path for r in other.split("test")] != [r.path for r in data.split("test")]
    # the seeded order is numpy's default_rng permutation of the path-sorted clips
    happy = [r for r in data.rows if r.label == "happy"]
    order = seeded_order(happy, 0)
    assert [r.path for r in test] == [r.path for r in order[:2]]


def test_eval_rows_take_n_per_class_and_limit_round_robin(tmp_path):
    rows = [(f"{c}/{i:02d}.wav", c) for c in ("x", "y", "z") for i in range(70)]
    data = get_protocol("landscape").load(_manifest(tmp_path, rows))
    assert data.classes == ["x", "y", "z"]
    evaluation = data.evaluation_rows()
    assert len(evaluation) == 15  # 5 test audios per class (7 test clips each)
    assert [r.label for r in data.evaluation_rows(limit=4)] == ["x", "y", "z", "x"]


def test_manifest_split_column_is_respected_and_checked(tmp_path):
    rows = [(f"{c}/{i}.wav", c, "test" if i == 0 else "train") for c in ("dog", "cat") for i in range(4)]
    good = get_protocol("landscape").load(_manifest(tmp_path, rows, header="path,label,split"))
    assert len(good.split("test")) == 2
    rows = [(f"{c}/{i}.wav", c, "train") for c in ("dog", "cat") for i in range(3)] + [("x.wav", "dog", "dev")]
    with pytest.raises(DatasetError) as err:
        get_protocol("landscape").load(_manifest(tmp_path, rows, name="bad.csv", header="path,label,split"))
    text = str(err.value)
    assert "'dev'" in text and "no test clip: cat, dog" in text


def test_wrong_manifest_lists_every_problem(tmp_path):
    esc = get_protocol("esc50")
    rows = [(f"dog/{i}.wav", "dog") for i in range(40)] + [(f"c/{i}.wav", "Sea Waves") for i in range(39)]
    rows += [("u/1.wav", "unicorn"), ("u/2.wav", "unicorn"), ("dog/0.wav", "dog")]
    path = _manifest(tmp_path, rows)
    (tmp_path / "c" / "0.wav").unlink()
    with pytest.raises(DatasetError) as err:
        esc.load(path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "listed twice" in text
    assert "'unicorn' (2)" in text  # unknown labels, counted
    assert "48 esc50 class(es) have no clip" in text  # missing classes
    assert "sea_waves (39)" in text  # wrong count ("Sea Waves" matched the class sea_waves)
    assert "1 audio file(s) not found" in text
    assert len(problems) == 5


def test_counts_protocol_needs_enough_clips_and_takes_800_50(tmp_path):
    vegas = get_protocol("vegas")
    rows = [(f"{c}/{i:03d}.wav", c) for c in vegas.classes for i in range(851)]
    data = vegas.load(_manifest(tmp_path, rows, touch=False), check_files=False)
    assert len(data.split("test")) == 500 and len(data.split("train")) == 8000  # one clip per class left out
    short = [(f"{c}/{i:03d}.wav", c) for c in vegas.classes for i in range(100)]
    with pytest.raises(DatasetError, match="at least 850 clips per class"):
        vegas.load(_manifest(tmp_path, short, name="short.csv", touch=False), check_files=False)


def test_vegas5_takes_five_vegas_classes_from_the_manifest(tmp_path):
    five = ["dog", "drum", "fireworks", "helicopter", "baby crying"]
    rows = [(f"{c}/{i:03d}.wav", c) for c in five for i in range(850)]
    data = get_protocol("vegas-5").load(_manifest(tmp_path, rows, touch=False), check_files=False)
    assert data.classes == sorted(five)
    four = [(f"{c}/{i:03d}.wav", c) for c in five[:4] for i in range(850)] + [("x.wav", "kazoo")]
    with pytest.raises(DatasetError) as err:
        get_protocol("vegas5").load(_manifest(tmp_path, four, name="four.csv", touch=False), check_files=False)
    assert "exactly 5 classes" in str(err.value) and "'kazoo'" in str(err.value)


def test_zero_shot_puts_everything_in_test_and_jsonl_works(tmp_path):
    esc = get_protocol("esc50")
    path = tmp_path / "esc.jsonl"
    path.write_text("\n".join(json.dumps({"path": f"/data/{c}/{i}.wav", "label": c}) for c in esc.classes for i in range(40)))
    data = esc.load(path, check_files=False)
    assert len(data.split("test")) == 2000 and not data.split("train")
    assert len(data.evaluation_rows()) == 2000


def test_missing_manifest_and_bad_header(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        get_protocol("esc50").load(tmp_path / "none.csv")
    (tmp_path / "h.csv").write_text("file,class\na.wav,dog\n")
    with pytest.raises(DatasetError, match="path and label"):
        get_protocol("esc50").load(tmp_path / "h.csv")


def test_bom_manifests_are_read_and_spelled_duplicates_caught(tmp_path):
    rows = [(f"{c}/{i}.wav", c) for c in ("dog", "cat") for i in range(3)]
    path = _manifest(tmp_path, rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a spreadsheet's UTF-8 export
    assert len(get_protocol("landscape").load(path).rows) == 6
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\ufeff" + "\n".join(json.dumps({"path": p, "label": c}) for p, c in rows), encoding="utf-8")
    assert len(get_protocol("landscape").load(jsonl).rows) == 6
    # the same clip spelled twice would land in train and test
    dup = _manifest(tmp_path, rows + [("./dog/0.wav", "dog"), ("cat/../dog/1.wav", "dog")], name="dup.csv")
    with pytest.raises(DatasetError) as err:
        get_protocol("landscape").load(dup)
    assert str(err.value).count("listed twice") == 2
