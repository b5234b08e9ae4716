"""Image-level results offline: the `offline` preset's trained generator judged by the offline judge.

The rows of issue 18's end-to-end table (``--parts`` picks them):

* ``caption`` -- **caption -> picture** (the generator's upper bound): the MiniLM targets of each
  concept's caption ("the sound of a dog") go straight into the generator; the offline judge ranks each
  picture against the concepts' noun captions ("a dog"). Over all 144 concepts and over the demo's 7.
* ``sound`` -- **sound -> picture** on held-out clips of a trained run (``--run RUN --data MANIFEST``):
  each ``test`` clip goes through the run's audio encoder and aligner into the generator; the judge ranks
  the picture against the run's classes (their picture-set noun captions).
* ``zero-shot`` -- **sound -> picture on classes never trained** (the ESC-50 protocol in miniature) on
  the demo's real recordings (:func:`seeingsounds.demo.real_sounds_dataset`): the demo's concepts are
  dealt into leave-k-classes-out folds (every concept is unseen in one fold); each fold trains an aligner
  on the other concepts, then every clip of its unseen concepts and the held-out test
  clips of its trained ones become pictures, judged among all the demo's concepts. Also: the
  picture concepts with real recordings the demo does not use (too few clips to train on,
  :data:`seeingsounds.data.debian_sounds.PICTURE_CONCEPTS`) from the ``ablations`` part's full model,
  judged among all concepts and among the unseen ones only.
* ``ablations`` -- the paper's Table 4 variants (the training switches of
  :data:`seeingsounds.evaluation.offline_alignment.VARIANTS`) trained on the demo's data, each judged on
  its held-out clips.

Trained parts use the demo's batch size, epochs and patience with plain Eq. 6 pairs (``--extended``: the
demo's Eq. 7 recipe) and report mean ± std over ``--seeds`` (a seed draws the demo's split and seeds the
training). Chance is 1 / the number of candidate captions. Prints a table and the seconds each part took;
``--json FILE`` writes the numbers.

    python benchmarks/image_level.py                                      # caption -> picture
    python benchmarks/image_level.py --run demo-output/run --data demo-output/data/real/manifest.csv
    python benchmarks/image_level.py --parts zero-shot ablations --seeds 0 1 2 --out runs/image-level
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.audio.io import audio_seconds, load_audio
from seeingsounds.checkpoint import resolve_checkpoint
from seeingsounds.data import debian_sounds
from seeingsounds.data.manifest import Clip, load_dataset, write_manifest
from seeingsounds.data.pictures import CONCEPTS, captions_for
from seeingsounds.demo import AUGMENT, CLIP_SECONDS, DEMO_CONCEPTS, EPOCHS, MIN_CLIP_SECONDS, MIX_PAIRS, PATIENCE, \
    class_caption, real_sounds_dataset
from seeingsounds.evaluation.judges import judge_pictures
from seeingsounds.evaluation.offline_alignment import VARIANTS
from seeingsounds.evaluation.offline_judge import OfflineJudge
from seeingsounds.model import load_backend, load_encoder
from seeingsounds.paths import atomic_write_text
from seeingsounds.pipeline import SeeingSoundsPipeline
from seeingsounds.presets import get_preset
from seeingsounds.runs import RunFolder
from seeingsounds.training import TrainConfig
from seeingsounds.training.trainer import Trainer

PARTS = ("caption", "sound", "zero-shot", "ablations")
#: an audio input of the pipeline (a path or a ``(sample_rate, wave)`` pair) and its concept id
Sound = tuple[Any, str]


def say(message: str) -> None:
    print(message, flush=True)


def noun_caption(concept_id: str) -> str:
    """The judge's caption of a concept: its first phrasing ("a dog")."""
    return captions_for(concept_id)[0]


def scores(judged: dict[str, float], pictures: int, candidates: int) -> dict[str, float]:
    """Fractions (the metrics module gives percents) with the chance level of ``candidates`` captions."""
    return {"top1": judged["top1"] / 100, "top5": judged["topk"] / 100, "pictures": pictures,
            "chance": 1 / candidates}


def caption_to_picture(judge: OfflineJudge, concepts: list[str], seed: int) -> dict[str, float]:
    preset = get_preset("offline")
    backend = load_backend(preset)
    pipe = backend.load_image_pipeline()
    conditioning = backend.encode_captions([captions_for(c)[2] for c in concepts], device="cpu", dtype=torch.float32)
    images = backend.generate(pipe, conditioning, seeds=[seed + i for i in range(len(concepts))],
                              num_inference_steps=preset.num_inference_steps, height=preset.height, width=preset.width)
    judged = judge_pictures(judge, images, [noun_caption(c) for c in concepts], list(range(len(concepts))))
    return scores(judged.scores, len(concepts), len(concepts))


