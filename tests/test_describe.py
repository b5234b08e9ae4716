"""`describe`: the run's nearest captions for held-out clips, as text and JSON, with effects / --mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_training import CLASSES, make_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_encoder, tiny_backend):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.training import TrainConfig, train

    root = tmp_path_factory.mktemp("describe")
    manifest, captions = make_dataset(root, seed=1)
    out = root / "run"
    train(TrainConfig(preset="tiny", data=manifest, captions=captions, out=out, epochs=25, batch_size=8,
                      lr_sequence=3e-3, lr_pooled=3e-3, cache_dir=root / "cache", progress=False),
          encoder=tiny_encoder, backend=tiny_backend)
    return out, load_dataset(manifest, captions).test


def test_nearest_caption_is_the_true_class_for_held_out_clips(run, tiny_encoder):
    from seeingsounds.describe import Describer

    out, test = run
    found = Describer(out, encoder=tiny_encoder).describe([c.path for c in test], top_k=3)
    right = [d.top.labels == (c.label,) and d.top.caption == CLASSES[c.label] for d, c in zip(found, test)]
    print(f"describe: nearest caption is the true class for {np.mean(right):.3f} of {len(test)} held-out clips")
    assert np.mean(right) >= 0.9
    for d in found:
        assert [m.rank for m in d.matches] == [1, 2, 3]
        assert all(a.similarity >= b.similarity for a, b in zip(d.matches, d.matches[1:]))
        assert d.top.kind == "class" and -1.0 <= d.top.similarity <= 1.0


def test_describe_cli_text_and_json(run, capsys):
    from seeingsounds.cli.main import main

    out, test = run
    clip = next(c for c in test if c.label == "chirp")
    assert main(["describe", "--checkpoint", str(out), str(clip.path), "--top-k", "2"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == str(clip.path)
    assert text[1].strip().startswith("1. +") and text[1].endswith(f"{CLASSES['chirp']}  [chirp]")
    assert len(text) == 3
    assert main(["describe", "--checkpoint", str(out / "best"), str(clip.path), "--json", "--volume", "0.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1 and data[0]["source"] == str(clip.path) and len(data[0]["matches"]) == 5
    assert data[0]["effects"] == [["volume", {"alpha": 0.5}]] and data[0]["mix"] is None
    assert data[0]["matches"][0]["labels"] == ["chirp"] and data[0]["matches"][0]["rank"] == 1
    other = next(c for c in test if c.label == "low hum")
    assert main(["describe", "--checkpoint", str(out), str(clip.path), "--json", "--mix", str(other.path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["mix"] == {"path": str(other.path), "ratio": 0.5}


def test_describe_errors(run, tmp_path, capsys):
    from seeingsounds.aligner import SeeingSoundsAligner
    from seeingsounds.cli.main import main

    out, test = run
    SeeingSoundsAligner.from_pretrained(out / "best").save_pretrained(tmp_path / "bare")
    assert main(["describe", "--checkpoint", str(tmp_path / "bare"), str(test[0].path)]) == 2
    assert "captions.json" in capsys.readouterr().err
    assert main(["describe", "--checkpoint", str(out), str(tmp_path / "missing.wav")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["describe", "--checkpoint", str(out), str(test[0].path), "--top-k", "0"]) == 2
    assert main(["describe", "--checkpoint", str(out), str(test[0].path), "--volume", "-1"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_one_clip_given_as_bytes(run, tiny_encoder):
    from seeingsounds.describe import Describer

    out, test = run
    describer = Describer(out, encoder=tiny_encoder)
    one = describer.describe(test[0].path.read_bytes(), top_k=2)
    assert len(one) == 1 and one[0].source == "<bytes>"
    assert [m.caption for m in one[0].matches] == [m.caption for m in describer.describe(test[0].path, top_k=2)[0].matches]


def test_describe_device_options(run, capsys):
    import torch

    from seeingsounds.cli.main import main

    out, test = run
    assert main(["describe", "--checkpoint", str(out), str(test[0].path), "--json", "--device", "cpu",
                 "--dtype", "fp32", "--batch-size", "1"]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert main(["describe", "--checkpoint", str(out), str(test[0].path), "--json"]) == 0  # --device auto
    auto = json.loads(capsys.readouterr().out)
    if not torch.cuda.is_available():
        assert auto == on_cpu
        assert main(["describe", "--checkpoint", str(out), str(test[0].path), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
