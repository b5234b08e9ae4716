"""The run folder (seeingsounds.runs): row files, the lock, the --out checks, permissions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from run_fixtures import save_caption_set

from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
from seeingsounds.errors import ConfigError
from seeingsounds.runs import RowFile, RunFolder, write_row_file


def test_row_file_is_safetensors_and_reads_only_the_rows_asked(tmp_path):
    from safetensors.torch import load_file

    g = torch.Generator().manual_seed(0)
    full = {"seq": torch.randn(7, 3, 5, generator=g), "pooled": torch.randn(7, 4, generator=g)}
    chunks = iter([(0, {k: v[:3] for k, v in full.items()}), (3, {k: v[3:] for k, v in full.items()})])
    write_row_file(tmp_path / "t.safetensors", {"seq": (3, 5), "pooled": (4,)}, 7, chunks,
                   metadata={"note": "x"})
    loaded = load_file(str(tmp_path / "t.safetensors"))  # a valid safetensors file for any reader
    assert torch.equal(loaded["seq"], full["seq"].half()) and loaded["pooled"].dtype == torch.float16
    with RowFile(tmp_path / "t.safetensors") as f:
        assert len(f) == 7 and f.metadata["note"] == "x" and f.row_bytes("seq") == 30
        got = f.read([5, 1, 2, 6])
        assert torch.equal(got["seq"], full["seq"].half()[[5, 1, 2, 6]])
        assert torch.equal(got["pooled"], full["pooled"].half()[[5, 1, 2, 6]])
        with pytest.raises(IndexError):
            f.read([7])
    with pytest.raises(ConfigError, match="rows were not written"):
        write_row_file(tmp_path / "u.safetensors", {"p": (4,)}, 3, iter([(0, {"p": torch.zeros(2, 4)})]))
    assert not (tmp_path / "u.safetensors").exists()
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "t.safetensors").read_bytes()[:-10])
    with pytest.raises(ConfigError, match="truncated"):
        RowFile(tmp_path / "cut.safetensors")


def test_caption_targets_of_selected_rows(tmp_path):
    captions = CaptionSet()
    for i in range(4):
        captions.add(CaptionEntry(f"caption {i}", "class", (f"label {i}",)))
    targets = {"p": torch.arange(16, dtype=torch.float32).reshape(4, 4)}
    save_caption_set(tmp_path, captions, targets)
    (tmp_path / "best").mkdir()
    for where in (tmp_path, tmp_path / "best"):
        assert RunFolder.find(where).path == tmp_path
    run = RunFolder(tmp_path)
    assert run.caption_set().texts == captions.texts
    got = run.caption_targets([3, 0], dtype=torch.float32)
    assert got["p"].tolist() == [[12, 13, 14, 15], [0, 1, 2, 3]]
    assert run.caption_targets(dtype=torch.float32)["p"].dtype == torch.float32
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 2}\n{"epoch": 2, "lo')
    assert run.metrics() == [{"epoch": 1, "loss": 2}]


def test_check_new_or_run_refusals(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.csv").write_text("path,label\n")
    (data / "captions.json").write_text('{"a": "b"}')
    (data / "config.json").write_text('{"mine": 1}')
    reads = [data / "manifest.csv", data / "captions.json"]
    with pytest.raises(ConfigError, match="is the folder of .*manifest.csv"):
        RunFolder(data).check_new_or_run(False, reads=reads)
    with pytest.raises(ConfigError, match="inside the data folder"):
        RunFolder(data / "run").check_new_or_run(False, reads=[data])
    with pytest.raises(ConfigError, match="is a file"):
        RunFolder(data / "manifest.csv").check_new_or_run(False)
    with pytest.raises(ConfigError, match=r"not empty and not a training run \(it holds captions.json, config.json"):
        RunFolder(data).check_new_or_run(False)
    # a folder holding only what a run writes (a run that stopped before its first epoch) is a run
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text(json.dumps({"train": {}}))
    (partial / ".lock").write_text("")
    RunFolder(partial).check_new_or_run(False)
    RunFolder(partial).check_new_or_run(True)  # begun, no epoch saved: resumed from epoch 1
    (partial / "best").mkdir()  # an epoch whose last/ was not saved (a full disk): still started afresh
    RunFolder(partial).check_new_or_run(False)
    (partial / "last").mkdir()
    (partial / "last" / "training_state.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="already holds a training run"):
        RunFolder(partial).check_new_or_run(False)
    with pytest.raises(ConfigError, match="--resume: .* holds no run to continue"):
        RunFolder(tmp_path / "new").check_new_or_run(True)
    # a path that cannot be created (its parent is a file): one line, before anything else
    with pytest.raises(ConfigError, match="cannot be written"):
        RunFolder(data / "manifest.csv" / "run").check_new_or_run(False)
    assert [p.name for p in data.iterdir()] and all(p.name != "run" for p in data.iterdir())
    (data / "config.json").unlink()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused_in_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="cannot be written"):
            RunFolder(ro / "run").check_new_or_run(False)
    finally:
        ro.chmod(0o755)


def test_lock_is_exclusive_and_dies_with_its_process(tmp_path):
    run = RunFolder(tmp_path / "run")
    code = ("import sys, time; from seeingsounds.runs import RunFolder\n"
            "with RunFolder(sys.argv[1]).lock():\n    print('locked', flush=True); time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(ConfigError, match=rf"in use by another training process \(process {holder.pid}\)"):
            with run.lock():
                pass
        assert time.monotonic() - start < 5  # fails at once, does not wait
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the kernel drops the flock
        holder.wait(timeout=30)
        with run.lock():
            assert (run / ".lock").read_text().strip() == str(os.getpid())
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_replaced_folders_honour_the_umask(tmp_path):
    run = RunFolder(tmp_path)
    old = os.umask(0o022)
    try:
        made = run.replace_folder("best", lambda tmp: (tmp / "x").write_text("1"))
        assert made.stat().st_mode & 0o777 == 0o755  # mkdtemp alone gives 0700
        os.umask(0o077)
        assert run.replace_folder("best", lambda tmp: None).stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)
    assert not (tmp_path / "best" / "x").exists() and not list(tmp_path.glob(".best*"))
