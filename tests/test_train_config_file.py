"""`train --config FILE` starts a new run from a run's config.json or a hand-written JSON/YAML file of
options; the flags given on the command line override it, the flags not given do not."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from conftest import synthetic_train_data, train_args

from seeingsounds.cli.main import build_parser, main
from seeingsounds.errors import ConfigError
from seeingsounds.training.config import TrainConfig

OPTIONS = ("--epochs", "2", "--hidden-dim", "16", "--seed", "3", "--dropout", "0.1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_train_data(tmp_path_factory, "configfile")


@pytest.fixture(scope="module")
def run_a(data, tmp_path_factory):
    """A finished run trained with options that are not the defaults."""
    out = tmp_path_factory.mktemp("runs") / "a"
    assert main(train_args(data, out, *OPTIONS)) == 0
    return out


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if a model is loaded (the config file is checked first)."""
    import seeingsounds.model as model

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the config file was checked")

    monkeypatch.setattr(model, "load_encoder", refuse)
    monkeypatch.setattr(model, "load_backend", refuse)


def saved(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["train"]


def numbers(run: Path) -> list[dict]:
    """metrics.jsonl without the timings."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(run: Path) -> tuple[bytes, bytes]:
    return (run / "best" / "model.safetensors").read_bytes(), (run / "last" / "model.safetensors").read_bytes()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_a_run_started_from_its_config_json_reproduces_it(run_a, tmp_path):
    run_b = tmp_path / "b"
    assert main(["train", "--config", str(run_a / "config.json"), "--out", str(run_b)]) == 0
    a, b = saved(run_a), saved(run_b)
    assert (b["epochs"], b["hidden_dim"], b["seed"], b["dropout"], b["batch_size"]) == (2, 16, 3, 0.1, 8)
    assert {k for k in a if a[k] != b[k]} == {"out"} and b["out"] == str(run_b.resolve())
    assert len(numbers(run_b)) == 2 and numbers(run_b) == numbers(run_a)
    assert weights(run_b) == weights(run_a)


def test_a_flag_given_overrides_the_file_and_only_that_option(run_a, tmp_path):
    run_c = tmp_path / "c"
    assert main(["train", "--config", str(run_a / "config.json"), "--out", str(run_c), "--seed", "4"]) == 0
    a, c = saved(run_a), saved(run_c)
    assert {k: c[k] for k in a if a[k] != c[k]} == {"seed": 4, "out": str(run_c.resolve())}
    assert weights(run_c)[1] != weights(run_a)[1]  # the seed reached the training
    # the new run's config.json records the merged options, so it can itself be rerun
    rerun = TrainConfig.from_file(run_c / "config.json", out=str(tmp_path / "d"))
    assert {**rerun.resolved_paths(), "out": c["out"]} == c


def test_flags_not_given_leave_the_files_values(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("preset: tiny\ndata: d.csv\ncaptions: c.json\nout: o\nepochs: 3\nuse_cache: false\n"
                   "progress: false\nlr-sequence: 1e-4\nbatch-size: 4\n")

    def parsed(*flags: str) -> TrainConfig:
        from seeingsounds.cli.train import config_from_args

        return config_from_args(build_parser().parse_args(["train", "--config", str(exp), *flags]))

    cfg = parsed()
    # not the flags' defaults (epochs 50, cache on, bars on, batch 32); YAML's 1e-4 (a string in YAML 1.1) is a number
    assert (cfg.epochs, cfg.use_cache, cfg.progress, cfg.lr_sequence, cfg.batch_size) == (3, False, False, 1e-4, 4)
    assert (cfg.data, cfg.out) == (str(tmp_path / "d.csv"), str(tmp_path / "o"))
    cfg = parsed("--epochs", "7", "--out", "elsewhere", "--hidden-dim", "8")
    assert (cfg.epochs, cfg.out, cfg.hidden_dim, cfg.batch_size) == (7, "elsewhere", 8, 4)  # a flag's path: as typed
    with exp.open("a") as f:
        f.write("augment: [volume:alpha=0.1]\n")
    assert parsed().augment == [[["volume", {"alpha": 0.1}]]]
    assert parsed("--augment", "reverb").augment == [[["reverb", {}]]]  # the flags' list replaces the file's


def test_a_yaml_file_with_relative_paths_works_from_another_directory(tmp_path, monkeypatch):
    from seeingsounds.data.synthetic import make_synthetic_dataset

    project = tmp_path / "project"
    manifest, captions = make_synthetic_dataset(project / "data", train=2, val=1, test=0, seconds=0.5)
    (project / "exp").mkdir()
    (project / "exp" / "x.yaml").write_text(
        "preset: tiny\ndata: ../data/manifest.csv\ncaptions: ../data/captions.json\nout: ../runs/x\n"
        "epochs: 1\nbatch-size: 8\ncache_dir: ~/features\nprogress: false\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (project / "elsewhere").mkdir()
    monkeypatch.chdir(project / "elsewhere")
    assert main(["train", "--config", "../exp/x.yaml"]) == 0
    run = project / "runs" / "x"
    assert (run / "best" / "model.safetensors").is_file()
    got = saved(run)
    assert (got["data"], got["captions"], got["out"], got["cache_dir"]) == (
        str(manifest.resolve()), str(captions.resolve()), str(run.resolve()), str((tmp_path / "home" / "features")))
    assert any((tmp_path / "home" / "features").iterdir())  # ~ expanded: the features are there
    assert not (project / "elsewhere" / "runs").exists() and not (project / "elsewhere" / "~").exists()


def test_unknown_options_are_one_error_naming_the_file_and_the_nearest_names(tmp_path, capsys, no_models):
    exp = tmp_path / "exp.yaml"
    exp.write_text("preset: tiny\nepoch: 3\nbatch_sise: 8\nno-cache: true\nseed: x\n")
    assert main(["train", "--config", str(exp), "--data", "d.csv", "--captions", "c.json", "--out", "o"]) == 2
    assert one_line_error(capsys) == (
        f"error: --config {exp}: unknown options 'epoch' (did you mean epochs?), 'batch_sise' (did you mean "
        "batch_size or encode_batch_size?), 'no-cache' (the flag --no-cache: write use_cache: false); "
        "seed must be an integer, got 'x'")


def test_a_checkpoints_config_json_is_told_from_a_runs(run_a, capsys, no_models):
    assert main(["train", "--config", str(run_a / "best" / "config.json"), "--out", "o"]) == 2
    assert one_line_error(capsys).endswith(
        "; a run's config.json (in the run folder, not best/ or last/) has a 'train' section")


def test_a_config_that_lacks_a_required_option_needs_its_flag(tmp_path, capsys, no_models):
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps({"preset": "tiny", "data": "d.csv", "captions": "c.json"}))
    assert main(["train", "--config", str(exp)]) == 2
    assert one_line_error(capsys) == (
        f"error: the following arguments are required: --out (neither the command line nor {exp} gives them)")
    assert TrainConfig.from_file(exp, out="o").out == "o"


@pytest.mark.parametrize("content, message", [
    (None, "no such file; check the path"),
    ("folder", "cannot be read"),
    ("- epochs: 3\n", "the file is a list, not a mapping of option: value (or a run's config.json)"),
    ("", "the file is empty, not a mapping"),
    ("epochs: [3\n", "not valid YAML"),
    ("epochs: 3\nepochs: 4\n", "epochs is given twice: keep one"),
    ("batch-size: 3\nbatch_size: 4\n", "batch_size is given twice ('batch-size' and 'batch_size'): keep one"),
    ("target_weights: {prompt_embeds: high}\n", "target_weights must be a mapping of name: weight"),
    ("augment: [[reverb]]\n", "augment must be a list of effect chains like 'volume:alpha=0.35+reverb'"),
    ("preset: {height: 64, height: 32}\n", "preset.height is given twice: keep one"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, capsys, no_models, content, message):
    exp = tmp_path / "exp.yaml"
    if content == "folder":
        exp.mkdir()
    elif content is not None:
        exp.write_text(content)
    assert main(["train", "--config", str(exp), "--preset", "tiny", "--data", "d", "--captions", "c",
                 "--out", "o"]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"error: --config {exp}: ") and message in err


def test_a_bad_value_from_the_file_names_the_file(tmp_path, capsys, no_models):
    exp = tmp_path / "exp.yaml"
    exp.write_text("preset: tiny\ndata: d.csv\ncaptions: c.json\nout: o\nepochs: 0\n")
    assert main(["train", "--config", str(exp)]) == 2
    assert one_line_error(capsys) == (
        f"error: bad training options: epochs must be >= 1, got 0 (options from {exp} and the command line)")


def test_the_command_line_spellings_of_repeated_options_and_odd_encodings_are_read(tmp_path):
    from seeingsounds.training.config import read_config_file

    exp = tmp_path / "exp.yaml"
    text = "augment: [volume:alpha=0.1, volume:alpha=0.35+reverb]\ntarget_weights: [pooled_prompt_embeds=0.5]\n"
    exp.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))  # a Windows editor's "Unicode"
    assert read_config_file(exp) == {"augment": [[["volume", {"alpha": 0.1}]], [["volume", {"alpha": 0.35}],
                                                                              ["reverb", {}]]],
                                     "target_weights": {"pooled_prompt_embeds": 0.5}}
    as_recorded = {"augment": [[["reverb", {"room_size": 0.8}]]], "target_weights": {"prompt_embeds": 2}}
    exp.write_text(json.dumps(as_recorded))  # the form a run's config.json records
    assert read_config_file(exp) == as_recorded
    exp.write_bytes("epochs: 3\ncaptions: café.json\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text .* save the file as UTF-8"):
        read_config_file(exp)


def test_resume_with_config_continues_the_run_exactly(run_a, tmp_path):
    """`--config FILE --resume` continues the run --out names, as when its flags are typed again; the run's
    own config.json is no obstacle for a new run: resume and max_steps are not carried to it."""
    from seeingsounds.training.config import read_config_file

    run_d, config = tmp_path / "d", str(run_a / "config.json")
    assert main(["train", "--config", config, "--out", str(run_d), "--max-steps", "4"]) == 0
    assert len(numbers(run_d)) == 1  # paused during epoch 2 (3 steps an epoch)
    assert main(["train", "--config", config, "--out", str(run_d), "--resume"]) == 0
    assert numbers(run_d) == numbers(run_a) and weights(run_d) == weights(run_a)
    assert saved(run_d)["resume"] is True
    assert not {"resume", "max_steps"} & set(read_config_file(run_d / "config.json"))
    # a run is not resumed with other options
    assert main(["train", "--config", config, "--out", str(run_d), "--resume", "--seed", "9"]) == 2


def test_a_typed_switch_turns_the_files_boolean_either_way(tmp_path):
    """A file's `use_cache: false` or `skip_bad: true` could not be switched back from the command line:
    the boolean flags only went one way (`--no-cache`, `--skip-bad`)."""
    from seeingsounds.cli.train import config_from_args

    exp = tmp_path / "exp.yaml"
    exp.write_text("preset: tiny\ndata: d.csv\ncaptions: c.json\nout: o\nuse_cache: false\nskip_bad: true\n"
                   "progress: false\ncache_augmented: false\n")

    def parsed(*flags: str) -> TrainConfig:
        return config_from_args(build_parser().parse_args(["train", "--config", str(exp), *flags]))

    cfg = parsed()
    assert (cfg.use_cache, cfg.skip_bad, cfg.progress, cfg.cache_augmented) == (False, True, False, False)
    cfg = parsed("--cache", "--no-skip-bad", "--progress", "--no-augment-live")
    assert (cfg.use_cache, cfg.skip_bad, cfg.progress, cfg.cache_augmented) == (True, False, True, True)
    assert parsed("--cache", "--no-cache").use_cache is False  # the last one typed wins
    plain = config_from_args(build_parser().parse_args(["train", "--preset", "tiny", "--data", "d", "--captions", "c",
                                                        "--out", "o", "--skip-bad", "--no-cache", "--augment-live"]))
    assert (plain.skip_bad, plain.use_cache, plain.cache_augmented, plain.progress) == (True, False, False, True)
