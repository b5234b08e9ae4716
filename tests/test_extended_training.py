"""Extended training (paper Eq. 7) on synthetic classes: transformed pairs with edited captions,
mixed pairs with fused captions; `describe` then ranks the edited and fused captions."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from test_training import make_dataset

#: short class captions, so that edits and fusions fit the tiny text encoders' lengths
SHORT = {"low hum": "a deep engine hum", "high whistle": "a shrill whistle", "noise bursts": "hissing steam",
         "click train": "a ticking clock", "chirp": "a bird chirping"}
ALPHAS = (0.1, 0.15, 0.25, 0.35, 0.45)
#: held-out gains per volume bin; "high-volume" is the unmodified clip, whose caption is t_y
BINS = {"low-volume": (0.1, 0.15), "medium-volume": (0.25, 0.35, 0.45), "high-volume": (1.0,)}


def tiny_long(tiny_preset) -> dict:
    """The tiny preset with T5 targets padded to 48 tokens (16 would cut the edits off)."""
    return tiny_preset.replace(max_sequence_length=48).to_dict()


@pytest.fixture(scope="module")
def ext(tmp_path_factory, tiny_preset, tiny_encoder):
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.model import load_backend
    from seeingsounds.presets import get_preset
    from seeingsounds.training import TrainConfig, train

    root = tmp_path_factory.mktemp("eq7")
    manifest, captions = make_dataset(root, classes=SHORT, train=16, amp=(0.6, 0.8), seed=3)
    preset = tiny_long(tiny_preset)
    backend = load_backend(get_preset(preset))
    out = root / "run"
    result = train(TrainConfig(
        preset=preset, data=manifest, captions=captions, out=out, epochs=EPOCHS, batch_size=32, lr_sequence=LR,
        lr_pooled=LR, order=ORDER, hidden_dim=HIDDEN, cache_dir=root / "cache", patience=100, progress=False,
        augment=[[["volume", {"alpha": a}]] for a in ALPHAS], mix_pairs=80, augment_weight=AUGMENT_WEIGHT,
    ), encoder=tiny_encoder, backend=backend)
    return out, result, load_dataset(manifest, captions).test, root


#: settings found on this data: pool-first heads learn the (weak) loudness cue of the tiny random
#: encoder much faster; the transformed-pairs term weighted x3 (``--augment-weight 3``)
EPOCHS, LR, ORDER, HIDDEN, AUGMENT_WEIGHT = 60, 1e-2, "pool_first", 128, 3.0
#: the figures reached, less a margin
#: reached on this data (seed 3): low 0.925, medium 0.817, high 0.95, mixes 1.00 (60 pairs)
MIN_LOW, MIN_MEDIUM, MIN_HIGH, MIN_MIX = 0.8, 0.7, 0.85, 0.9


def row(entries, kind, labels, descriptions=()):
    found = [i for i, e in enumerate(entries)
             if e.kind == kind and set(e.labels) == set(labels) and e.descriptions == tuple(descriptions)]
    assert len(found) == 1, (kind, labels, descriptions)
    return found[0]


def test_run_holds_the_extended_caption_set(ext):
    from seeingsounds.runs import RunFolder

    out, result, _, _ = ext
    saved = RunFolder.find(out)
    captions, targets = saved.caption_set(), saved.caption_targets(dtype=torch.float32)
    kinds = [e.kind for e in captions.entries]
    # 5 class captions; alphas 0.1/0.15 -> "low-volume", 0.25/0.35/0.45 -> "medium-volume": 10 edited; 10 fused
    assert (kinds.count("class"), kinds.count("edited"), kinds.count("fused")) == (5, 10, 10)
    edited = captions.entries[row(captions.entries, "edited", ("high whistle",), ("low-volume",))]
    assert edited.text != SHORT["high whistle"] and "whistle" in edited.text
    fused = captions.entries[row(captions.entries, "fused", ("chirp", "low hum"))]
    assert "bird" in fused.text and "engine" in fused.text
    assert targets["prompt_embeds"].shape == (25, 48, 32)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective"] == "eq7" and cfg["train"]["mix_pairs"] == 80
    assert {"val_loss_original", "val_loss_augmented", "val_loss_mixed"} <= set(result.last)


def test_describe_ranks_the_correctly_edited_caption_per_volume_bin(ext, tiny_encoder):
    from seeingsounds.audio.render import render
    from seeingsounds.describe import Describer

    out, _, test, _ = ext
    d = Describer(out, encoder=tiny_encoder)
    entries = d.captions.entries
    rates = {}
    for bin_name, alphas in BINS.items():
        hits = []
        for alpha in alphas:
            effects = None if alpha == 1.0 else [("volume", {"alpha": alpha})]
            sims = d.similarity([render(c.path, sample_rate=tiny_encoder.sample_rate, effects=effects) for c in test])
            for c, s in zip(test, sims):
                want = row(entries, "class", (c.label,)) if bin_name == "high-volume" else \
                    row(entries, "edited", (c.label,), (bin_name,))
                hits.append(int(np.argmax(s)) == want)
        rates[bin_name] = float(np.mean(hits))
    print("correctly edited caption ranked first, per volume bin:", rates)
    assert rates["high-volume"] >= MIN_HIGH
    assert rates["low-volume"] >= MIN_LOW
    assert rates["medium-volume"] >= MIN_MEDIUM
    # the CLI shows it too
    clip = test[0]
    top = d.describe([clip.path], top_k=1, effects=[("volume", {"alpha": 0.1})])[0].top
    assert top.labels == (clip.label,)


def test_fused_caption_outranks_both_single_captions_for_held_out_mixes(ext, tiny_encoder):
    from seeingsounds.audio.render import render
    from seeingsounds.describe import Describer

    out, _, test, _ = ext
    d = Describer(out, encoder=tiny_encoder)
    entries = d.captions.entries
    pairs = [(a, b) for a, b in itertools.combinations(test, 2) if a.label != b.label]
    chosen = [pairs[i] for i in np.random.default_rng(0).choice(len(pairs), 60, replace=False)]
    sims = d.similarity([render(a.path, sample_rate=tiny_encoder.sample_rate, mix=(b.path, 0.5)) for a, b in chosen])
    wins = [s[row(entries, "fused", (a.label, b.label))] > max(s[row(entries, "class", (a.label,))],
                                                               s[row(entries, "class", (b.label,))])
            for (a, b), s in zip(chosen, sims)]
    print(f"held-out mixes: fused caption outranks both single captions in {np.mean(wins):.3f} of {len(wins)}")
    assert np.mean(wins) >= MIN_MIX


def test_epoch_pairs_follow_eq7(ext, tiny_preset, tiny_encoder):
    """n original + n*h transformed + N mixed pairs, each term weighted by 1 / its own count."""
    from seeingsounds.model import load_backend
    from seeingsounds.presets import get_preset
    from seeingsounds.training import TrainConfig, Trainer

    out, _, _, root = ext
    preset = tiny_long(tiny_preset)
    cfg = TrainConfig(preset=preset, data=root / "manifest.csv", captions=root / "captions.json", out=root / "pairs",
                      epochs=1, batch_size=32, cache_dir=root / "cache", progress=False, augment_weight=2.0,
                      augment=[[["volume", {"alpha": 0.1}]], [["volume", {"alpha": 0.35}], ["reverb", {}]]],
                      mix_pairs=30)
    trainer = Trainer(cfg, encoder=tiny_encoder, backend=load_backend(get_preset(preset)), log=lambda m: None)
    trainer.setup()
    rows = trainer.epoch_rows(0)
    terms = [r[2] for r in rows]
    n = 80
    assert (terms.count(0), terms.count(1), terms.count(2)) == (n, 2 * n, 30)
    total = len(rows)
    weights = {t: sorted({round(r[3], 9) for r in rows if r[2] == t}) for t in (0, 1, 2)}
    assert weights == {0: [round(total / n, 9)], 1: [round(2.0 * total / (2 * n), 9)], 2: [round(total / 30, 9)]}
    chained = [trainer.captions.entries[r[1]] for r in rows if r[2] == 1 and len(trainer.captions.entries[r[1]].descriptions) == 2]
    assert len(chained) == n and all(e.descriptions == ("medium-volume", "reverberant") for e in chained)
    assert [r[1] for r in rows] == [r[1] for r in trainer.epoch_rows(0)]  # seeded
    mixes0 = sorted(str(r[0]) for r in rows if r[2] == 2)
    mixes1 = sorted(str(r[0]) for r in trainer.epoch_rows(1) if r[2] == 2)
    assert mixes0 == mixes1  # one fixed pool of mixes, drawn once from the seed, every epoch
    fused = [trainer.captions.entries[r[1]] for r in rows if r[2] == 2]
    assert all(e.kind == "fused" and len(set(e.labels)) == 2 for e in fused)


def test_parse_augment():
    from seeingsounds.errors import ConfigError
    from seeingsounds.training.config import parse_augment

    assert parse_augment("volume:alpha=0.1") == [["volume", {"alpha": 0.1}]]
    assert parse_augment("reverb") == [["reverb", {}]]
    assert parse_augment("volume:alpha=0.35+reverb:room_size=0.8,wet_level=0.3") == [
        ["volume", {"alpha": 0.35}], ["reverb", {"room_size": 0.8, "wet_level": 0.3}]]
    for bad in ("volume:alpha", "volume+", "volume:=3"):
        with pytest.raises(ConfigError):
            parse_augment(bad)
