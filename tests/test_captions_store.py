"""Captions file: JSON/YAML loading, validation (all problems at once), atomic save."""

from __future__ import annotations

import json
import os

import pytest

from seeingsounds.captions.store import load_captions, missing_labels, save_captions
from seeingsounds.errors import DatasetError


def test_load_json_string_and_list(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dog barking": "a dog  barking\n", " rail transport ": ["a train passing by", "a tram"]}))
    assert load_captions(path) == {
        "dog barking": ["a dog barking"],
        "rail transport": ["a train passing by", "a tram"],
    }


def test_load_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dog: a dog barking\nhelicopter:\n  - a helicopter hovering\n  - a helicopter in the sky\n")
    assert load_captions(path) == {"dog": ["a dog barking"], "helicopter": ["a helicopter hovering", "a helicopter in the sky"]}
    assert load_captions(tmp_path / "c.yaml") == load_captions(path)


def test_every_problem_listed_at_once_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"dog": "", "cat": 3, "cow": [], "hen": ["ok", null, "  "], "dog  ": "again", "owl": {"x": "y"},'
        ' "pig": ["oink", "oink"], "good": "fine"}'
    )
    with pytest.raises(DatasetError) as info:
        load_captions(path)
    problems = info.value.problems
    assert len(problems) == 8, problems
    text = "\n".join(problems)
    assert "the caption of label 'dog' is empty" in text and "\nlabel 'dog' is empty" not in "\n" + text
    assert "'cat': caption is a int" in text
    assert "'cow': the caption list is empty" in text
    assert "'hen' caption 2 is nothing" in text
    assert "'hen' caption 3 is empty" in text
    assert "label 'dog  ' duplicates label 'dog'" in text
    assert "'owl': caption is a mapping" in text
    assert "'pig' caption 2 repeats caption 'oink'" in text
    assert "(8)" in str(info.value) and str(path) in str(info.value)


def test_exact_duplicate_keys_detected_json_and_yaml(tmp_path):
    j = tmp_path / "d.json"
    j.write_text('{"dog": "a dog", "dog": "another dog"}')
    y = tmp_path / "d.yml"
    y.write_text("dog: a dog\ndog: another dog\n1: a number label\n")
    with pytest.raises(DatasetError, match="'dog' appears twice"):
        load_captions(j)
    with pytest.raises(DatasetError) as info:
        load_captions(y)
    assert len(info.value.problems) == 2
    assert "label 1 is a int, not a string: quote it" in info.value.problems[1]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", "[1, 2]", "is a list, not a mapping"),
        ("a.json", "{", "not valid JSON"),
        ("a.yaml", "", "is empty, not a mapping"),
        ("a.yaml", "dog: [unclosed", "not valid YAML"),
        ("a.json", "{}", "no labels"),
        ("a.txt", "dog: x", "name the file *.json, *.yaml or *.yml"),
    ],
)
def test_bad_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError, match=message.replace("*", r"\*").replace("[", r"\[")):
        load_captions(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_captions(tmp_path / "nope.json")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_roundtrip_atomic(tmp_path, suffix):
    path = tmp_path / "sub" / f"c{suffix}"
    mapping = {"dog": "a dog barking", "train": ["a train passing by", "a distant train"]}
    save_captions(path, mapping)
    assert load_captions(path) == {"dog": ["a dog barking"], "train": ["a train passing by", "a distant train"]}
    assert os.listdir(path.parent) == [path.name]  # no temporary files left


def test_save_rejects_bad_mapping_and_keeps_old_file(tmp_path):
    path = tmp_path / "c.json"
    save_captions(path, {"dog": "a dog"})
    before = path.read_text()
    with pytest.raises(DatasetError) as info:
        save_captions(path, {"dog": "", "cat": None})
    assert len(info.value.problems) == 2
    assert path.read_text() == before


def test_missing_labels_sorted_unique_normalised():
    captions = {"dog": ["a dog"], "rail transport": ["a train"]}
    assert missing_labels(captions, ["zebra", "rail  transport", "cat", "dog", "cat"]) == ["cat", "zebra"]
    assert missing_labels(captions, ["dog"]) == []
