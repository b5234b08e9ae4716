"""Third adversarial pass over the training side, as users type things: labels spelled in two Unicode
forms or with doubled spaces, captions and labels files saved with a byte-order mark, an aligner saved
over a training run."""

from __future__ import annotations

import json

import pytest

from seeingsounds.errors import ConfigError


def test_an_aligner_saved_over_a_training_run_is_refused_and_the_run_kept(tmp_path):
    """save_pretrained(run) replaced the run's training config.json by the aligner's, so the run could
    no longer be resumed (`train --resume` then called it 'not a training run')."""
    from seeingsounds.aligner import SeeingSoundsAligner

    aligner = SeeingSoundsAligner(8, [{"name": "a", "shape": [4], "aligned": True}])
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    config = json.dumps({"epochs": 3, "data": {"data": "x.csv"}})
    (run / "config.json").write_text(config)
    (run / "captions.json").write_text("{}")
    with pytest.raises(ConfigError) as info:
        aligner.save_pretrained(run)
    assert str(info.value) == (f"{run} holds a config.json that is not a SeeingSounds checkpoint's (a training "
                               "run's, another project's): save_pretrained would replace it; save to a folder of "
                               "its own")
    assert (run / "config.json").read_text() == config and not (run / "model.safetensors").exists()

    # a new folder, then the same checkpoint folder again (replacing its own files), are fine
    aligner.save_pretrained(tmp_path / "ckpt")
    aligner.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert SeeingSoundsAligner.from_pretrained(tmp_path / "ckpt").input_dim == 8


def _clips(folder, names):
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True)
    for name in names:
        sf.write(folder / name, np.full(1600, 0.1, np.float32), 16000)


def test_labels_typed_in_two_unicode_forms_or_with_doubled_spaces_are_one_class(tmp_path):
    """A class-per-folder tree copied from a Mac names its folders in NFD; the captions file typed
    elsewhere is NFC: the dataset said "'café bell' has no caption in captions.json" while the file
    had it. A manifest's label "low  hum" (two spaces) likewise missed the captions' "low  hum", which
    the captions file collapses to one space."""
    import unicodedata

    from seeingsounds.data.manifest import load_dataset

    tree = tmp_path / "tree"
    for label in ("café bell", "naïve hum"):
        _clips(tree / unicodedata.normalize("NFD", label), ["a.wav", "b.wav"])
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"café bell": "a bell in a café", "naïve hum": "a hum"}, ensure_ascii=False),
                        encoding="utf-8")
    data = load_dataset(tree, captions)
    assert data.labels == ["café bell", "naïve hum"]
    assert [unicodedata.is_normalized("NFC", c.label) for c in data.clips] == [True] * 4
    assert data.captions == {"café bell": ["a bell in a café"], "naïve hum": ["a hum"]}

    _clips(tmp_path / "m" / "audio", ["a.wav", "b.wav"])
    manifest = tmp_path / "m" / "manifest.csv"
    manifest.write_text("path,label\naudio/a.wav,low  hum\naudio/b.wav,\tlow hum \n", encoding="utf-8")
    captions.write_text(json.dumps({"low  hum": "an engine humming"}), encoding="utf-8")
    data = load_dataset(manifest, captions)
    assert [c.label for c in data.clips] == ["low hum", "low hum"] and data.captions == {"low hum": ["an engine humming"]}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_captions_file_saved_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """Windows Notepad's "UTF-8 with BOM" (and "Unicode") captions failed with "Unexpected UTF-8 BOM",
    though manifests saved the same way are read."""
    from seeingsounds.captions.store import load_captions

    path = tmp_path / "captions.json"
    path.write_bytes(json.dumps({"chirp": "a bird singing"}).encode(encoding))
    assert load_captions(path) == {"chirp": ["a bird singing"]}
    yaml_path = tmp_path / "captions.yaml"
    yaml_path.write_bytes("chirp: a bird singing\n".encode(encoding))
    assert load_captions(yaml_path) == {"chirp": ["a bird singing"]}


def test_a_latin1_captions_file_is_one_line_naming_the_line_and_the_fix(tmp_path):
    from seeingsounds.captions.store import load_captions
    from seeingsounds.errors import DatasetError

    path = tmp_path / "captions.json"
    path.write_bytes('{\n "low hum": "a diesel engine",\n "bell": "a bell in a café"\n}\n'.encode("latin-1"))
    with pytest.raises(DatasetError) as info:
        load_captions(path)
    assert info.value.problems == [f"{path}: not UTF-8 text (byte 0xe9 on line 3: invalid continuation byte; "
                                   "Latin-1 or Windows-1252?); save the file as UTF-8"]


