"""benchmarks/image_level.py's trained parts at tiny size: zero-shot folds and Table 4 variants on the
demo's real recordings (Debian sound packages), the offline preset's real weights and the offline judge.

The figures themselves are the benchmark's; here the folds must hold their classes out of training, the
pictures must be the clips they claim, and chance and the pooled scores must be computed right.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import debian_sounds

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "image_level.py"
#: the demo's three smallest classes: 6, 7 and 9 real recordings
CONCEPTS = ("bell", "robot", "telephone")


@pytest.fixture(scope="module")
def image_level():
    spec = importlib.util.spec_from_file_location("image_level_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_leave_out_folds_hold_every_concept_out_exactly_once(image_level):
    concepts = ["g", "a", "f", "b", "e", "c", "d"]
    folds = image_level.leave_out_folds(concepts, 3, seed=0)
    assert [len(f) for f in folds] == [3, 3, 1]
    assert sorted(c for f in folds for c in f) == sorted(concepts)
    assert image_level.leave_out_folds(concepts, 3, seed=0) == folds  # seeded
    other_seeds = {tuple(f) for s in range(1, 5) for f in image_level.leave_out_folds(concepts, 3, seed=s)}
    assert other_seeds != {tuple(f) for f in folds}
    assert [len(f) for f in image_level.leave_out_folds(concepts, 1, seed=0)] == [1] * 7
    for bad in (0, 7):
        with pytest.raises(ValueError, match="classes_out must be in 1 .. 6"):
            image_level.leave_out_folds(concepts, bad, seed=0)


def test_pooled_scores_weigh_folds_by_their_pictures_and_table_shows_mean_and_std(image_level):
    folds = [{"top1": 1.0, "top5": 1.0, "to_seen": 0.0, "pictures": 1, "chance": 0.25},
             {"top1": 0.0, "top5": 0.5, "to_seen": 1.0, "pictures": 3, "chance": 0.25}]
    assert image_level.pooled(folds) == {"top1": 0.25, "top5": 0.625, "to_seen": 0.75, "pictures": 4, "chance": 0.25}
    table = image_level.table({"a task": [image_level.pooled(folds), {**folds[0], "to_seen": 0.25}]})
    assert table.splitlines()[2] == "| a task | 5 | 0.62 ± 0.38 | 0.81 ± 0.19 | 0.250 | 0.50 ± 0.25 |"


@pytest.fixture(scope="module")
def trained(image_level, tmp_path_factory):
    for name in ("sonic-pi", "tuxpaint", "freedesktop"):
        debian_sounds(name)
    lab = image_level.Lab(tmp_path_factory.mktemp("image-level"), epochs=2, log=lambda _message: None)
    judge = image_level.OfflineJudge()
    further = image_level.further_sounds(lab.encoder.sample_rate)
    cows = [s for s in further if s[1] == "cow"] + [s for s in further if s[1] == "sheep"][:1]
    return {"lab": lab, "clips": [c for c in lab.demo_data(0) if c.label in CONCEPTS], "further": further,
            "zero_shot": image_level.zero_shot(lab, judge, 0, concepts=CONCEPTS, classes_out=1),
            "ablations": image_level.ablations(lab, judge, 0, concepts=CONCEPTS, further=cows,
                                               variants={"only pooled": {"align": "pooled"}, "full": {}})}


def test_zero_shot_folds_train_without_their_held_out_classes(trained, image_level):
    from seeingsounds.data.manifest import load_dataset

    clips, folds = trained["clips"], trained["zero_shot"]["folds"]
    assert sorted(c for fold in folds for c in fold["held_out"]) == sorted(CONCEPTS)
    for k, fold in enumerate(folds):
        assert sorted(fold["trained"] + fold["held_out"]) == sorted(CONCEPTS)
        data = trained["lab"].out / "seed0" / f"zero-shot-{k}-data"
        dataset = load_dataset(data / "manifest.csv", data / "captions.json")
        assert sorted(dataset.labels) == fold["trained"] and sorted(dataset.captions) == fold["trained"]
        assert {c.split for c in dataset.clips} == {"train", "val"}  # the test clips stay out of training
        # every clip of the held-out class becomes a picture; 2 test clips of each trained class
        assert fold["unseen"]["pictures"] == sum(c.label in fold["held_out"] for c in clips)
        assert fold["seen"]["pictures"] == 2 * len(fold["trained"])
        # judged among all 3 concepts: a picture judged as its own (unseen) class is not judged a trained one
        assert fold["unseen"]["chance"] == fold["seen"]["chance"] == pytest.approx(1 / 3)
        assert fold["unseen"]["top1"] + fold["unseen"]["to_seen"] <= 1 + 1e-9
    unseen = trained["zero_shot"]["unseen"]
    assert unseen["pictures"] == len(clips) == 6 + 7 + 9
    hits = sum(f["unseen"]["top1"] * f["unseen"]["pictures"] for f in folds)
    assert unseen["top1"] == pytest.approx(hits / len(clips))


def test_ablations_judge_each_variant_and_the_further_concepts_among_the_right_captions(trained):
    from seeingsounds.data.debian_sounds import PICTURE_CONCEPTS
    from seeingsounds.demo import DEMO_CONCEPTS

    further = trained["further"]
    assert {c for _, c in further} == set(PICTURE_CONCEPTS.values()) - set(DEMO_CONCEPTS)
    assert all(sr == trained["lab"].encoder.sample_rate and 0 < len(w) <= 2 * sr for (sr, w), _ in further)
    results = trained["ablations"]
    assert list(results) == ["only pooled", "full", "further: among all", "further: among unseen"]
    for name in ("only pooled", "full"):
        assert results[name]["pictures"] == 2 * len(CONCEPTS) and results[name]["chance"] == pytest.approx(1 / 3)
        assert 0 <= results[name]["top1"] <= results[name]["top5"] == 1.0  # top-5 of 3 captions always holds
    among_all, among_unseen = results["further: among all"], results["further: among unseen"]
    cows = sum(c == "cow" for _, c in further)
    assert among_all["pictures"] == among_unseen["pictures"] == cows + 1
    assert among_all["chance"] == pytest.approx(1 / 5) and among_unseen["chance"] == pytest.approx(1 / 2)
    assert among_all["top1"] + among_all["to_seen"] <= 1 + 1e-9