def sound_to_picture(judge: OfflineJudge, run: Path, data: Path, seed: int) -> dict[str, float]:
    pipe = SeeingSoundsPipeline.from_pretrained(str(run))
    clips = load_dataset(data, data.parent / "captions.json").split("test")
    labels = sorted({c.label for c in clips})  # the demo's class labels are picture-set concept ids
    return judge_sounds(judge, pipe, [(str(c.path), c.label) for c in clips], labels, seed)


def judge_sounds(judge: OfflineJudge, pipe: SeeingSoundsPipeline, sounds: Sequence[Sound], candidates: Sequence[str],
                 seed: int, *, seen: Sequence[str] = ()) -> dict[str, float]:
    """A picture from each sound, ranked by the judge among ``candidates``' noun captions.

    With ``seen`` (the concepts the aligner was trained on), ``to_seen`` is the share of pictures whose
    best caption is one of them: where the pictures of unseen classes go.
    """
    images = pipe([audio for audio, _ in sounds], seed=seed).images
    judged = judge_pictures(judge, images, [noun_caption(c) for c in candidates],
                            [list(candidates).index(concept) for _, concept in sounds])
    out = scores(judged.scores, len(sounds), len(candidates))
    if seen:
        best = np.asarray(judged.similarity).argmax(axis=1)
        out["to_seen"] = float(np.mean([candidates[i] in seen for i in best]))
    return out


# ---- trained parts: the demo's data, folds and Table 4 variants --------------------------------------------------
class Lab:
    """The offline preset's encoder, backend and generator, loaded once; trains runs and builds their pipelines."""

    def __init__(self, out: Path, *, epochs: int = EPOCHS, extended: bool = False, log: Callable[[str], None] = say):
        self.out, self.epochs, self.log = out, epochs, log
        #: the demo's extended objective (Eq. 7: quieter copies, mixes), else plain Eq. 6 pairs
        self.recipe = {"augment": AUGMENT, "augment_weight": 3.0, "mix_pairs": MIX_PAIRS} if extended else {}
        self.preset = get_preset("offline")
        self.encoder, self.backend = load_encoder(self.preset), load_backend(self.preset)
        self.generator = self.backend.load_image_pipeline()

    def demo_data(self, seed: int) -> list[Clip]:
        """The demo's real recordings with its train / val / test split drawn with ``seed``."""
        manifest, captions = real_sounds_dataset(self.out / f"data-seed{seed}", seed=seed,
                                                 sample_rate=self.encoder.sample_rate)
        return load_dataset(manifest, captions).clips

    def train(self, run: Path, clips: Sequence[Clip], seed: int, **options: Any) -> Path:
        """Train an aligner (the demo's batch size and patience, ``self.recipe``, ``options``) on the train /
        val ``clips``; a finished run of the same options in ``run`` is reused."""
        concepts = sorted({c.label for c in clips})
        data = run.parent / f"{run.name}-data"
        manifest = write_manifest(data / "manifest.csv", [(c.path, c.label, c.split) for c in clips
                                                          if c.split in ("train", "val")])
        captions = atomic_write_text(data / "captions.json",
                                     json.dumps({c: class_caption(c) for c in concepts}, indent=1) + "\n")
        config = TrainConfig(preset=self.preset.name, data=str(manifest), captions=str(captions), out=str(run),
                             epochs=self.epochs, batch_size=16, patience=PATIENCE, seed=seed, progress=False,
                             cache_dir=str(self.out / "features"), resume=RunFolder(run).holds_run(),
                             **self.recipe, **options)
        Trainer(config, encoder=self.encoder, backend=self.backend, log=lambda _message: None).fit()
        return run

    def pipeline(self, run: Path) -> SeeingSoundsPipeline:
        aligner = SeeingSoundsAligner.from_pretrained(resolve_checkpoint(run))
        return SeeingSoundsPipeline(aligner=aligner, encoder=self.encoder, backend=self.backend,
                                    generator=self.generator, preset=self.preset, device=torch.device("cpu"),
                                    dtype=torch.float32, checkpoint=str(run))


def leave_out_folds(concepts: Sequence[str], classes_out: int, seed: int) -> list[list[str]]:
    """The concepts dealt, seeded, into folds of ``classes_out`` (the last may be smaller): each concept is
    held out of training in exactly one fold."""
    if not 1 <= classes_out < len(concepts):
        raise ValueError(f"classes_out must be in 1 .. {len(concepts) - 1}, got {classes_out}")
    order = random.Random(seed).sample(sorted(concepts), len(concepts))
    return [sorted(order[i : i + classes_out]) for i in range(0, len(order), classes_out)]


