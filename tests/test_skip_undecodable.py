"""--skip-bad also skips clips whose header reads but whose data does not decode (a truncated FLAC, NaN
samples): recorded once beside the cache entry, the same clips dropped by every process and every start."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import items_of, sine, synthetic_train_data, train_args

from seeingsounds.cli.main import main

SR = 16000


def write_undecodable(folder: Path) -> tuple[Path, Path]:
    """``trunc.flac`` (a whole header, its frames cut after a third) and ``nan.wav`` (float samples, some NaN):
    both pass the header check that --skip-bad already did, neither decodes."""
    from seeingsounds.data.manifest import _audio_problem

    folder.mkdir(parents=True, exist_ok=True)
    noise = (np.random.default_rng(0).standard_normal(2 * SR) * 0.1).astype(np.float32)
    sf.write(folder / "whole.flac", noise, SR)
    whole = (folder / "whole.flac").read_bytes()
    (folder / "trunc.flac").write_bytes(whole[: len(whole) // 3])
    samples = sine(440.0, 1.5, SR)
    samples[1000:1100] = np.nan
    sf.write(folder / "nan.wav", samples, SR, subtype="FLOAT")
    assert _audio_problem(folder / "trunc.flac") is None and _audio_problem(folder / "nan.wav") is None
    return folder / "trunc.flac", folder / "nan.wav"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The synthetic dataset (20 train / 5 val clips) plus a truncated FLAC (train) and a NaN WAV (val),
    both of the first class; its own feature cache."""
    root, manifest, captions = synthetic_train_data(tmp_path_factory, "undecodable")
    trunc, nan = write_undecodable(root / "bad")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    label = rows[0]["label"]
    lines = ["path,label,split"] + [f"{root / r['path']},{r['label']},{r['split']}" for r in rows]
    lines += [f"{trunc},{label},train", f"{nan},{label},val"]
    bad_manifest = root / "with-bad.csv"
    bad_manifest.write_text("\n".join(lines) + "\n")
    return root, bad_manifest, captions


def test_train_fails_naming_the_file_then_skip_bad_skips_lists_and_resumes(data, tmp_path, capsys):
    root, manifest, captions = data
    args = train_args(data, tmp_path / "run", "--epochs", "2", "--batch-size", "4")
    # without --skip-bad: one line naming the clip that does not decode, as before
    assert main(train_args(data, tmp_path / "plain")) == 2
    err = capsys.readouterr().err
    assert ("trunc.flac" in err or "nan.wav" in err) and "Traceback" not in err

    assert main([*args, "--skip-bad", "--max-steps", "3"]) == 0
    out, err = capsys.readouterr()
    assert "skipping 2 audio file(s) that cannot be decoded (--skip-bad), with the 1 train and 1 validation" in err
    assert f"{root / 'bad' / 'trunc.flac'}: corrupt audio data" in err
    assert f"{root / 'bad' / 'nan.wav'}: the audio contains NaN or infinite samples" in err
    assert "stopped after 3 steps" in err
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert [Path(line.split(": ")[0]).name for line in record["data"]["undecodable"]] == ["nan.wav", "trunc.flac"]
    assert len(list((root / "cache" / "audio").rglob("*.failed"))) == 2

    # --resume: the recorded failures drop the same pairs without decoding anything again
    assert main([*args, "--skip-bad", "--resume"]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert ", 0 misses, 2 that cannot be decoded" in err and "trunc.flac: corrupt audio data" in err
    # 20 train clips in batches of 4: 5 steps an epoch (6 had the truncated clip been kept)
    assert "finished after 2 epochs, 10 steps" in out
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics if "val_loss" in m] == [1, 2]
    assert all(np.isfinite(m["val_loss"]) and np.isfinite(m["train_loss"]) for m in metrics if "val_loss" in m)

    # the markers do not hide a bad clip from a run without --skip-bad
    assert main(train_args(data, tmp_path / "strict")) == 2
    err = capsys.readouterr().err
    assert "trunc.flac" in err or "nan.wav" in err


