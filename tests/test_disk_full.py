"""A full disk (issue 17 §8): every command says so in one line naming the folder and the space,
leaves nothing half-written, and ``train`` can be resumed or restarted in place once space is freed.

The disk is a real one: a tmpfs of a few hundred KiB mounted inside ``tmp_path`` (needs root, as
in CI; skipped otherwise), so the errors are the ones the libraries really raise (safetensors'
SafetensorError, ``torch.save``'s RuntimeError, PIL's and Python's OSError).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import synthetic_train_data, train_args
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.cli.main import main
from seeingsounds.errors import DiskFullError
from seeingsounds.paths import atomic_write_text, disk_full_as_error, is_disk_full


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kib)``: a new folder on its own tmpfs of ``kib`` KiB; ``small_disk.resize(folder, kib)``
    frees space. Unmounted at teardown, also when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CI runs as root)")
    mounted: list[Path] = []

    def make(kib: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    def resize(folder: Path, kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(folder)], check=True)

    make.resize = resize  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for folder in mounted:  # lazily if busy: a file the test left open must not keep the mount
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write a filler file until the disk of ``folder`` is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    assert os.statvfs(folder).f_bavail == 0


def one_line(err: str) -> str:
    """The command's error: one line, its last, and no traceback (progress lines may come before)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1 and err.strip().endswith(errors[0]), err[-3000:]
    return errors[0]


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary files and folders left anywhere under ``folder`` (the run's ``.lock`` excepted)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name != ".lock")


# ---- the one home: paths.disk_full_as_error ------------------------------------------------
def test_disk_full_is_recognised_through_the_libraries_wrappers():
    from safetensors import SafetensorError

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    try:  # torch.save to a file object: a RuntimeError raised while the OSError is handled
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None
    except RuntimeError as exc:
        wrapped = exc
    assert wrapped.__cause__ is None and is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("unexpected pos 704 vs 598"))

    full = r"^cannot write /x/y\.bin: the disk holding /x is full \(.*, 2\.0 KiB needed\); free some space there"
    with pytest.raises(DiskFullError, match=full):
        with disk_full_as_error("/x", needed=2048, writing="/x/y.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):  # any other error passes unchanged
        with disk_full_as_error("/x"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(small_disk):
    disk = small_disk(64)
    target = disk / "notes.txt"
    target.write_text("old")
    with pytest.raises(DiskFullError) as info:
        atomic_write_text(target, "x" * 200_000)
    message = str(info.value)
    assert "\n" not in message and f"the disk holding {disk} is full" in message
    assert "195.3 KiB needed" in message and "KiB free" in message
    assert target.read_text() == "old" and sorted(p.name for p in disk.iterdir()) == ["notes.txt"]


# ---- train ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_train_data(tmp_path_factory, "diskfull")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("again", [["--resume"], []], ids=["resume", "restart"])
def test_train_that_fills_the_disk_in_epoch_1_resumes_or_restarts_in_place(data, tmp_path, small_disk, capsys, again):
    """200 KiB hold the run files and best/ (~90 KiB) but not last/ (~215 KiB with training_state.pt):
    the disk fills while epoch 1 is saved. Once space is freed the same command with --resume, or
    without it, trains the run in the same folder, to the weights of a run that never stopped."""
    assert main(train_args(data, tmp_path / "reference")) == 0
    capsys.readouterr()
    disk = small_disk(200)
    out = disk / "run"
    (disk / "mine.txt").write_text("the user's file")  # beside the run: never touched

    assert main(train_args(data, out)) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out / 'last'}: the disk holding {out} is full (")
    assert "KiB free" in line and "KiB needed" in line and "free some space there" in line
    assert (out / "best" / "model.safetensors").is_file() and not (out / "last").exists()
    assert hidden_leftovers(out) == []  # no half-written checkpoint folder, trusted or not

    small_disk.resize(disk, 2048)
    assert main(train_args(data, out, *again)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert ("saved no epoch" in err) == bool(again)
    reference, resumed = weights(tmp_path / "reference" / "last"), weights(out / "last")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 1, once
    assert (disk / "mine.txt").read_text() == "the user's file" and hidden_leftovers(out) == []
    # now an epoch is saved: a fresh start into it is refused
    assert main(train_args(data, out)) == 2
    assert "already holds a training run: pass --resume" in capsys.readouterr().err


def test_resume_of_a_folder_holding_no_run_says_to_start_it(data, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(train_args(data, empty, "--resume")) == 2
    assert "holds no run to continue" in one_line(capsys.readouterr().err)


# ---- cache ----------------------------------------------------------------------------------
def cache_args(data, cache_dir):
    root, manifest, captions = data
    return ["cache", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions),
            "--cache-dir", str(cache_dir), "--no-progress"]


def test_cache_that_fills_the_disk_keeps_its_entries_and_completes_once_space_is_freed(data, small_disk, capsys):
    from seeingsounds.cache import FeatureCache

    disk = small_disk(96)  # room for some of the 25 audio entries (~12 KiB each), not for all
    cache_dir = disk / "features"
    assert main(cache_args(data, cache_dir)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"the disk holding {cache_dir / 'audio'}" in line and "is full (" in line and "KiB needed" in line
    entries = sorted(cache_dir.rglob("*.safetensors"))
    assert entries and hidden_leftovers(cache_dir) == []
    cache = FeatureCache(cache_dir)
    assert all(cache.read_entry(p) is not None for p in entries)  # every entry written is whole and verified

    small_disk.resize(disk, 4096)
    assert main(cache_args(data, cache_dir)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"audio features: {len(entries)} hits, {25 - len(entries)} misses\n" in out  # none corrupt


# ---- data -o, generate -o ---------------------------------------------------------------------
def test_data_manifest_on_a_full_disk_is_one_line_and_no_file(tmp_path, small_disk, capsys):
    from test_data_builders import tiny_wav

    media = tmp_path / "VEGAS" / "data"
    for folder in ("dog", "Chainsaw"):
        for k in range(2):
            tiny_wav(media / folder / "audio" / f"{folder.lower()}_{k:04d}.wav")
    disk = small_disk(32)
    fill(disk)
    out = disk / "vegas.csv"
    assert main(["data", "vegas", "--media", str(media.parent), "-o", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out}: the disk holding {disk} is full (0 B free, ")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no manifest, no temporary file


def test_generate_on_a_full_disk_is_one_line_and_no_picture(tmp_path, small_disk, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt", "tiny")
    dog = write_wav(tmp_path / "dog.wav", 330)
    disk = small_disk(32)
    fill(disk)
    out = disk / "pictures"
    assert main(["generate", "--checkpoint", str(ckpt), str(dog), "--steps", "2", "--size", "48x32",
                 "-o", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"the disk holding {out} is full (0 B free" in line and ".png" in line
    assert not out.exists() or list(out.iterdir()) == []  # no picture, no temporary file


# ---- what a cut-short write leaves ------------------------------------------------------------
def test_caption_edit_after_a_line_cut_short_starts_a_new_line(tmp_path):
    """A full disk (or a kill) cut the last edit short: the next one must not be glued to it and lost."""
    from seeingsounds.training.edits import RunCaptionEdits

    path = tmp_path / "caption_edits.jsonl"
    path.write_text('{"op": "edit", "inputs": ["a", "b"], "output": "kept"}\n{"op": "edit", "inpu')
    edits = RunCaptionEdits(path, "template")
    assert edits.edit("a", "b") == "kept"
    edits._answer("fuse", ("x", "y"), lambda: "new")
    edits.close()
    assert RunCaptionEdits(path, "template").answers == {("edit", "a", "b"): "kept", ("fuse", "x", "y"): "new"}


def test_a_checkpoint_cut_between_its_two_renames_is_still_the_run(tmp_path):
    """``replace_folder`` moves last/ to .last.old before moving the new one in: a kill between
    the two leaves the saved epoch there, and the run is still resumable (not started afresh)."""
    from seeingsounds.runs import RunFolder

    run = RunFolder(tmp_path / "run")
    (run.path / ".last.old").mkdir(parents=True)
    (run.path / ".last.old" / "training_state.pt").write_bytes(b"state")
    assert run.holds_run() and run.state_path.read_bytes() == b"state"
    run.replace_folder("last", lambda tmp: (tmp / "training_state.pt").write_bytes(b"new"))
    assert run.state_path == run.path / "last" / "training_state.pt" and run.state_path.read_bytes() == b"new"
    assert not (run.path / ".last.old").exists()


def test_cache_claim_and_llm_caption_cache_on_a_full_disk_are_one_line(small_disk):
    """The claim file of a shared cache entry (several processes) and the LLM's caption cache append
    a line each: a full disk says so, and an empty claim is not left to block the entry."""
    from seeingsounds.cache import _claim
    from seeingsounds.captions.llm import _Cache

    disk = small_disk(32)
    llm_cache = _Cache(disk / "llm.jsonl")
    llm_cache.put("k0", {"caption": "kept"})
    fill(disk)
    entry = disk / "ab" / "entry.safetensors"
    with pytest.raises(DiskFullError, match=f"cannot write {entry}.claim: the disk holding {entry.parent} is full"):
        _claim(entry, 0, 3600.0)
    assert list(entry.parent.iterdir()) == []
    with pytest.raises(DiskFullError, match=f"cannot write {disk / 'llm.jsonl'}: the disk holding {disk} is full"):
        llm_cache.put("k1", {"caption": "x" * 5000})
    small_disk.resize(disk, 64)  # a torn line is dropped when the cache is read (and compacted) again
    assert {k: e["caption"] for k, e in _Cache(disk / "llm.jsonl").entries.items()} == {"k0": "kept"}
