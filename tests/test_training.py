"""Training (Eq. 6) on synthetic classes with the tiny preset: learning, resume, run folder, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seeingsounds.data.synthetic import SYNTHETIC_CLASSES as CLASSES
from seeingsounds.data.synthetic import make_synthetic_dataset as make_dataset




# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    manifest, captions = make_dataset(root)
    return root, manifest, captions


def config(data, out, **overrides):
    from seeingsounds.training import TrainConfig

    root, manifest, captions = data
    options = dict(preset="tiny", data=manifest, captions=captions, out=out, epochs=3, batch_size=8,
                   lr_sequence=3e-3, lr_pooled=3e-3, cache_dir=root / "cache", patience=100, progress=False)
    options.update(overrides)
    return TrainConfig(**options)


def heldout_top1(run: Path, data, encoder) -> float:
    """Caption-retrieval top-1 of the test clips (never seen in training) against the class captions."""
    from seeingsounds.aligner import SeeingSoundsAligner
    from seeingsounds.cache import AudioItem, FeatureCache
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.evaluation.metrics import caption_similarity
    from seeingsounds.runs import RunFolder

    root, manifest, captions = data
    test = load_dataset(manifest, captions).test
    tokens = FeatureCache(root / "cache").audio_tokens(encoder, [AudioItem.of(c.path) for c in test], progress=False)
    aligner = SeeingSoundsAligner.from_pretrained(run / "best").eval()
    saved = RunFolder.find(run)
    caption_set, targets = saved.caption_set(), saved.caption_targets(dtype=torch.float32)
    with torch.no_grad():
        pred = aligner(tokens)
    names = aligner.aligned_names
    sim = caption_similarity({n: pred[n].numpy() for n in names}, {n: targets[n].numpy() for n in names})
    predicted = [caption_set.entries[i].labels[0] for i in sim.argmax(1)]
    return float(np.mean([p == c.label for p, c in zip(predicted, test)]))


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_learns_distinct_classes_and_writes_a_complete_run(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.training import train

    out = tmp_path / "run"
    result = train(config(data, out, epochs=30), encoder=tiny_encoder, backend=tiny_backend)
    top1 = heldout_top1(out, data, tiny_encoder)
    print(f"held-out caption-retrieval top-1 {top1:.3f}; best epoch {result.best_epoch}; "
          f"last val top-1 {result.last['val_top1']}")
    assert top1 >= 0.9
    assert result.history[0]["val_loss"] > 1.5 * result.best_val_loss  # it learned, not just initialised

    # run folder: config with preset, hyper-parameters, data hashes, versions
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"]["name"] == "tiny" and cfg["train"]["epochs"] == 30
    assert cfg["learning_rates"] == {"sequence": 3e-3, "pooled": 3e-3}
    assert len(cfg["data"]["data_sha256"]) == 64 and len(cfg["data"]["captions_sha256"]) == 64
    assert len(cfg["data"]["clips_sha256"]) == 64
    assert cfg["data"]["clips"] == {"train": 40, "val": 10, "test": 20}
    assert "torch" in cfg["versions"] and cfg["objective"] == "eq6"
    # metrics: one line per epoch, val loss and retrieval every epoch
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, 31))
    assert all("val_loss" in x and "val_top1" in x for x in lines)
    best = min(lines, key=lambda x: x["val_loss"])
    assert result.best_epoch == best["epoch"] and result.best_val_loss == pytest.approx(best["val_loss"])
    # captions + fp16 targets equal to the generator's own encode_prompt
    from safetensors.torch import load_file

    caps = json.loads((out / "captions.json").read_text())["captions"]
    assert [c["text"] for c in caps] == [CLASSES[label] for label in sorted(CLASSES)]
    stored = load_file(str(out / "caption_targets.safetensors"))
    assert stored["prompt_embeds"].dtype == torch.float16 and stored["prompt_embeds"].shape == (5, 16, 32)
    fresh = tiny_backend.encode_captions([CLASSES[label] for label in sorted(CLASSES)] + [""])
    torch.testing.assert_close(stored["pooled_prompt_embeds"].float(), fresh["pooled_prompt_embeds"][:5],
                               atol=2e-3, rtol=2e-3)
    # best/ and last/ load; null conditioning = the generator's embedding of ""
    from seeingsounds.aligner import SeeingSoundsAligner
    from seeingsounds.checkpoint import resolve_checkpoint

    assert resolve_checkpoint(out) == str(out / "best")
    last = SeeingSoundsAligner.from_pretrained(out / "last")
    torch.testing.assert_close(last.null_conditioning("prompt_embeds"), fresh["prompt_embeds"][5], atol=2e-3, rtol=2e-3)
    state = torch.load(out / "last" / "training_state.pt", weights_only=True)
    assert state["epoch"] == 30 and state["global_step"] == 150 and set(state["optimizers"]) == {"sequence", "pooled"}
    assert not (out / "best" / "training_state.pt").exists()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.training import train

    full = train(config(data, tmp_path / "full", epochs=3), encoder=tiny_encoder, backend=tiny_backend)
    part = train(config(data, tmp_path / "part", epochs=3, max_steps=7), encoder=tiny_encoder, backend=tiny_backend)
    assert part.stopped == "max_steps" and part.global_step == 7
    state = torch.load(tmp_path / "part" / "last" / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)  # interrupted in the middle of epoch 2
    done = train(config(data, tmp_path / "part", epochs=3, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert done.global_step == full.global_step == 15
    for name in ("last", "best"):
        a, b = weights_of(tmp_path / "full" / name), weights_of(tmp_path / "part" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}/{k} differs after resume"
    la = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [x["train_loss"] for x in la] == [x["train_loss"] for x in lb]
    assert [x["val_loss"] for x in la] == [x["val_loss"] for x in lb]
    # a finished run resumed again does nothing; more epochs continue it
    again = train(config(data, tmp_path / "part", epochs=3, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert again.global_step == 15 and again.stopped == "epochs"
    more = train(config(data, tmp_path / "part", epochs=4, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert more.global_step == 20


def test_max_steps_at_an_epoch_end_resumes_exactly(data, tmp_path, tiny_encoder, tiny_backend):
    """max_steps reached on an epoch's last batch: the epoch is validated and saved whole, then resumed."""
    from seeingsounds.training import train

    full = train(config(data, tmp_path / "full", epochs=2), encoder=tiny_encoder, backend=tiny_backend)
    part = train(config(data, tmp_path / "part", epochs=2, max_steps=5), encoder=tiny_encoder, backend=tiny_backend)
    assert (part.stopped, part.global_step, part.epochs_completed) == ("max_steps", 5, 1)
    state = torch.load(tmp_path / "part" / "last" / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["finished"]) == (1, 0, None)
    assert [m["epoch"] for m in part.history] == [1]
    done = train(config(data, tmp_path / "part", epochs=2, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert (done.stopped, done.global_step) == ("epochs", full.global_step) == ("epochs", 10)
    a, b = weights_of(tmp_path / "full" / "last"), weights_of(tmp_path / "part" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["train_loss"] for m in full.history] == [m["train_loss"] for m in done.history]


def test_model_selection_and_early_stopping_decision():
    from seeingsounds.training.state import LoopState

    loop = LoopState()
    decisions = [loop.end_epoch(v, e, epochs=10, patience=2, min_delta=0.1)
                 for e, v in enumerate([1.0, 0.95, 0.85, 0.9, 0.8], start=1)]
    # 0.95 is not 0.1 better than 1.0; 0.85 is; 0.9 and 0.8 are not 0.1 better than 0.85 -> stop after 2 bad
    assert decisions == [(True, None), (False, None), (True, None), (False, None), (False, "early_stopping")]
    assert (loop.best_epoch, loop.best_val_loss, loop.bad_epochs) == (3, 0.85, 2)
    last = LoopState()
    assert last.end_epoch(1.0, 3, epochs=3, patience=5, min_delta=0.0) == (True, "epochs")
    assert last.already_finished(3) is False  # finished is recorded with the position by the checkpoint
    last.epoch, last.finished = 3, "epochs"
    assert last.already_finished(3) and not last.already_finished(4)


def test_resume_refusals(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.errors import ConfigError
    from seeingsounds.training import train

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--resume"):
        train(config(data, out, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    train(config(data, out, epochs=1), encoder=tiny_encoder, backend=tiny_backend)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config(data, out, epochs=1), encoder=tiny_encoder, backend=tiny_backend)
    with pytest.raises(ConfigError, match="batch_size=4"):
        train(config(data, out, epochs=2, resume=True, batch_size=4), encoder=tiny_encoder, backend=tiny_backend)


def test_resume_mid_epoch_is_exact_with_dropout(data, tmp_path, tiny_encoder, tiny_backend):
    """Dropout draws from the torch RNG: a run resumed in the middle of an epoch must draw the same masks."""
    from seeingsounds.training import train

    train(config(data, tmp_path / "full", epochs=2, dropout=0.3), encoder=tiny_encoder, backend=tiny_backend)
    train(config(data, tmp_path / "part", epochs=2, dropout=0.3, max_steps=3), encoder=tiny_encoder,
          backend=tiny_backend)
    train(config(data, tmp_path / "part", epochs=2, dropout=0.3, resume=True), encoder=tiny_encoder,
          backend=tiny_backend)
    a, b = weights_of(tmp_path / "full" / "last"), weights_of(tmp_path / "part" / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after a mid-epoch resume"


def test_resume_after_a_metrics_line_was_cut_short(data, tmp_path, tiny_encoder, tiny_backend):
    """An interruption while appending to metrics.jsonl leaves half a line: resuming must not crash on it."""
    from seeingsounds.training import train

    out = tmp_path / "run"
    train(config(data, out, epochs=2, max_steps=7), encoder=tiny_encoder, backend=tiny_backend)
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"epoch": 2, "global_step": 1')
    done = train(config(data, out, epochs=2, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert done.global_step == 10
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and [x["epoch"] for x in done.history] == [1, 2]


def test_resume_refuses_changed_data(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.errors import ConfigError
    from seeingsounds.training import train

    captions = tmp_path / "captions.json"
    captions.write_text(Path(data[2]).read_text())
    out = tmp_path / "run"
    train(config(data, out, epochs=2, max_steps=2, captions=captions), encoder=tiny_encoder, backend=tiny_backend)
    edited = json.loads(captions.read_text())
    edited[sorted(edited)[0]] = "something else entirely"
    captions.write_text(json.dumps(edited))
    with pytest.raises(ConfigError, match="data changed.*captions_sha256"):
        train(config(data, out, epochs=2, resume=True, captions=captions), encoder=tiny_encoder, backend=tiny_backend)


def test_early_stopping_and_ablation_options(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.training import train

    # min_delta so large that nothing after epoch 1 counts as an improvement: stops after 1 + patience
    res = train(config(data, tmp_path / "es", epochs=10, patience=2, min_delta=1e9), encoder=tiny_encoder,
                backend=tiny_backend)
    assert res.stopped == "early_stopping" and res.epochs_completed == 3 and res.best_epoch == 1
    state = torch.load(tmp_path / "es" / "last" / "training_state.pt", weights_only=True)
    assert state["finished"] == "early_stopping"

    from seeingsounds.aligner import SeeingSoundsAligner

    res = train(config(data, tmp_path / "seq", epochs=1, align="sequence", pooling="average", order="pool_first"),
                encoder=tiny_encoder, backend=tiny_backend)
    aligner = SeeingSoundsAligner.from_pretrained(tmp_path / "seq" / "best")
    assert aligner.aligned_names == ["prompt_embeds"] and aligner.pooling == "average" and aligner.order == "pool_first"
    state = torch.load(tmp_path / "seq" / "last" / "training_state.pt", weights_only=True)
    assert set(state["optimizers"]) == {"sequence"}
    # the unaligned pooled tensor is fed the generator's embedding of ""
    null = tiny_backend.encode_captions([""])["pooled_prompt_embeds"][0]
    torch.testing.assert_close(aligner(torch.zeros(2, 97, 32))["pooled_prompt_embeds"][1], null, atol=2e-3, rtol=2e-3)


def test_separate_optimisers_use_their_own_learning_rates(data, tmp_path, tiny_encoder, tiny_backend):
    """lr_pooled = 1e-12 leaves the pooled head where it started; the sequence head moves."""
    from seeingsounds.training import Trainer

    trainer = Trainer(config(data, tmp_path / "lr", epochs=1, lr_pooled=1e-12, weight_decay=0.0),
                      encoder=tiny_encoder, backend=tiny_backend, log=lambda m: None)
    trainer.setup()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    pooled = [k for k in before if k.startswith("heads.pooled_prompt_embeds.")]
    seq = [k for k in before if k.startswith("heads.prompt_embeds.")]
    assert pooled and seq
    assert max(float((after[k] - before[k]).abs().max()) for k in pooled) < 1e-8
    assert min(float((after[k] - before[k]).abs().max()) for k in seq if "weight" in k) > 1e-4


def test_live_encoder_matches_cached_features(data, tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.training import train

    cached = train(config(data, tmp_path / "c", epochs=1), encoder=tiny_encoder, backend=tiny_backend)
    live = train(config(data, tmp_path / "l", epochs=1, use_cache=False), encoder=tiny_encoder, backend=tiny_backend)
    # fp16 cache vs fp32 live tokens: the same run up to rounding
    assert live.last["train_loss"] == pytest.approx(cached.last["train_loss"], rel=1e-2)
    assert live.last["val_loss"] == pytest.approx(cached.last["val_loss"], rel=1e-2)
    cfg = json.loads((tmp_path / "l" / "config.json").read_text())
    assert cfg["feature_cache"] is None


def test_resume_without_a_saved_epoch_says_what_to_do(data, tmp_path, tiny_encoder, tiny_backend):
    """Stopped after best/ but before last/ of epoch 1 (e.g. a full disk, tests/test_disk_full.py):
    nothing to continue, so a fresh start into the same folder works; a folder with no run at all
    is not resumed."""
    from seeingsounds.errors import ConfigError
    from seeingsounds.training import train

    with pytest.raises(ConfigError, match="holds no run to continue") as info:
        train(config(data, tmp_path / "new", resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert "start the run without --resume" in str(info.value)
    out = tmp_path / "run"
    (out / "best").mkdir(parents=True)
    result = train(config(data, out, epochs=1), encoder=tiny_encoder, backend=tiny_backend)
    assert result.epochs_completed == 1 and (out / "last" / "training_state.pt").is_file()


def test_caption_set_scales_to_all_class_pairs():
    """Fused captions of every class pair (VGGSound: ~48k) are indexed, not searched per add."""
    import itertools
    import time

    from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet

    labels = [f"class {i}" for i in range(250)]
    start = time.perf_counter()
    captions = CaptionSet()
    rows = [captions.add(CaptionEntry(f"{u} and {v}", "fused", (u, v))) for u, v in itertools.combinations(labels, 2)]
    assert rows == list(range(len(rows))) and len(captions) == 31125
    assert captions.add(CaptionEntry("class 0 and class 1", "fused", ("class 0", "class 1"))) == 0
    assert time.perf_counter() - start < 10.0
    again = CaptionSet(list(captions.entries))  # built from entries (as from_json does): still finds rows
    assert again.add(CaptionEntry("class 3 and class 9", "fused", ("class 3", "class 9"))) == rows[3 * 249 - 3 + 5]
    assert len(again) == len(captions)


def test_config_choices_fail_before_any_model_is_loaded():
    from seeingsounds.errors import ConfigError
    from seeingsounds.training import TrainConfig

    base = dict(preset="tiny", data="d.csv", captions="c.json", out="o")
    for bad in ({"align": "seq"}, {"pooling": "max"}, {"order": "pool-first"}, {"cache_dtype": "fp16"},
                {"val_fraction": 1.0}, {"dropout": 1.5}, {"hidden_dim": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig(**base, **bad)
    assert TrainConfig(**base, align="pooled", pooling="average", order="pool_first").align == "pooled"


def test_objective_math():
    from seeingsounds.training.objective import pair_weights, per_sample_loss

    pred = {"s": torch.ones(2, 3, 4), "p": torch.zeros(2, 5)}
    target = {"s": torch.zeros(2, 3, 4), "p": torch.full((2, 5), 2.0)}
    loss = per_sample_loss(pred, target, ["s", "p"], {"p": 0.5})
    assert loss.tolist() == [1.0 + 0.5 * 4.0] * 2
    # Eq. 7: a uniform batch mean with these weights estimates sum_t w_t * mean_t(L)
    w = pair_weights({"original": 10, "augmented": 30, "mixed": 0}, {"original": 1.0, "augmented": 2.0})
    assert w == {"original": 4.0, "augmented": pytest.approx(8 / 3)}
    losses = {"original": 1.0, "augmented": 3.0}
    mean = (10 * w["original"] * losses["original"] + 30 * w["augmented"] * losses["augmented"]) / 40
    assert mean == pytest.approx(1.0 * 1.0 + 2.0 * 3.0)


def test_cli_train(data, tmp_path, capsys):
    from seeingsounds.cli.main import main

    root, manifest, captions = data
    out = tmp_path / "cli"
    code = main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", "--cache-dir", str(root / "cache"), "--no-progress",
                 "--lr-pooled", "1e-4", "--weight", "pooled_prompt_embeds=0.5"])
    assert code == 0, capsys.readouterr().err
    assert "finished after 1 epochs" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["learning_rates"]["pooled"] == 1e-4 and cfg["train"]["target_weights"] == {"pooled_prompt_embeds": 0.5}
    code = main(["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", str(out),
                 "--epochs", "1", "--cache-dir", str(root / "cache")])
    assert code == 2 and "already holds a training run" in capsys.readouterr().err


def test_two_process_launch_shards_the_data(data, tmp_path):
    """`torchrun --nproc_per_node 2` (what `accelerate launch` runs) trains with no code change:
    each process takes half of every epoch, only the main process writes and prints."""
    import socket
    import subprocess
    import sys

    root, manifest, captions = data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "seeingsounds.cli.main", "train", "--preset", "tiny", "--data",
           str(manifest), "--captions", str(captions), "--out", str(out), "--epochs", "2", "--batch-size", "8",
           "--cache-dir", str(root / "cache"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    # 40 train clips, batch 8: 5 steps per epoch on one process, ceil(20 / 8) = 3 on each of two
    assert proc.stdout.count("finished after 2 epochs, 6 steps") == 1
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if "val_loss" in x] == [1, 2]
    assert (out / "best" / "model.safetensors").is_file()