@pytest.mark.parametrize("use_cache, cache_augmented", [(True, True), (True, False), (False, True)])
def test_every_pair_of_an_undecodable_clip_is_dropped(data, tmp_path, tiny_encoder, tiny_backend, use_cache,
                                                      cache_augmented):
    """Class clips, their augmented copies and every mix with them as clip or partner, with the cache
    (augmented copies cached or encoded live) and without (each file decoded once before training)."""
    from seeingsounds.training import TrainConfig, Trainer
    from seeingsounds.training import pairs as P

    root, manifest, captions = data
    logged: list[str] = []
    cfg = TrainConfig(preset="tiny", data=manifest, captions=captions, out=tmp_path / "run", epochs=1,
                      cache_dir=tmp_path / "cache", use_cache=use_cache, cache_augmented=cache_augmented,
                      progress=False, skip_bad=True, augment=[[["volume", {"alpha": 0.1}]]], mix_pairs=60)
    trainer = Trainer(cfg, encoder=tiny_encoder, backend=tiny_backend, log=logged.append)
    try:
        trainer.setup()
    finally:
        trainer._held.close()
    bad = {root / "bad" / "trunc.flac", root / "bad" / "nan.wav"}

    def files(pair):
        return {pair.item.path} | ({pair.item.mix[0]} if pair.item.mix else set())

    pools = P.MixPools.draw(trainer.dataset, cfg.mix_pairs, cfg.seed)
    build = (trainer.caption_rows, cfg.augment, trainer.descriptions, cfg.mix_ratio)
    everything = P.build_pairs(trainer.dataset.train, pools.train, *build) + P.build_pairs(
        trainer.dataset.val, pools.val, *build)
    kept = trainer.train_pairs + trainer.val_pairs
    assert kept == [p for p in everything if not files(p) & bad]
    dropped = [p for p in everything if files(p) & bad]
    assert {p.term for p in dropped} == {0, 1, 2}  # class clips, augmented copies and mixes
    assert sum(p.term == 2 for p in trainer.train_pairs) < 60
    rows = {row[0] for row in trainer.epoch_rows(0)}
    assert not any(files(P.Pair(item, (0,), 0, "")) & bad for item in rows)
    summary = [m for m in logged if m.startswith("skipping")]
    assert len(summary) == 1 and summary[0].startswith("skipping 2 audio file(s)")
    assert "trunc.flac: corrupt audio data" in summary[0] and "nan.wav: the audio contains NaN" in summary[0]


