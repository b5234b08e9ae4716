"""seeingsounds.paths: writability checks that fail in one line before any work, and atomic builds."""

from __future__ import annotations

import os

import pytest

from seeingsounds.cli.main import main
from seeingsounds.errors import ConfigError
from seeingsounds.paths import build_once, check_output_file, ensure_writable_dir, home

#: a folder no process can create, not even root (procfs refuses new entries)
UNWRITABLE = "/proc/seeingsounds-test"


def one_line(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_ensure_writable_dir_creates_and_leaves_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert ensure_writable_dir(target, "feature cache") == target
    assert target.is_dir() and list(target.iterdir()) == []


def test_ensure_writable_dir_refuses_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as info:
        ensure_writable_dir(blocker, "feature cache (--cache-dir)")
    assert one_line(info) == f"the feature cache (--cache-dir) {blocker} is a file, not a folder: choose a folder"
    with pytest.raises(ConfigError) as info:
        ensure_writable_dir(blocker / "sub", "feature cache")
    assert "cannot be written" in one_line(info) and str(blocker / "sub") in str(info.value)
    with pytest.raises(ConfigError) as info:
        ensure_writable_dir(UNWRITABLE, "feature cache")
    assert one_line(info).startswith(f"the feature cache {UNWRITABLE} cannot be written (")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_ensure_writable_dir_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="cannot be written"):
            ensure_writable_dir(folder, "output folder")
    finally:
        folder.chmod(0o755)


def test_home_names_seeingsounds_home_when_it_cannot_be_written(monkeypatch, tmp_path):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", UNWRITABLE)
    assert str(home()) == UNWRITABLE  # no check unless asked
    with pytest.raises(ConfigError) as info:
        home(writable=True)
    assert one_line(info).startswith(f"the SEEINGSOUNDS_HOME folder {UNWRITABLE} cannot be written")
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(tmp_path / "h"))
    assert home(writable=True) == tmp_path / "h" and (tmp_path / "h").is_dir()


def test_build_once_in_an_unwritable_folder_fails_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    built: list[object] = []
    with pytest.raises(ConfigError) as info:
        build_once(blocker / "model", built.append)
    assert "is a file, not a folder" in one_line(info)
    with pytest.raises(ConfigError) as info:
        build_once(f"{UNWRITABLE}/model", built.append)
    assert "cannot be written" in one_line(info)
    assert built == []  # refused before anything was built


def test_check_output_file(tmp_path):
    source = tmp_path / "in.wav"
    source.write_bytes(b"RIFF")
    hard = tmp_path / "hard.wav"
    os.link(source, hard)
    for same in (source, tmp_path / "sub" / ".." / "in.wav", hard):
        with pytest.raises(ConfigError) as info:
            check_output_file(same, inputs=[source])
        assert "is also an input" in one_line(info)
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_file(tmp_path, inputs=[source])
    with pytest.raises(ConfigError, match="cannot be written"):
        check_output_file(f"{UNWRITABLE}/out.wav")
    new = tmp_path / "new" / "out.wav"
    assert check_output_file(new, inputs=[source, None], what="image") == new and new.parent.is_dir()
    assert not new.exists() and source.read_bytes() == b"RIFF"


def test_demo_refuses_an_unwritable_home_before_loading_models(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", UNWRITABLE)
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the SEEINGSOUNDS_HOME folder {UNWRITABLE} cannot be written") and err.count("\n") == 1
    assert not (tmp_path / "demo").exists()


def test_home_spelled_with_a_tilde_or_relative_names_one_absolute_folder(monkeypatch, tmp_path):
    """SEEINGSOUNDS_HOME='~/x' (quoted in a .env file: the shell never expanded it) used to make a folder
    literally named '~' in the working directory, and the tiny models' build a traceback."""
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    monkeypatch.setenv("SEEINGSOUNDS_HOME", "~/ss-home")
    monkeypatch.chdir(tmp_path)
    assert home() == tmp_path / "me" / "ss-home"
    assert home(writable=True).is_dir() and not (tmp_path / "~").exists()
    monkeypatch.setenv("SEEINGSOUNDS_HOME", "rel/home")
    assert home() == tmp_path / "rel" / "home"
    assert home().is_absolute()
