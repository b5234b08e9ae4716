"""Image-level results offline: the `offline` preset's trained generator judged by the offline judge.

Two parts of issue 18's end-to-end table (the zero-shot and ablation rows are still to come):

* **caption -> picture** (the generator's upper bound): the MiniLM targets of each concept's caption
  ("the sound of a dog") go straight into the generator; the offline judge ranks each picture against
  the concepts' noun captions ("a dog"). Over all 144 concepts and over the demo's 7.
* **sound -> picture** on held-out clips (``--run RUN --data MANIFEST``): each ``test`` clip of the
  manifest goes through the run's audio encoder and aligner into the generator; the judge ranks the
  picture against the run's classes (their picture-set noun captions).

Chance is 1 / the number of candidate captions. Prints a table; ``--json FILE`` writes the numbers.

    python benchmarks/image_level.py                                      # caption -> picture
    python benchmarks/image_level.py --run demo-output/run --data demo-output/data/real/manifest.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from seeingsounds.data.manifest import load_dataset
from seeingsounds.data.pictures import CONCEPTS, captions_for
from seeingsounds.demo import DEMO_CONCEPTS
from seeingsounds.evaluation.judges import judge_pictures
from seeingsounds.evaluation.offline_judge import OfflineJudge
from seeingsounds.model import load_backend
from seeingsounds.pipeline import SeeingSoundsPipeline
from seeingsounds.presets import get_preset


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
    concepts = labels
    images = pipe([str(c.path) for c in clips], seed=seed).images
    judged = judge_pictures(judge, images, [noun_caption(c) for c in concepts],
                            [labels.index(c.label) for c in clips])
    return scores(judged.scores, len(clips), len(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained offline run (e.g. demo-output/run)")
    parser.add_argument("--data", type=Path, help="the run's manifest (captions.json beside it): its test clips are judged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    judge = OfflineJudge()
    rows: dict[str, dict[str, float]] = {}
    t0 = time.time()
    rows["caption -> picture, 144 concepts"] = caption_to_picture(judge, [c.id for c in CONCEPTS], args.seed)
    demo = list(DEMO_CONCEPTS)
    rows[f"caption -> picture, the demo's {len(demo)} concepts"] = caption_to_picture(judge, demo, args.seed)
    if args.run and args.data:
        rows["sound -> picture, held-out clips"] = sound_to_picture(judge, args.run, args.data, args.seed)
    print("| task | pictures | judge top-1 | top-5 | chance |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['pictures']} | {r['top1']:.2f} | {r['top5']:.2f} | {r['chance']:.3f} |")
    print(f"({time.time() - t0:.0f} s; judge: the offline judge, {judge.describe()})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
