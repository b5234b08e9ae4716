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
    assert str(info.value) == (f"{run} holds other files (best, captions.json); an aligner's config.json and "
                               "model.safetensors would replace its own: save to a new or empty folder")
    assert (run / "config.json").read_text() == config and not (run / "model.safetensors").exists()

    # a new folder, then the same checkpoint folder again (replacing its own files), are fine
    aligner.save_pretrained(tmp_path / "ckpt")
    aligner.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert SeeingSoundsAligner.from_pretrained(tmp_path / "ckpt").input_dim == 8