def further_sounds(sample_rate: int, exclude: Sequence[str] = DEMO_CONCEPTS) -> list[Sound]:
    """The first :data:`CLIP_SECONDS` of every real recording of a picture concept not in ``exclude``
    (as the demo cuts its clips), as ``((sample_rate, wave), concept)``."""
    found = debian_sounds.scan_debian_sounds()
    sounds = []
    for label, paths in found.items():
        concept = debian_sounds.PICTURE_CONCEPTS.get(label)
        if concept is None or concept in exclude:
            continue
        for path in paths:
            if audio_seconds(path) >= MIN_CLIP_SECONDS:
                wave = load_audio(path, target_sr=sample_rate, num_samples=round(CLIP_SECONDS * sample_rate), pad=False)
                sounds.append(((sample_rate, wave), concept))
    return sorted(sounds, key=lambda s: s[1])


def zero_shot(lab: Lab, judge: OfflineJudge, seed: int, *, concepts: Sequence[str] = DEMO_CONCEPTS,
              classes_out: int = 1) -> dict[str, Any]:
    """Leave-``classes_out``-classes-out folds over ``concepts``: per fold, an aligner trained on the other
    concepts; pictures of every clip of the unseen concepts and of the trained concepts' test clips, judged
    among all ``concepts``. Returns the pooled scores of both and each fold's concepts and scores."""
    clips = [c for c in lab.demo_data(seed) if c.label in concepts]
    candidates = sorted(concepts)
    folds, unseen_hits, seen_hits = [], [], []
    for k, held_out in enumerate(leave_out_folds(candidates, classes_out, seed)):
        trained = [c for c in candidates if c not in held_out]
        run = lab.train(lab.out / f"seed{seed}" / f"zero-shot-{k}", [c for c in clips if c.label in trained], seed)
        pipe = lab.pipeline(run)
        unseen = [(str(c.path), c.label) for c in clips if c.label in held_out]
        tested = [(str(c.path), c.label) for c in clips if c.label in trained and c.split == "test"]
        fold = {"held_out": held_out, "trained": trained,
                "unseen": judge_sounds(judge, pipe, unseen, candidates, seed, seen=trained),
                "seen": judge_sounds(judge, pipe, tested, candidates, seed, seen=trained)}
        folds.append(fold)
        unseen_hits.append(fold["unseen"])
        seen_hits.append(fold["seen"])
        lab.log(f"seed {seed} fold {k}: unseen {held_out} top-1 {fold['unseen']['top1']:.2f}, "
                f"seen top-1 {fold['seen']['top1']:.2f}")
    return {"unseen": pooled(unseen_hits), "seen": pooled(seen_hits), "folds": folds}