def test_a_class_left_without_train_clips_is_refused(tmp_path, capsys):
    trunc, nan = write_undecodable(tmp_path / "bad")
    for i, f in enumerate((300.0, 500.0, 700.0)):
        sf.write(tmp_path / f"t{i}.wav", sine(f, 1.0, SR), SR)
    (tmp_path / "m.csv").write_text(f"path,label,split\nt0.wav,low,train\nt1.wav,low,val\nt2.wav,high,val\n"
                                    f"{trunc},high,train\n{nan},high,train\n")
    (tmp_path / "captions.json").write_text(json.dumps({"low": "a low tone", "high": "a high tone"}))
    code = main(["train", "--preset", "tiny", "--data", str(tmp_path / "m.csv"), "--captions",
                 str(tmp_path / "captions.json"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--skip-bad"])
    err = capsys.readouterr().err
    assert code == 2 and "class 'high' has no train clip left after skipping audio that cannot be decoded" in err
    assert "Traceback" not in err


def test_recorded_failures_are_not_decoded_again_until_the_file_changes(tmp_path, tiny_encoder, monkeypatch):
    import seeingsounds.cache as cache_module
    from seeingsounds.cache import FeatureCache, failure_path, recorded_failure
    from seeingsounds.errors import AudioLoadError

    good = tmp_path / "good.wav"
    sf.write(good, sine(330.0, 1.0, SR), SR)
    trunc, nan = write_undecodable(tmp_path / "bad")
    items = items_of([good, trunc, nan])
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(AudioLoadError, match="trunc.flac"):
        cache.ensure_audio(tiny_encoder, items, progress=False)
    paths = cache.ensure_audio(tiny_encoder, items, progress=False, skip_bad=True)
    assert paths[0].is_file() and not paths[1].exists() and not paths[2].exists()
    assert "trunc.flac: corrupt audio data" in recorded_failure(paths[1])
    assert recorded_failure(paths[2]).endswith("nan.wav: the audio contains NaN or infinite samples")
    assert recorded_failure(paths[0]) is None

    decoded: list[Path] = []
    real = cache_module.load_item_wave
    monkeypatch.setattr(cache_module, "load_item_wave", lambda item, *a: decoded.append(item.path) or real(item, *a))
    again = FeatureCache(tmp_path / "cache")
    assert again.ensure_audio(tiny_encoder, items, progress=False, skip_bad=True) == paths
    assert decoded == [] and (again.stats.hits, again.stats.misses, again.stats.failed) == (1, 0, 2)

    # a fixed file is another key: decoded and cached; a marker another library version wrote is retried
    sf.write(trunc, sine(550.0, 1.0, SR), SR, format="FLAC")
    record = json.loads(failure_path(paths[2]).read_text())
    failure_path(paths[2]).write_text(json.dumps({**record, "library": "0.0.0-other"}))
    fixed = FeatureCache(tmp_path / "cache").ensure_audio(tiny_encoder, items, progress=False, skip_bad=True)
    assert fixed[1] != paths[1] and fixed[1].is_file() and recorded_failure(fixed[1]) is None
    assert sorted(p.name for p in decoded) == ["nan.wav", "trunc.flac"]
    assert recorded_failure(paths[2]) is not None and json.loads(failure_path(paths[2]).read_text())["library"] != \
        "0.0.0-other"


def cache_args(root: Path, manifest: Path, captions: Path, *extra: str) -> list[str]:
    return ["cache", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--cache-dir",
            str(root / "c"), "--batch-size", "2", "--no-progress", *extra]


def small_dataset(root: Path) -> tuple[Path, Path]:
    trunc, nan = write_undecodable(root / "bad")
    lines = ["path,label"]
    for i in range(4):
        sf.write(root / f"c{i}.wav", sine(300.0 + 50 * i, 1.0, SR), SR)
        lines.append(f"c{i}.wav,tone{i % 2}")
    lines += [f"{trunc},tone0", f"{nan},tone1"]
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    (root / "captions.json").write_text(json.dumps({"tone0": "a low tone", "tone1": "a high tone"}))
    return root / "m.csv", root / "captions.json"


def test_cache_command_skip_bad_lists_the_clips_and_train_reuses_the_record(tmp_path, capsys):
    manifest, captions = small_dataset(tmp_path)
    assert main(cache_args(tmp_path, manifest, captions)) == 2
    err = capsys.readouterr().err
    assert "trunc.flac" in err or "nan.wav" in err
    assert main(cache_args(tmp_path, manifest, captions, "--skip-bad")) == 0
    out, err = capsys.readouterr()
    assert "skipped 2 audio file(s) that cannot be decoded (--skip-bad):" in err
    assert "trunc.flac: corrupt audio data" in err and "nan.wav: the audio contains NaN" in err
    assert "2 that cannot be decoded" in out
    assert len(list((tmp_path / "c" / "audio").rglob("*.safetensors"))) == 4
    assert len(list((tmp_path / "c" / "audio").rglob("*.failed"))) == 2
    code = main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--val-fraction", "0", "--cache-dir", str(tmp_path / "c"),
                 "--no-progress", "--skip-bad"])
    err = capsys.readouterr().err
    assert code == 0 and " 0 misses, 2 that cannot be decoded" in err  # nothing decoded again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cache_command_skip_bad_under_two_processes(tmp_path):
    """Both processes finish (the one waiting on a clip the other failed sees its marker), each clip is
    decoded by one process, one report lists both files."""
    manifest, captions = small_dataset(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "seeingsounds.cli.main",
           *cache_args(tmp_path, manifest, captions, "--skip-bad", "--batch-size", "1")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stderr.count("skipped 2 audio file(s) that cannot be decoded") == 1
    markers = sorted((tmp_path / "c" / "audio").rglob("*.failed"))
    assert len(markers) == 2 and not list((tmp_path / "c").rglob("*.claim"))
    assert sorted(Path(json.loads(m.read_text())["path"]).name for m in markers) == ["nan.wav", "trunc.flac"]
    assert len(list((tmp_path / "c" / "audio").rglob("*.safetensors"))) == 4


def test_train_skip_bad_under_two_processes_drops_the_same_pairs(data, tmp_path):
    """Both processes drop the same pairs (they shard one epoch order: a process that kept a clip the other
    dropped would step a different number of batches), and only the main process reports."""
    root, manifest, captions = data
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "seeingsounds.cli.main",
           *train_args(data, tmp_path / "ddp", "--epochs", "2", "--batch-size", "2", "--skip-bad",
                       "--cache-dir", str(tmp_path / "cache"))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stderr.count("skipping 2 audio file(s) that cannot be decoded") == 1
    # 20 train clips, 2 a batch, 2 processes: 5 steps an epoch each (6 with the truncated clip)
    assert proc.stdout.count("finished after 2 epochs, 10 steps") == 1
    assert len(list((tmp_path / "cache" / "audio").rglob("*.failed"))) == 2
