"""``seeingsounds captions init|show`` end to end (template engine, in process)."""

from __future__ import annotations

import json

from seeingsounds.captions.edit import AugmentedCaptions
from seeingsounds.captions.store import load_captions
from seeingsounds.cli.main import main


def test_init_writes_captions_from_labels(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("# VGGSound subset\ndog_bark\n\nrail transport\n  owl   hooting \n")
    out = tmp_path / "captions.json"
    assert main(["captions", "init", "--labels", str(labels), "-o", str(out)]) == 0
    assert load_captions(out) == {
        "dog_bark": ["a dog barking"],
        "rail transport": ["the sound of rail transport"],
        "owl hooting": ["an owl hooting"],
    }
    assert "dog_bark: a dog barking" in capsys.readouterr().out
    # refuses to overwrite without --force, and keeps the file
    before = out.read_text()
    assert main(["captions", "init", "--labels", str(labels), "-o", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert out.read_text() == before
    assert main(["captions", "init", "--labels", str(labels), "-o", str(out), "--force"]) == 0


def test_init_bad_labels_and_llm_only_options(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\ndog\ncat\n")
    assert main(["captions", "init", "--labels", str(labels), "-o", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "line 3: label 'dog' already on line 1" in err and "line 4" in err
    assert not (tmp_path / "c.json").exists()
    labels.write_text("dog\n")
    assert main(["captions", "init", "--labels", str(labels), "-o", str(tmp_path / "c.json"), "--model", "x"]) == 2
    assert "--model only apply to --engine llm" in capsys.readouterr().err


def test_show_prints_and_writes_augmented_set(tmp_path, capsys):
    captions = tmp_path / "captions.yaml"
    captions.write_text("train: a train passing by\nhelicopter: [a helicopter hovering, a helicopter in the sky]\n")
    out = tmp_path / "aug.json"
    code = main(["captions", "show", str(captions), "--descriptions", "low-volume,reverberant",
                 "low-volume+echoing", "--mix", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "  train: a train passing by" in printed
    assert "  train [low-volume]: a distant train passing by" in printed
    assert "  helicopter [low-volume+echoing]: a distant helicopter hovering, echoing in a tunnel" in printed
    assert "  train + helicopter: a train passing by and a helicopter hovering" in printed
    assert "9 distinct captions" in printed  # 2 original + 2x3 edited + 1 fused
    aug = AugmentedCaptions.load(out)
    assert aug.caption("helicopter", ["reverberant"]) == "a helicopter hovering, echoing in a large hall"
    assert aug.fused_caption("helicopter", "train") == "a train passing by and a helicopter hovering"
    assert json.loads(out.read_text())["original"] == {"train": "a train passing by", "helicopter": "a helicopter hovering"}


def test_show_all_descriptions_and_unknown_note(tmp_path, capsys):
    captions = tmp_path / "c.json"
    captions.write_text('{"owl": "an owl hooting"}')
    assert main(["captions", "show", str(captions), "--descriptions", "all", "underwater"]) == 0
    result = capsys.readouterr()
    assert "11 edited" not in result.out and "edited captions (11):" in result.out
    assert "owl [underwater]: an owl hooting, underwater" in result.out
    assert "'underwater' is not one of the effects' descriptions" in result.err


def test_show_bad_captions_file(tmp_path, capsys):
    captions = tmp_path / "c.json"
    captions.write_text('{"owl": ""}')
    assert main(["captions", "show", str(captions)]) == 2
    assert "the caption of label 'owl' is empty" in capsys.readouterr().err


def test_init_with_llm_engine_and_cache(tmp_path, capsys):
    from test_captions_llm import FakeOpenAI

    labels = tmp_path / "labels.txt"
    labels.write_text("dog_bark\nrail transport\n")
    out = tmp_path / "captions.json"
    server = FakeOpenAI()
    try:
        args = ["captions", "init", "--labels", str(labels), "-o", str(out), "--engine", "llm",
                "--base-url", server.url, "--model", "fake", "--timeout", "2"]
        assert main(args) == 0
        assert load_captions(out)["dog_bark"] == ["LLM<Class label: dog_bark>"]
        assert len(server.requests) == 2
        assert (tmp_path / "captions.llm-cache.jsonl").is_file()
        server.mode = "500"  # the cache answers: no request, same file
        assert main([*args, "--force"]) == 0
        assert len(server.requests) == 2
        labels.write_text("dog_bark\nowl hooting\n")  # new label, endpoint failing, fallback asked for
        assert main([*args, "--force", "--fallback", "--attempts", "1"]) == 0
        assert load_captions(out)["owl hooting"] == ["an owl hooting"]
        assert "1 caption(s) came from the template engine" in capsys.readouterr().err
    finally:
        server.stop()
