"""Caption edits f and g by the template engine, the registry and the augmented caption set."""

from __future__ import annotations

import pytest

from seeingsounds.captions.edit import AugmentedCaptions, all_pairs, augmented_captions, available_editors, get_editor
from seeingsounds.captions.templates import STANDARD_DESCRIPTIONS, TemplateEditor
from seeingsounds.errors import ConfigError, DatasetError

T = TemplateEditor()
TRAIN = "a train passing by"

EXPECTED_TRAIN = {
    "low-volume": "a distant train passing by",
    "medium-volume": "a train passing by in the middle distance",
    "high-volume": "a loud train passing by, close up",
    "reverberant": "a train passing by, echoing in a large hall",
    "higher-pitched": "a high-pitched train passing by",
    "lower-pitched": "a low-pitched train passing by",
    "muffled": "a train passing by, muffled, heard through a wall",
    "echoing": "a train passing by, echoing in a tunnel",
    "faster": "a fast train passing by",
    "slower": "a slow train passing by",
}


@pytest.mark.parametrize("description", STANDARD_DESCRIPTIONS)
def test_every_standard_description(description):
    assert T.edit(TRAIN, description) == EXPECTED_TRAIN[description]
    assert T.edit(TRAIN, description) == TemplateEditor().edit(TRAIN, description)  # deterministic


def test_descriptions_are_exactly_the_effects_set_and_all_distinct():
    assert set(STANDARD_DESCRIPTIONS) == set(EXPECTED_TRAIN)
    edited = {T.edit(TRAIN, d) for d in STANDARD_DESCRIPTIONS}
    assert len(edited) == 10 and TRAIN not in edited
    volumes = [T.edit("an owl hooting", f"{v}-volume") for v in ("low", "medium", "high")]
    assert len(set(volumes)) == 3


@pytest.mark.parametrize(
    ("caption", "description", "expected"),
    [
        ("an owl hooting", "low-volume", "a distant owl hooting"),
        ("An owl hooting.", "low-volume", "A distant owl hooting."),
        ("an owl hooting", "high-volume", "a loud owl hooting, close up"),
        ("an owl hooting", "reverberant", "an owl hooting, echoing in a large hall"),
        ("The dog barking!", "faster", "The fast dog barking!"),
        ("the dog barking", "medium-volume", "the dog barking in the middle distance"),
        ("rain falling on a roof", "low-volume", "distant rain falling on a roof"),
        ("Dogs barking", "lower-pitched", "Low-pitched dogs barking"),
        ("TV static", "muffled", "TV static, muffled, heard through a wall"),
        ("a train  passing by . ", "Low volume", "a distant train passing by."),
        ("a train passing by", "LOW_VOLUME", "a distant train passing by"),
        ("a distant train passing by", "low-volume", "a distant train passing by"),  # no "distant distant"
        ("a train passing by", "underwater", "a train passing by, underwater"),  # unknown: generic rule
        ("A train passing by.", "  seen at night. ", "A train passing by, seen at night."),
        # the caption's own article is kept; a new first word gets a/an by sound (letters for abbreviations)
        ("an MRI machine", "reverberant", "an MRI machine, echoing in a large hall"),
        ("an MRI machine", "low-volume", "a distant MRI machine"),
        ("an X-ray machine", "muffled", "an X-ray machine, muffled, heard through a wall"),
        # number words and other determiners keep their place before the adjective
        ("two dogs barking", "low-volume", "two distant dogs barking"),
        ("Some birds chirping.", "faster", "Some fast birds chirping."),
        ("my dog barking", "high-volume", "my loud dog barking, close up"),
    ],
)
def test_articles_capitals_punctuation_unknown(caption, description, expected):
    assert T.edit(caption, description) == expected


def test_edit_many_in_order():
    assert T.edit_many(TRAIN, ["low-volume", "reverberant"]) == "a distant train passing by, echoing in a large hall"
    assert T.edit_many(TRAIN, ["reverberant", "low-volume"]) == "a distant train passing by, echoing in a large hall"
    assert T.edit_many(TRAIN, ["higher-pitched", "low-volume"]) == "a distant high-pitched train passing by"
    assert T.edit_many(TRAIN, []) == TRAIN
    assert T.edit_many(TRAIN, "low-volume") == "a distant train passing by"


def test_empty_inputs_are_errors():
    with pytest.raises(ConfigError, match="empty"):
        T.edit("  ", "low-volume")
    with pytest.raises(ConfigError, match="description"):
        T.edit(TRAIN, " ")


def test_fuse():
    assert T.fuse("a train passing by", "a helicopter hovering") == "a train passing by and a helicopter hovering"
    assert T.fuse("A train passing by.", "An owl hooting.") == "A train passing by and an owl hooting."
    assert T.fuse("a dog barking", "a dog barking") == "a dog barking and another dog barking"
    assert T.fuse("rain falling", "rain falling") == "rain falling"
    assert T.fuse("an MRI machine", "an MRI machine") == "an MRI machine and another MRI machine"
    assert T.fuse("two dogs barking", "an owl hooting") == "two dogs barking and an owl hooting"
    assert T.fuse(T.edit(TRAIN, "low-volume"), "a helicopter hovering") == "a distant train passing by and a helicopter hovering"


