"""Caption retrieval on real sounds with real weights, for the model and its Table 4 ablations.

The ``offline`` preset aligns a real pretrained audio encoder (aisfx) to real text targets
(MiniLM), so caption retrieval measures real alignment on this machine. The protocol:

* classes are split, seeded, into *seen* (trained on) and *unseen* (never trained on) classes;
* seen classes' clips are split into train / val / test (per class, seeded);
* every variant is trained on the seen train/val clips, with several seeds;
* **seen**: held-out test clips of seen classes rank the seen classes' captions;
* **zero-shot**: clips of unseen classes rank the unseen captions only (the ESC-50 protocol in
  miniature), and all captions (seen + unseen), where a regressor trained on seen captions tends
  to collapse onto them.

Clips are rendered and predicted by :class:`seeingsounds.conditioner.AudioConditioner` (the encoder runs
once per clip and seed; each variant's aligner runs on those tokens) and ranked by
:class:`seeingsounds.retrieval.CaptionIndex` over the aligned tensors, as ``describe`` does. Chance is
1/number of candidate captions.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.data.debian_sounds import build_debian_manifest
from seeingsounds.data.manifest import read_manifest, write_manifest
from seeingsounds.errors import DatasetError
from seeingsounds.evaluation.metrics import retrieval_scores
from seeingsounds.model import load_backend, load_encoder
from seeingsounds.paths import atomic_write_text
from seeingsounds.presets import get_preset
from seeingsounds.retrieval import CaptionIndex
from seeingsounds.training import TrainConfig, train

#: paper Table 4 rows -> training options ("sequence" plays T5's part, "pooled" CLIP's)
VARIANTS: dict[str, dict[str, Any]] = {
    "w/o attention pooling (adaptive + mean)": {"pooling": "average"},
    "only pooled (CLIP-role) alignment": {"align": "pooled"},
    "only sequence (T5-role) alignment": {"align": "sequence"},
    "full (sequence + pooled + attention pooling)": {},
}


def split_protocol(manifest: str | Path, *, seed: int = 0, unseen_fraction: float = 0.2,
                   test_fraction: float = 0.25, val_fraction: float = 0.15) -> dict[str, list[tuple[str, str]]]:
    """``{"train", "val", "test", "unseen"}`` -> ``[(path, label)]``, seeded and stratified per class."""
    manifest = Path(manifest)
    problems: list[str] = []
    rows = read_manifest(manifest, problems)
    if problems:
        raise DatasetError(problems, header=f"cannot read {manifest}")
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        path = Path(row["path"]).expanduser()
        by_label[row["label"]].append(os.path.abspath(path if path.is_absolute() else manifest.parent / path))
    labels = sorted(by_label)
    if len(labels) < 4:
        raise DatasetError([f"{manifest} has {len(labels)} classes; the protocol needs at least 4"])
    rng = random.Random(seed)
    unseen = set(rng.sample(labels, max(2, round(unseen_fraction * len(labels)))))
    out: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": [], "unseen": []}
    for label in labels:
        paths = sorted(by_label[label])
        rng.shuffle(paths)
        if label in unseen:
            out["unseen"] += [(p, label) for p in paths]
            continue
        if len(paths) < 3:
            raise DatasetError([f"seen class {label!r} has {len(paths)} clips; the protocol needs at least 3"])
        n_test = max(1, round(test_fraction * len(paths)))
        n_val = max(1, round(val_fraction * len(paths)))
        out["test"] += [(p, label) for p in paths[:n_test]]
        out["val"] += [(p, label) for p in paths[n_test : n_test + n_val]]
        out["train"] += [(p, label) for p in paths[n_test + n_val :]]
    return out


def _write_training_data(folder: Path, split: Mapping[str, list[tuple[str, str]]],
                         captions: Mapping[str, str]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(folder / "manifest.csv",
                              [(p, label, name) for name in ("train", "val") for p, label in split[name]])
    seen = sorted({label for p, label in split["train"]})
    captions_path = folder / "captions.json"
    atomic_write_text(captions_path, json.dumps({label: captions[label] for label in seen}, indent=1))
    return manifest, captions_path


def run_offline_alignment(out: str | Path, *, manifest: str | Path | None = None, captions: str | Path | None = None,
                          preset: str = "offline", seeds: Sequence[int] = (0, 1, 2),
                          variants: Mapping[str, Mapping[str, Any]] = VARIANTS, epochs: int = 60,
                          unseen_fraction: float = 0.2, k: int = 5, progress: bool = False,
                          log: Any = print) -> dict[str, Any]:
    """Train every variant with every seed and measure caption retrieval; returns all numbers.

    ``manifest``/``captions`` default to the Debian real-sound manifest
    (:func:`seeingsounds.data.debian_sounds.build_debian_manifest`).
    """
    out = Path(out)
    if manifest is None:
        manifest, captions = build_debian_manifest(out / "debian")
    class_captions = {label: c[0] if isinstance(c, list) else c
                      for label, c in json.loads(Path(captions).read_text()).items()}
    chosen = get_preset(preset)
    encoder, backend = load_encoder(chosen), load_backend(chosen)
    labels_all = sorted(class_captions)
    targets = {n: v.numpy() for n, v in backend.encode_captions([class_captions[x] for x in labels_all]).items()}
    row_of = {label: i for i, label in enumerate(labels_all)}
    results: dict[str, Any] = {"preset": chosen.name, "seeds": list(seeds), "k": k, "variants": {}}
    waves: dict[str, np.ndarray] = {}

    def tokens(clips: Sequence[tuple[str, str]], conditioner: AudioConditioner) -> torch.Tensor:
        for p, _ in clips:
            if p not in waves:
                waves[p] = conditioner.render(p)
        return encoder.encode([waves[p] for p, _ in clips])

    for seed in seeds:
        split = split_protocol(manifest, seed=seed, unseen_fraction=unseen_fraction)
        seen = sorted({label for _, label in split["train"]})
        unseen = sorted({label for _, label in split["unseen"]})
        data_manifest, data_captions = _write_training_data(out / f"seed{seed}" / "data", split, class_captions)
        test_tokens = unseen_tokens = None
        results.setdefault("sizes", {})[seed] = {k_: len(v) for k_, v in split.items()} | {
            "seen_classes": len(seen), "unseen_classes": len(unseen)}
        for name, options in variants.items():
            run = out / f"seed{seed}" / name.split(" ")[0].replace("/", "") / "_".join(
                f"{a}-{b}" for a, b in sorted(options.items()))
            train(TrainConfig(preset=chosen.name, data=str(data_manifest), captions=str(data_captions), out=str(run),
                              epochs=epochs, batch_size=32, patience=max(5, epochs // 5), seed=seed,
                              progress=progress, **options), encoder=encoder, backend=backend)
            conditioner = AudioConditioner(encoder, SeeingSoundsAligner.from_pretrained(run / "best"))
            names = conditioner.names
            if test_tokens is None:  # the frozen encoder's tokens, once per seed for every variant
                test_tokens, unseen_tokens = tokens(split["test"], conditioner), tokens(split["unseen"], conditioner)

            def rank(clip_tokens: torch.Tensor, clips: Sequence[tuple[str, str]],
                     candidates: Sequence[str]) -> dict[str, float]:
                index = CaptionIndex({n: targets[n][[row_of[c] for c in candidates]] for n in names}, names)
                local = {c: i for i, c in enumerate(candidates)}
                sim = np.concatenate([index.similarity(p).double().numpy()
                                      for p in conditioner.predict_tokens(clip_tokens)])
                return retrieval_scores(sim, [local[label] for _, label in clips], k=k)

            scores = {
                "seen": rank(test_tokens, split["test"], seen),
                "zero_shot_unseen": rank(unseen_tokens, split["unseen"], unseen),
                "zero_shot_all": rank(unseen_tokens, split["unseen"], labels_all),
                "chance": {"seen": 100 / len(seen), "zero_shot_unseen": 100 / len(unseen),
                           "zero_shot_all": 100 / len(labels_all)},
            }
            results["variants"].setdefault(name, {})[seed] = scores
            log(f"seed {seed} | {name}: seen top-1 {scores['seen']['top1']:.1f}, top-{k} {scores['seen']['topk']:.1f}; "
                f"zero-shot (unseen) top-1 {scores['zero_shot_unseen']['top1']:.1f}")
    return results


def _mean_std(values: Sequence[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.1f} ± {arr.std():.1f}" if len(arr) > 1 else f"{arr.mean():.1f}"


def format_table(results: Mapping[str, Any]) -> str:
    """A Markdown table in the layout of the paper's Table 4 (mean ± std over seeds, percent)."""
    k = results["k"]
    lines = [
        f"| model variant | seen top-1 | seen top-{k} | zero-shot top-1 (unseen captions) | "
        f"zero-shot top-{k} (unseen) | zero-shot top-1 (all captions) |",
        "|---|---|---|---|---|---|",
    ]
    chance = None
    for name, by_seed in results["variants"].items():
        runs = list(by_seed.values())
        chance = runs[0]["chance"]
        cells = [_mean_std([r["seen"]["top1"] for r in runs]), _mean_std([r["seen"]["topk"] for r in runs]),
                 _mean_std([r["zero_shot_unseen"]["top1"] for r in runs]),
                 _mean_std([r["zero_shot_unseen"]["topk"] for r in runs]),
                 _mean_std([r["zero_shot_all"]["top1"] for r in runs])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if chance:
        lines.append(f"| chance | {chance['seen']:.1f} | {min(100.0, k * chance['seen']):.1f} | "
                     f"{chance['zero_shot_unseen']:.1f} | {min(100.0, k * chance['zero_shot_unseen']):.1f} | "
                     f"{chance['zero_shot_all']:.1f} |")
    return "\n".join(lines)