def pooled(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Scores over the pictures of several folds (weighted by their pictures); the chance of the first."""
    n = sum(p["pictures"] for p in parts)
    keys = [key for key in ("top1", "top5", "to_seen") if key in parts[0]]
    out = {key: sum(p[key] * p["pictures"] for p in parts) / n for key in keys}
    return out | {"pictures": n, "chance": parts[0]["chance"]}


def ablations(lab: Lab, judge: OfflineJudge, seed: int, *, concepts: Sequence[str] = DEMO_CONCEPTS,
              variants: Mapping[str, Mapping[str, Any]] = VARIANTS, further: Sequence[Sound] = ()) -> dict[str, Any]:
    """Each variant trained on the demo's data (split ``seed``) of ``concepts``, judged on its held-out clips
    among them; the full variant (no options) also on ``further`` sounds of untrained concepts, judged among
    all concepts and among the untrained ones only."""
    clips = [c for c in lab.demo_data(seed) if c.label in concepts]
    concepts = sorted(concepts)
    tested = [(str(c.path), c.label) for c in clips if c.split == "test"]
    out: dict[str, Any] = {}
    for name, options in variants.items():
        slug = "_".join(f"{a}-{b}" for a, b in sorted(options.items())) or "full"
        pipe = lab.pipeline(lab.train(lab.out / f"seed{seed}" / f"ablation-{slug}", clips, seed, **options))
        out[name] = judge_sounds(judge, pipe, tested, concepts, seed)
        lab.log(f"seed {seed} {name}: top-1 {out[name]['top1']:.2f}")
        if not options and further:
            unseen = sorted({c for _, c in further})
            out["further: among all"] = judge_sounds(judge, pipe, further, concepts + unseen, seed, seen=concepts)
            out["further: among unseen"] = judge_sounds(judge, pipe, further, unseen, seed)
    return out


def mean_std(runs: Sequence[Mapping[str, float]], key: str) -> str:
    values = np.asarray([r[key] for r in runs], dtype=float)
    return f"{values.mean():.2f} ± {values.std():.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def table(rows: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """A Markdown table: one row per task, top-1 / top-5 as mean ± std over its runs (one per seed)."""
    lines = ["| task | pictures | judge top-1 | top-5 | chance | judged a trained class |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, runs in rows.items():
        to_seen = mean_std(runs, "to_seen") if "to_seen" in runs[0] else ""
        lines.append(f"| {name} | {sum(int(r['pictures']) for r in runs)} | {mean_std(runs, 'top1')} | "
                     f"{mean_std(runs, 'top5')} | {runs[0]['chance']:.3f} | {to_seen} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["caption", "sound"],
                        help="which rows (default: caption, and sound when --run/--data are given)")
    parser.add_argument("--run", type=Path, help="a trained offline run (e.g. demo-output/run)")
    parser.add_argument("--data", type=Path, help="the run's manifest (captions.json beside it): its test clips are judged")
    parser.add_argument("--seed", type=int, default=0, help="the caption and sound parts' seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="zero-shot and ablations: the seeds")
    parser.add_argument("--zero-shot-seeds", type=int, nargs="+",
                        help="zero-shot: these seeds instead of --seeds (fewer trainings)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="zero-shot and ablations: epochs per training")
    parser.add_argument("--classes-out", type=int, default=1, help="zero-shot: concepts held out per fold")
    parser.add_argument("--extended", action="store_true",
                        help="zero-shot and ablations: train with the demo's Eq. 7 recipe (slower), not Eq. 6")
    parser.add_argument("--out", type=Path, default=Path("runs/image-level"),
                        help="zero-shot and ablations: datasets, runs and feature cache (finished runs are reused)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if "zero-shot" in args.parts and not 1 <= args.classes_out < len(DEMO_CONCEPTS):
        parser.error(f"--classes-out must be in 1 .. {len(DEMO_CONCEPTS) - 1} (the demo has {len(DEMO_CONCEPTS)} concepts)")
    torch.set_num_threads(2)
    judge = OfflineJudge()
    rows: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    details: dict[str, Any] = {}
    t0 = time.time()
    if "caption" in args.parts:
        rows["caption -> picture, 144 concepts"] = [caption_to_picture(judge, [c.id for c in CONCEPTS], args.seed)]
        demo = list(DEMO_CONCEPTS)
        rows[f"caption -> picture, the demo's {len(demo)} concepts"] = [caption_to_picture(judge, demo, args.seed)]
        seconds["caption"] = time.time() - t0
    if "sound" in args.parts and args.run and args.data:
        t = time.time()
        rows["sound -> picture, held-out clips"] = [sound_to_picture(judge, args.run, args.data, args.seed)]
        seconds["sound"] = time.time() - t
    trains = {"zero-shot", "ablations"} & set(args.parts)
    lab = Lab(args.out, epochs=args.epochs, extended=args.extended) if trains else None
    if "zero-shot" in args.parts:
        t = time.time()
        seeds = args.zero_shot_seeds or args.seeds
        runs = [zero_shot(lab, judge, seed, classes_out=args.classes_out) for seed in seeds]
        details["zero-shot"] = runs
        n = len(DEMO_CONCEPTS)
        rows[f"zero-shot: sound -> picture, unseen classes (leave-{args.classes_out}-out folds of the demo's {n})"] = \
            [r["unseen"] for r in runs]
        rows["zero-shot folds: held-out clips of their trained classes"] = [r["seen"] for r in runs]
        seconds["zero-shot"] = time.time() - t
    if "ablations" in args.parts:
        t = time.time()
        further = further_sounds(lab.encoder.sample_rate)
        runs = [ablations(lab, judge, seed, further=further) for seed in args.seeds]
        details["ablations"] = runs
        for name in runs[0]:
            label = (f"zero-shot: {len(further)} clips of {len({c for _, c in further})} further concepts, full model, "
                     + name.split(": ")[1]) if name.startswith("further") else f"Table 4 variant: {name}"
            rows[label] = [r[name] for r in runs]
        seconds["ablations"] = time.time() - t
    print(table(rows))
    print(f"({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}; seeds {args.seeds} for the trained parts"
          f"{f' ({args.zero_shot_seeds} for zero-shot)' if args.zero_shot_seeds else ''}; "
          f"judge: the offline judge, {judge.describe()})")
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "seconds": seconds, "seeds": args.seeds,
                                                 "zero_shot_seeds": args.zero_shot_seeds or args.seeds,
                                                 "classes_out": args.classes_out, "epochs": args.epochs,
                                                 "objective": "Eq. 7 (the demo's)" if args.extended else "Eq. 6",
                                                 "details": details}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