def test_captions_init_from_a_labels_file_with_a_bom_and_crlf_gives_labels_a_manifest_matches(tmp_path, capsys):
    """The byte-order mark of a labels file saved by Notepad became part of its first label
    ('\\ufefflow hum'), which then matched no manifest row ("'low hum' has no caption")."""
    from seeingsounds.cli.main import main
    from seeingsounds.data.manifest import load_dataset

    labels = tmp_path / "labels.txt"
    labels.write_bytes("\ufefflow hum\r\ncafe\u0301 bell\r\n\r\n".encode("utf-8"))
    out = tmp_path / "captions.json"
    assert main(["captions", "init", "--labels", str(labels), "-o", str(out)]) == 0
    assert list(json.loads(out.read_text(encoding="utf-8"))) == ["low hum", "café bell"]
    _clips(tmp_path / "audio", ["a.wav", "b.wav"])
    (tmp_path / "m.csv").write_text("path,label\naudio/a.wav,low hum\naudio/b.wav,café bell\n", encoding="utf-8")
    assert load_dataset(tmp_path / "m.csv", out).labels == ["café bell", "low hum"]

    labels.write_bytes("caf\xe9\n".encode("latin-1"))
    assert main(["captions", "init", "--labels", str(labels), "-o", str(tmp_path / "c2.json")]) == 2
    assert "not UTF-8 text (byte 0xe9 on line 1" in capsys.readouterr().err


def test_a_runs_caption_set_passed_as_captions_is_named_as_such(tmp_path):
    """`train --captions runs/x/captions.json` (the run's file is named captions.json too) listed
    "label 'captions' caption 1 is a list, not a string" once per class."""
    from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
    from seeingsounds.captions.store import load_captions
    from seeingsounds.errors import DatasetError

    path = tmp_path / "captions.json"
    path.write_text(CaptionSet([CaptionEntry("a bird singing", "class", ("chirp",)),
                                CaptionEntry("a distant bird", "edited", ("chirp",), ("low-volume",))]).to_json())
    with pytest.raises(DatasetError) as info:
        load_captions(path)
    assert info.value.problems == [f"{path} is a training run's caption set (written by `seeingsounds train`), not a "
                                   "class captions file: pass the captions file the run was trained with (its "
                                   "config.json names it under data.captions)"]
    # a class that happens to be named "captions" is still a class
    path.write_text(json.dumps({"captions": ["a caption", "another"]}))
    assert load_captions(path) == {"captions": ["a caption", "another"]}


