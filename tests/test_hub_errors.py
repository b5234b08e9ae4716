"""A model the hub cannot give (no network, nothing cached, a wrong id) is one line naming it, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import write_sines

from seeingsounds.errors import ConfigError, hub_errors_as_config
from seeingsounds.model import load_backend
from seeingsounds.presets import get_preset


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty hub cache with downloads switched off (what a machine without the hub sees)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_train_with_a_hub_preset_it_cannot_fetch_says_which_model_in_one_line(offline_hub):
    data = offline_hub / "data"
    for label, freq in (("low", 220.0), ("high", 880.0)):
        (data / label).mkdir(parents=True)
        write_sines(data / label, (freq, freq * 1.01, freq * 1.02))
    (offline_hub / "caps.json").write_text(json.dumps({"low": "a low tone", "high": "a high tone"}))
    done = subprocess.run([sys.executable, "-m", "seeingsounds.cli.main", "train", "--preset", "flux-dev",
                           "--data", "data", "--captions", "caps.json", "--out", "run"],
                          cwd=offline_hub, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert "cannot load the ast audio encoder 'MIT/ast-finetuned-audioset-10-10-0.4593'" in error[0]
    assert "hf download MIT/ast-finetuned-audioset-10-10-0.4593" in error[0]


def test_a_generator_id_that_does_not_exist_is_a_config_error(offline_hub):
    backend = load_backend(get_preset("flux-dev").replace(generator_id="nobody/no-such-model"))
    with pytest.raises(ConfigError, match="cannot load the flux generator .*hf download"):
        backend.load_config("transformer")
    with pytest.raises(ConfigError, match="cannot load the flux generator"):
        backend.load_image_pipeline()


def test_only_hub_and_file_errors_are_translated():
    with pytest.raises(ConfigError, match="cannot load the x 'm': no such file"):
        with hub_errors_as_config("m", "x"):
            raise FileNotFoundError("no such file")
    with pytest.raises(KeyError):  # a bug stays a bug
        with hub_errors_as_config("m", "x"):
            raise KeyError("k")
    with pytest.raises(ConfigError, match="^ours$"):  # our own errors pass through unchanged
        with hub_errors_as_config("m", "x"):
            raise ConfigError("ours")
