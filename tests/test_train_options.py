"""Training options are declared once, on TrainConfig's fields: the `train` flags, the config built from
them, the `cache` flags it shares and the resume check all derive from that declaration."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from seeingsounds.cli.main import build_parser
from seeingsounds.errors import ConfigError
from seeingsounds.training.config import TrainConfig

REQUIRED = ["--preset", "tiny", "--data", "d.csv", "--captions", "c.json", "--out", "o"]
#: `train --help`'s options before the options were declared on the fields (base 67e70ba) ...
FORMER_FLAGS = {
    "--preset", "--data", "--captions", "--out", "--epochs", "--batch-size", "--lr-sequence", "--lr-pooled",
    "--weight-decay", "--patience", "--seed", "--val-fraction", "--max-steps", "--resume", "--skip-bad", "--device",
    "--dtype", "--num-workers", "--no-progress", "--no-cache", "--cache-dir", "--cache-dtype", "--align",
    "--pooling", "--order", "--hidden-dim", "--weight", "--augment", "--mix-pairs", "--mix-ratio",
    "--augment-weight", "--mix-weight", "--caption-engine", "--llm-base-url", "--llm-model", "--llm-temperature",
    "--llm-cache", "--augment-live", "--target-memory-gb",
}
#: ... and the three fields that had no flag then
NEW_FLAGS = {"--min-delta", "--dropout", "--encode-batch-size"}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_field_has_exactly_one_flag_and_nothing_else():
    actions = [a for a in subparser("train")._actions if a.option_strings and a.dest not in ("help", "config")]
    dests = [a.dest for a in actions]
    assert sorted(dests) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert len(set(dests)) == len(dests)
    # a boolean option also has its opposite (--skip-bad / --no-skip-bad, --no-cache / --cache)
    assert {a.option_strings[0] for a in actions} == FORMER_FLAGS | NEW_FLAGS
    assert {a.dest: a.option_strings[1:] for a in actions if len(a.option_strings) > 1} == {
        "skip_bad": ["--no-skip-bad"], "use_cache": ["--cache"], "resume": ["--no-resume"],
        "progress": ["--progress"], "cache_augmented": ["--no-augment-live"]}


def test_parsing_only_the_required_options_gives_the_config_defaults():
    from seeingsounds.cli.train import config_from_args

    cfg = config_from_args(build_parser().parse_args(["train", *REQUIRED]))
    assert cfg == TrainConfig(preset="tiny", data="d.csv", captions="c.json", out="o")
    assert (cfg.epochs, cfg.use_cache, cfg.progress, cfg.cache_augmented, cfg.target_weights, cfg.augment) == (
        50, True, True, True, {}, [])



def test_a_required_option_missing_is_one_line_naming_its_flag(capsys):
    from seeingsounds.cli.main import main

    assert main(["train", *REQUIRED[2:6]]) == 2  # --preset and --out missing (no --config to give them)
    assert capsys.readouterr().err == "error: the following arguments are required: --preset, --out\n"


def test_every_flag_reaches_its_field():
    from seeingsounds.cli.train import config_from_args

    args = ["--epochs", "3", "--batch-size", "4", "--lr-sequence", "0.5", "--lr-pooled", "0.25", "--weight-decay", "0",
            "--patience", "2", "--min-delta", "0.01", "--seed", "7", "--val-fraction", "0.2", "--skip-bad",
            "--no-cache", "--cache-dir", "feats", "--cache-dtype", "float32", "--resume", "--align", "pooled",
            "--pooling", "average", "--order", "pool_first", "--hidden-dim", "8", "--dropout", "0.1",
            "--weight", "pooled_prompt_embeds=0.5", "--weight", "prompt_embeds=2", "--device", "cpu",
            "--dtype", "fp32", "--num-workers", "1", "--encode-batch-size", "5", "--max-steps", "9", "--no-progress",
            "--augment", "volume:alpha=0.1", "--augment", "volume:alpha=0.35+reverb", "--mix-pairs", "6",
            "--mix-ratio", "0.3", "--augment-weight", "2", "--mix-weight", "3", "--caption-engine", "llm",
            "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--llm-temperature", "0.5",
            "--llm-cache", "llm.json", "--augment-live", "--target-memory-gb", "1.5"]
    got = config_from_args(build_parser().parse_args(["train", *REQUIRED, *args])).to_dict()
    defaults = TrainConfig(preset="tiny", data="d.csv", captions="c.json", out="o").to_dict()
    assert {k for k in got if got[k] != defaults[k]} == set(defaults) - {"preset", "data", "captions", "out"}
    assert got["target_weights"] == {"pooled_prompt_embeds": 0.5, "prompt_embeds": 2.0}
    assert got["augment"] == [[["volume", {"alpha": 0.1}]], [["volume", {"alpha": 0.35}], ["reverb", {}]]]
    assert (got["use_cache"], got["progress"], got["cache_augmented"], got["skip_bad"]) == (False, False, False, True)
    assert (got["min_delta"], got["dropout"], got["encode_batch_size"], got["target_memory_gb"]) == (0.01, 0.1, 5, 1.5)


def test_a_bad_weight_is_a_config_error_naming_the_fix(capsys):
    from seeingsounds.cli.main import main

    assert main(["train", *REQUIRED, "--weight", "x0.5"]) == 2
    assert capsys.readouterr().err == "error: --weight 'x0.5': write NAME=W, e.g. pooled_prompt_embeds=0.5\n"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", *REQUIRED, "--device", "tpu"])


def test_choices_match_the_modules_that_check_them():
    from seeingsounds import aligner, cache, devices, model
    from seeingsounds.training import config

    assert config.ORDERS == aligner.ORDERS and config.POOLINGS == aligner.POOLINGS
    assert config.ALIGN_CHOICES == model.ALIGN_CHOICES and config.CACHE_DTYPES == tuple(cache.CACHE_DTYPES)
    assert config.DEVICES == devices.DEVICES
    assert set(config.COMPUTE_DTYPES) - {"auto"} <= set(devices.DTYPES)


def test_resumable_options_are_the_declared_ones():
    assert set(TrainConfig.RESUMABLE_CHANGES) == {
        "resume", "data", "captions", "out", "epochs", "max_steps", "progress", "num_workers", "device", "cache_dir",
        "patience", "encode_batch_size", "llm_base_url", "llm_cache", "target_memory_gb", "dtype"}
    assert TrainConfig.PATH_FIELDS == ("data", "captions", "out", "cache_dir", "llm_cache")


def test_a_resumable_change_is_accepted_and_another_refused(tmp_path, monkeypatch):
    from seeingsounds.presets import get_preset
    from seeingsounds.runs import RunFolder
    from seeingsounds.training.state import check_same_options, option_differences, trains_same_run

    monkeypatch.chdir(tmp_path)
    tiny = get_preset("tiny").to_dict()
    cfg = TrainConfig(preset="tiny", data="d.csv", captions="c.json", out="run", seed=1)
    (tmp_path / "run").mkdir()
    saved = {"train": cfg.resolved_paths(), "preset": tiny}
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    run = RunFolder(tmp_path / "run")
    again = TrainConfig(**{**cfg.to_dict(), "out": str(tmp_path / "run"), "data": "./sub/../d.csv", "resume": True,
                           "epochs": 80, "device": "cpu", "max_steps": 3, "progress": False, "dtype": "fp32"})
    assert trains_same_run(again, tiny, saved) and check_same_options(again, tiny, run) == saved
    other = TrainConfig(**{**again.to_dict(), "seed": 2, "dropout": 0.5})
    assert option_differences(other, tiny, saved) == ["seed=2 (run: 1)", "dropout=0.5 (run: 0.0)"]
    assert not trains_same_run(other, tiny, saved)
    with pytest.raises(ConfigError, match=r"--resume: .*seed=2 \(run: 1\); dropout=0.5 \(run: 0.0\)$"):
        check_same_options(other, tiny, run)
    assert option_differences(again, {**tiny, "height": 64}, saved) == ["preset 'tiny': height=64 (run: 32)"]


def test_cache_shares_the_train_options_it_has():
    train, cache = options_of(subparser("train")), options_of(subparser("cache"))
    shared = {"preset", "data", "captions", "cache_dir", "cache_dtype", "skip_bad", "dtype", "progress", "augment"}
    assert shared <= set(cache)
    for dest in shared - {"augment"}:  # `cache --augment` says what it caches
        a, b = train[dest], cache[dest]
        assert (a.option_strings, a.choices, type(a)) == (b.option_strings, b.choices, type(b)), dest
        assert (a.help or "").startswith(b.help or ""), dest  # train adds "(required unless --config gives it)"
        # train leaves a flag not given out of args (so that --config's value stands) and checks the required
        # ones itself, knowing whether --config gives them
        assert (a.default, a.required) == (argparse.SUPPRESS, False), dest
    args = build_parser().parse_args(["cache", *REQUIRED[:6], "--no-progress", "--augment", "reverb"])
    assert (args.progress, args.augment, args.dtype, args.batch_size) == (False, ["reverb"], "auto", 16)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cache", *REQUIRED[:6], "--dtype", "fp8"])


def test_on_epoch_gets_each_metrics_record_instead_of_a_log_line(tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.data.synthetic import make_synthetic_dataset
    from seeingsounds.training.trainer import Trainer

    manifest, captions = make_synthetic_dataset(tmp_path / "data", train=2, val=1, test=0, seconds=0.5)
    cfg = TrainConfig(preset="tiny", data=manifest, captions=captions, out=tmp_path / "run", epochs=2, batch_size=8,
                      cache_dir=tmp_path / "cache", progress=False)
    lines: list[str] = []
    records: list[dict] = []
    Trainer(cfg, encoder=tiny_encoder, backend=tiny_backend, log=lines.append, on_epoch=records.append).fit()
    saved = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records == saved
    assert records[0]["best"] is True and records[1]["val_loss"] > 0
    assert not [line for line in lines if line.startswith("epoch ")]


def test_the_parser_reads_the_options_without_loading_torch():
    import subprocess
    import sys

    code = ("import sys; from seeingsounds.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'seeingsounds.training.trainer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("field", ["data", "captions", "out", "cache_dir"])
def test_an_empty_path_is_refused_not_read_as_the_working_directory(field):
    values = {"preset": "tiny", "data": "d.csv", "captions": "c.json", "out": "o", field: " "}
    with pytest.raises(ConfigError, match=f"{field} is an empty path"):
        TrainConfig(**values)


def test_cache_with_an_empty_data_path_is_one_line(tmp_path, monkeypatch, capsys):
    """`cache --data ""` scanned the working directory as a class-folder tree."""
    from seeingsounds.cli.main import main

    (tmp_path / "dog").mkdir()  # a folder that would read as a class
    monkeypatch.chdir(tmp_path)
    assert main(["cache", "--preset", "tiny", "--data", "", "--captions", "c.json"]) == 2
    assert "the data path is empty; name a manifest or class folder" in capsys.readouterr().err