def test_a_class_folder_tree_follows_symlinked_folders_and_names_broken_links(tmp_path):
    """A class folder's symlinked sub-folder (clips gathered with `ln -s`) was not followed, so its clips
    were silently left out (or the class "held no audio files"); a broken symlink was dropped without a
    word; macOS's `._clip.wav` resource files were read as clips."""
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    elsewhere = tmp_path / "elsewhere" / "hums"
    _clips(elsewhere, ["x.wav", "y.wav"])
    tree = tmp_path / "tree"
    _clips(tree / "bell", ["a.wav", "b.wav"])
    _clips(tree / "hum", ["own.wav"])
    (tree / "hum" / "more").symlink_to(elsewhere)
    (tree / "hum" / "back").symlink_to("..")  # a link up the tree is not walked again
    (tree / "hum" / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    (tree / "bell" / "._a.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    captions = {"bell": "a bell", "hum": "a hum"}

    with pytest.raises(DatasetError) as info:
        load_dataset(tree, captions)
    assert info.value.problems == [f"hum/gone.wav: {tree}/hum/gone.wav: file not found"]
    data = load_dataset(tree, captions, skip_bad=True, val_fraction=0.0)
    assert sorted(str(c.path.relative_to(tree)) for c in data.clips) == [
        "bell/a.wav", "bell/b.wav", "hum/more/x.wav", "hum/more/y.wav", "hum/own.wav"]
    assert data.skipped == [f"hum/gone.wav: {tree}/hum/gone.wav: file not found"]


@pytest.mark.parametrize("where", ["data", "data/audio", "data/audio/../audio/chirp"])
def test_evaluate_out_holding_the_evaluated_clips_is_refused_before_any_model(where, tmp_path, monkeypatch, capsys):
    """`evaluate --out DATA` wrote report.json, report.md, images/ and grids/ among the dataset's clips
    (and into a class-folder tree, where `train` then finds classes 'images' and 'grids')."""
    from seeingsounds.cli.main import main
    from seeingsounds.data.synthetic import make_synthetic_dataset

    manifest, _ = make_synthetic_dataset(tmp_path / "data", train=1, val=0, test=2)
    (tmp_path / "run" / "best").mkdir(parents=True)  # never loaded: the refusal comes first
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*"))
    monkeypatch.chdir(tmp_path)
    code = main(["evaluate", "--checkpoint", "run", "--protocol", "landscape", "--data", "data/manifest.csv",
                 "--no-images", "--out", where])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: --out {where} holds clips of data/manifest.csv (e.g. data/audio/")
    assert err.rstrip().endswith("reports never go among a dataset's clips; choose a folder of its own "
                                 "(the default is <run>/eval-<protocol>)")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*")) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(data folder, manifest, captions, run)``: a one-epoch tiny run on synthetic clips with a test split."""
    from seeingsounds.cli.main import main
    from seeingsounds.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("trained")
    manifest, captions = make_synthetic_dataset(root / "data", train=3, val=1, test=1)
    run = root / "run"
    assert main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", str(run),
                 "--epochs", "1", "--batch-size", "8", "--cache-dir", str(root / "cache"), "--no-progress"]) == 0
    return root, manifest, captions, run


def test_evaluate_best_or_last_reports_into_the_run_not_into_the_checkpoint(trained, tmp_path, monkeypatch, capsys):
    """`evaluate --checkpoint run/best` wrote its default report into best/eval-<protocol>: inside the
    folder training replaces at its next best epoch (the report lost) and the one that gets shared."""
    import shutil

    from seeingsounds.cli.main import main

    root, manifest, _, trained_run = trained
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    checkpoint_files = {name: sorted(p.name for p in (run / name).iterdir()) for name in ("best", "last")}
    monkeypatch.chdir(tmp_path)
    for checkpoint, report in (("run/best", "run/eval-landscape"), ("run/last/", "run/eval-landscape-last"),
                               ("run", "run/eval-landscape")):
        assert main(["evaluate", "--checkpoint", checkpoint, "--protocol", "landscape", "--data", str(manifest),
                     "--no-images"]) == 0
        assert capsys.readouterr().out.rstrip().endswith(f"report: {report}/report.json")
        assert json.loads((tmp_path / report / "report.json").read_text())["counts"]["clips"] == 5
    assert {name: sorted(p.name for p in (run / name).iterdir()) for name in ("best", "last")} == checkpoint_files

    from seeingsounds.aligner import SeeingSoundsAligner

    SeeingSoundsAligner.from_pretrained(run / "best").save_pretrained(tmp_path / "shared")
    from seeingsounds.evaluation.runner import default_report_folder

    assert default_report_folder(tmp_path / "shared", "esc50") == tmp_path / "shared-eval-esc50"


def test_a_run_folder_moved_or_renamed_can_be_resumed(trained, tmp_path, monkeypatch, capsys):
    """--resume compared the run's recorded --out with the new one, so `mv runs/a "runs/a v2"` made the run
    'differ from the interrupted run's options (out=...)' and it could never be continued."""
    import shutil

    from seeingsounds.cli.main import main

    root, manifest, captions, trained_run = trained
    shutil.copytree(trained_run, tmp_path / "first name")
    (tmp_path / "first name").rename(tmp_path / "new name")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", "new name",
                 "--epochs", "2", "--batch-size", "8", "--cache-dir", str(root / "cache"), "--no-progress",
                 "--resume"]) == 0, capsys.readouterr().err
    assert "resuming new name at epoch 2" in capsys.readouterr().err
    metrics = [json.loads(line) for line in (tmp_path / "new name" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    config = json.loads((tmp_path / "new name" / "config.json").read_text())
    assert config["train"]["out"] == str(tmp_path / "new name")


def test_a_project_moved_or_copied_elsewhere_resumes_and_a_changed_clip_is_still_refused(trained, tmp_path, monkeypatch,
                                                                                         capsys):
    """A project (data + run) moved to another folder or machine could not be resumed: the data and captions
    paths, and every clip's absolute path inside the audio hash, were compared instead of their content."""
    import shutil

    from seeingsounds.cli.main import main

    root, _, _, trained_run = trained
    shutil.copytree(root / "data", tmp_path / "moved" / "data")
    shutil.copytree(trained_run, tmp_path / "moved" / "run")
    monkeypatch.chdir(tmp_path / "moved")
    args = ["train", "--preset", "tiny", "--data", "data/manifest.csv", "--captions", "data/captions.json", "--out", "run",
            "--batch-size", "8", "--cache-dir", str(root / "cache"), "--no-progress", "--resume"]
    assert main([*args, "--epochs", "2"]) == 0, capsys.readouterr().err
    assert "resuming run at epoch 2" in capsys.readouterr().err
    config = json.loads((tmp_path / "moved" / "run" / "config.json").read_text())
    assert config["data"]["data"] == str(tmp_path / "moved" / "data" / "manifest.csv")

    clips = sorted((tmp_path / "moved" / "data" / "audio").rglob("train_0.wav"))
    shutil.copyfile(clips[1], clips[0])  # same path, other sound: not the same data
    assert main([*args, "--epochs", "3"]) == 2
    assert "the data changed since the interrupted run (clips_sha256 differ" in capsys.readouterr().err


def test_captions_show_o_never_replaces_an_existing_file_without_force(tmp_path, capsys):
    """`captions show -o` silently replaced whatever file it named (another captions file, notes, a
    manifest) by the augmented caption set, where `captions init -o` asks for --force."""
    from seeingsounds.cli.main import main

    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"chirp": "a bird singing", "hum": "an engine humming"}), encoding="utf-8")
    other = tmp_path / "other_captions.json"
    other.write_text('{"dog": "a dog barking"}\n', encoding="utf-8")
    assert main(["captions", "show", str(captions), "--descriptions", "low-volume", "-o", str(other)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {other} exists: pass --force to overwrite it"
    assert other.read_text(encoding="utf-8") == '{"dog": "a dog barking"}\n'
    assert main(["captions", "show", str(captions), "--descriptions", "low-volume", "-o", str(other), "--force"]) == 0
    assert json.loads(other.read_text(encoding="utf-8"))["original"] == {"chirp": "a bird singing",
                                                                         "hum": "an engine humming"}


def test_a_manifest_row_typed_in_nfc_finds_a_clip_a_mac_stored_in_nfd(tmp_path):
    """Clips copied from a Mac keep decomposed (NFD) names; a manifest written elsewhere spells them
    composed (NFC): every such row was 'file not found', for train and evaluate alike."""
    import unicodedata

    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.data.protocols import get_protocol

    nfd = unicodedata.normalize("NFD", "café")
    _clips(tmp_path / "audio" / nfd, [f"{nfd} 1.wav", f"{nfd} 2.wav", "plain.wav"])
    _clips(tmp_path / "audio" / "hum", ["1.wav", "2.wav"])
    rows = "".join(f"audio/café/{name},bell,{split}\n"
                   for name, split in (("café 1.wav", "train"), ("café 2.wav", "test"), ("plain.wav", "val")))
    rows += "audio/hum/1.wav,hum,train\naudio/hum/2.wav,hum,test\n"
    (tmp_path / "m.csv").write_text("path,label,split\n" + rows, encoding="utf-8")
    data = load_dataset(tmp_path / "m.csv", {"bell": "a bell", "hum": "a hum"})
    assert all(c.path.exists() for c in data.clips) and len(data.clips) == 5
    assert data.clips[0].path == tmp_path / "audio" / nfd / f"{nfd} 1.wav"
    protocol = get_protocol("landscape").load(tmp_path / "m.csv")
    assert sorted(c.path.name for c in protocol.rows if c.label == "bell") == [f"{nfd} 1.wav", f"{nfd} 2.wav",
                                                                               "plain.wav"]


def test_a_spreadsheet_header_in_capitals_is_read(tmp_path):
    """A manifest saved from a spreadsheet with the header "Path,Label,Split" was refused (missing
    columns ['path', 'label']) though it names them."""
    from seeingsounds.data.manifest import load_dataset

    _clips(tmp_path / "audio", ["a.wav", "b.wav"])
    (tmp_path / "m.csv").write_text("Path,Label,SPLIT\r\naudio/a.wav,bell,train\r\naudio/b.wav,bell,val\r\n",
                                    encoding="utf-8")
    data = load_dataset(tmp_path / "m.csv", {"bell": "a bell"})
    assert [(c.path.name, c.label, c.split) for c in data.clips] == [("a.wav", "bell", "train"), ("b.wav", "bell", "val")]


def test_a_label_that_differs_from_its_caption_only_in_case_is_named_with_the_fix(tmp_path):
    """'Dog' in the manifest and 'dog' in the captions: the problem said only "'Dog' has no caption"."""
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    _clips(tmp_path / "audio", ["a.wav", "b.wav"])
    (tmp_path / "m.csv").write_text("path,label\naudio/a.wav,Dog\naudio/b.wav,cat\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "m.csv", {"dog": "a dog", "cat": "a cat"})
    assert info.value.problems == ["1 label(s) have no caption in the captions: 'Dog' (the captions have 'dog': "
                                   "labels are case-sensitive)"]
    # a mapping's labels are spelled as a captions file's are
    assert load_dataset(tmp_path / "m.csv", {"Dog ": "a dog", "cat": "a cat"}).captions == {"Dog": ["a dog"],
                                                                                            "cat": ["a cat"]}


def test_evaluation_grids_and_image_folders_of_classes_with_one_slug_stay_apart(tmp_path):
    """Labels in another script (狗, 猫) all became grids/class.png and images/class/: each class's grid
    replaced the previous one and the report listed one file for all of them; "Rock Pop" and "rock pop"
    (labels are case-sensitive) shared a grid the same way."""
    from PIL import Image

    from seeingsounds.data.manifest import Clip
    from seeingsounds.evaluation.report import write_grids
    from seeingsounds.evaluation.runner import image_path

    labels = ["狗", "猫", "Rock Pop", "rock pop", "low hum"]
    images = {}
    for i, label in enumerate(labels):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
        images[label] = [[path]]
    grids = write_grids(images, tmp_path / "report")
    assert len(set(grids)) == 5 and "grids/low-hum.png" in grids and "grids/rock-pop.png" in grids
    for label, grid in zip(labels, grids):
        with Image.open(tmp_path / "report" / grid) as im:
            assert im.info["class"] == label
    folders = {image_path(tmp_path, Clip(tmp_path / "a.wav", label), 0).parent.name for label in labels[:2]}
    assert len(folders) == 2


def test_a_run_holding_a_users_notes_is_named_a_run_with_the_file_to_move(trained, tmp_path, capsys):
    """`--resume` into a run where the user left notes.txt said the run was "not a training run"."""
    import shutil

    from seeingsounds.cli.main import main

    root, manifest, captions, trained_run = trained
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "notes.txt").write_text("lr too high?")
    assert main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", str(run),
                 "--epochs", "2", "--batch-size", "8", "--no-progress", "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --out {run} is a training run that also holds notes.txt, which "
                                               "training did not write: move those out of the run folder, then run "
                                               "the command again")
    assert (run / "notes.txt").read_text() == "lr too high?"


def test_data_naming_the_folder_of_a_manifest_says_which_file_to_pass(tmp_path):
    """`--data dataset/` (the folder `seeingsounds data` or the demo wrote its manifest into) was read as
    class folders: "'audio' has no caption", with no word of the manifest beside it."""
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.errors import DatasetError

    _clips(tmp_path / "audio" / "bell", ["a.wav"])
    (tmp_path / "a_notes.csv").write_text("x\n")
    (tmp_path / "manifest.csv").write_text("path,label\naudio/bell/a.wav,bell\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, {"bell": "a bell"})
    assert info.value.problems[-1] == (f"{tmp_path} was read as class folders, but it holds the manifest manifest.csv: "
                                       f"pass --data {tmp_path / 'manifest.csv'} to read it")
    assert load_dataset(tmp_path / "manifest.csv", {"bell": "a bell"}).labels == ["bell"]


def test_checkpoint_dot_inside_best_is_its_run(trained, tmp_path, monkeypatch, capsys):
    """From inside run/best, `--checkpoint .` found no run ("no captions.json ... in . or its parent":
    the parent of "." is "."), for describe and evaluate alike."""
    import shutil

    from seeingsounds.cli.main import main

    root, manifest, _, trained_run = trained
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    clip = next((root / "data" / "audio").rglob("*.wav"))
    monkeypatch.chdir(run / "best")
    assert main(["describe", "--checkpoint", ".", str(clip), "--json"]) == 0, capsys.readouterr().err
    described = json.loads(capsys.readouterr().out)
    assert len(described) == 1 and [m["rank"] for m in described[0]["matches"]] == [1, 2, 3, 4, 5]
    assert main(["evaluate", "--checkpoint", ".", "--protocol", "landscape", "--data", str(manifest), "--no-images"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"report: {run / 'eval-landscape' / 'report.json'}")
    assert sorted(p.name for p in (run / "best").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    # an empty --checkpoint where there is no checkpoint is one line, not a traceback
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--checkpoint", "", "--protocol", "landscape", "--data", str(manifest), "--no-images"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