@pytest.mark.parametrize(
    ("label", "caption"),
    [
        ("dog_bark", "a dog barking"),
        ("Dog barking", "a dog barking"),
        ("DogBark", "a dog barking"),
        ("owl hooting", "an owl hooting"),
        ("lions roaring", "lions roaring"),
        ("people clapping", "people clapping"),
        ("clock_tick", "a clock ticking"),
        ("baby cry", "a baby crying"),
        ("male speech, man speaking", "a man speaking"),
        ("rail transport", "the sound of rail transport"),
        ("crackling_fire", "the sound of crackling fire"),
        ("Playing acoustic guitar", "the sound of playing acoustic guitar"),
        ("rain", "the sound of rain"),
        # a singular countable noun needs its article (ESC-50 labels)
        ("dog", "the sound of a dog"),
        ("helicopter", "the sound of a helicopter"),
        ("car_horn", "the sound of a car horn"),
        ("engine", "the sound of an engine"),
        ("vacuum_cleaner", "the sound of a vacuum cleaner"),
        ("sea_waves", "the sound of sea waves"),
        ("footsteps on snow", "the sound of footsteps on snow"),
        ("snoring", "the sound of snoring"),
        ("sheep", "the sound of sheep"),
        ("bus", "the sound of a bus"),
        ("MRI beeping", "an MRI beeping"),
        ("TV", "the sound of a TV"),
    ],
)
def test_class_caption(label, caption):
    assert T.class_caption(label) == caption


def test_class_caption_empty_label():
    with pytest.raises(ConfigError, match="empty"):
        T.class_caption(" _ ")


def test_registry():
    assert available_editors() == ["llm", "template"]
    assert isinstance(get_editor("template"), TemplateEditor)
    with pytest.raises(ConfigError, match="choose one of llm, template"):
        get_editor("gpt")
    with pytest.raises(ConfigError, match="'template' does not take model: those are llm options"):
        get_editor("template", model="x")
    with pytest.raises(ConfigError, match="does not take these options"):
        get_editor("template", timeout=3)
    # the options every engine accepts: the template engine is deterministic and needs no cache
    assert isinstance(get_editor("template", cache_path="unused.jsonl", temperature=0.0), TemplateEditor)


def test_registry_resolves_builtins_lazily_without_an_import_cycle():
    """edit.py (the interface) imports no engine; engines are ``module:Class`` strings resolved on use."""
    import ast
    from pathlib import Path

    import seeingsounds.captions.edit as edit

    tree = ast.parse(Path(edit.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("seeingsounds.captions.")}, imported
    assert edit.BUILTIN_EDITORS == {"template": "seeingsounds.captions.templates:TemplateEditor",
                                    "llm": "seeingsounds.captions.llm:LLMEditor"}
    ed = get_editor("llm", base_url="http://127.0.0.1:9/v1")
    assert type(ed).__module__ == "seeingsounds.captions.llm" and ed.temperature == 0.0 and ed.cache_path is None

    class Custom(edit.CaptionEditor):
        def __init__(self, flavour="plain"):
            self.flavour = flavour

        def edit(self, caption, description):
            return f"{caption} ({description})"

        def fuse(self, u, v):
            return f"{u} and {v}"

        def class_caption(self, label):
            return label

    edit.register_editor("custom-test", Custom)
    try:
        assert get_editor("custom-test", flavour="x").flavour == "x"  # no temperature forced on it
    finally:
        del edit._REGISTRY["custom-test"]


def test_augmented_captions_and_json_roundtrip(tmp_path):
    classes = {"train": ["a train passing by", "a tram"], "helicopter": ["a helicopter hovering"], "owl": "an owl hooting"}
    chains = [("low-volume",), "reverberant", ("low-volume", "reverberant"), ("low-volume",)]
    aug = augmented_captions(classes, chains, TemplateEditor(), mix_pairs=all_pairs(list(classes)))
    assert aug.original == {"train": "a train passing by", "helicopter": "a helicopter hovering", "owl": "an owl hooting"}
    assert len(aug.edited) == 3 * 3  # the duplicate chain is kept once
    assert aug.edited[("owl", ("low-volume",))] == "a distant owl hooting"
    assert aug.caption("train", ["low-volume", "reverberant"]) == "a distant train passing by, echoing in a large hall"
    assert aug.caption("train") == "a train passing by"
    assert list(aug.fused) == [("train", "helicopter"), ("train", "owl"), ("helicopter", "owl")]
    assert aug.fused_caption("helicopter", "train") == "a train passing by and a helicopter hovering"
    captions = aug.all_captions()
    assert captions[:3] == ["a train passing by", "a helicopter hovering", "an owl hooting"]
    assert len(captions) == len(set(captions)) == 3 + 9 + 3
    again = augmented_captions(classes, chains, TemplateEditor(), mix_pairs=all_pairs(list(classes)))
    assert again.all_captions() == captions  # deterministic
    path = aug.save(tmp_path / "aug.json")
    loaded = AugmentedCaptions.load(path)
    assert loaded == aug and loaded.all_captions() == captions


def test_augmented_captions_checks_inputs():
    with pytest.raises(DatasetError) as info:
        augmented_captions({"train": ["a train"], "cat": []}, [], T, mix_pairs=[("train", "dog"), ("cow", "train")])
    assert len(info.value.problems) == 3
    with pytest.raises(DatasetError, match="entry 2 has no descriptions"):
        augmented_captions({"train": ["a train"]}, [("low-volume",), ()], T)
    with pytest.raises(DatasetError, match="not an augmented caption set"):
        AugmentedCaptions.from_json('{"edited": []}')
