"""Run a benchmark protocol on a trained checkpoint: generate (or reuse) images, judge, report.

Images are written one PNG per clip x seed under ``<out>/images/<class>/<clip>-<hash>_seed<s>.png``
(``hash`` = first 8 hex digits of the SHA-1 of the clip's resolved path), each as soon as it is
generated, so an interrupted run resumes where it stopped without regenerating anything.
``<out>/images/generation.json`` records the checkpoint and generation settings; a resumed run
with other settings is refused instead of mixing images.

``no_images=True`` evaluates caption retrieval only (METRICS.md): the aligner's predictions for
the evaluation clips ranked against the run's own class-caption targets
(``caption_targets.safetensors``): no generator, no judge, no text encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.data.protocols import ProtocolData, Row, class_text, get_protocol, normalise_label
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation import metrics as M
from seeingsounds.evaluation.report import library_versions, slug, write_grids, write_json, write_markdown

logger = logging.getLogger(__name__)

GALLERIES = ("classes", "frames")
METRIC_CHOICES = ("AIC", "R@5", "AIS")
RECALL_KS = (1, 5, 10)
IMAGES_DIR = "images"
GENERATION_FILE = "generation.json"


@dataclass
class EvaluationSettings:
    """Everything ``seeingsounds evaluate`` takes (recorded in the report)."""

    checkpoint: str
    protocol: str
    data: str
    out: str
    seeds: Sequence[int] | None = None
    images_per_clip: int | None = None
    no_images: bool = False
    judge_aic: str | None = None
    judge_clip: str | None = None
    judge_wav2clip: str | None = None
    wav2clip_sr: int = 16000
    gallery: str | None = None
    limit: int | None = None
    metrics: Sequence[str] | None = None
    split_seed: int = 0
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 4
    max_grid_clips: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_seeds(protocol_seeds: Sequence[int], seeds: Sequence[int] | None, images_per_clip: int | None) -> list[int]:
    """``seeds`` as given; else ``0 .. images_per_clip - 1``; else the protocol's default seeds."""
    if seeds:
        seeds = [int(s) for s in seeds]
        if images_per_clip is not None and images_per_clip != len(seeds):
            raise ConfigError(f"--images-per-clip {images_per_clip} disagrees with {len(seeds)} --seeds: give one of them")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"--seeds has duplicates: {seeds}")
        return seeds
    if images_per_clip is not None:
        if images_per_clip < 1:
            raise ConfigError(f"--images-per-clip must be >= 1, got {images_per_clip}")
        return list(range(images_per_clip))
    return list(protocol_seeds)


def image_path(out: Path, row: Row, seed: int) -> Path:
    """Deterministic PNG path of one clip x seed."""
    digest = hashlib.sha1(str(row.path.resolve()).encode()).hexdigest()[:8]
    return Path(out) / IMAGES_DIR / slug(row.label) / f"{slug(row.path.stem)}-{digest}_seed{seed}.png"


def _checkpoint_identity(checkpoint: str) -> dict[str, Any]:
    from seeingsounds.checkpoint import resolve_checkpoint

    folder = resolve_checkpoint(checkpoint)
    out: dict[str, Any] = {"checkpoint": str(Path(folder).resolve()) if Path(folder).exists() else folder}
    # the weights, and the config that records the preset (generator, steps, guidance, image size)
    for key, name in (("weights_sha256", "model.safetensors"), ("config_sha256", "config.json")):
        file = Path(folder) / name
        if file.is_file():
            digest = hashlib.sha256()
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out[key] = digest.hexdigest()
    return out


def _embed_files(judge: Any, files: Sequence[Path], batch: int = 64) -> np.ndarray:
    """Image embeddings of ``files``, ``batch`` images in memory at a time."""
    from PIL import Image

    rows = []
    for i in range(0, len(files), batch):
        images = []
        for path in files[i : i + batch]:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        rows.append(judge.embed_images(images))
    return np.concatenate(rows) if rows else judge.embed_images([])


class Evaluation:
    """One evaluation run (see the module docstring)."""

    def __init__(self, settings: EvaluationSettings):
        self.s = settings
        self.out = Path(settings.out)
        self.protocol = get_protocol(settings.protocol)
        if settings.gallery is not None and settings.gallery not in GALLERIES:
            raise ConfigError(f"--gallery must be one of {GALLERIES}, got {settings.gallery!r}")
        self.gallery = settings.gallery or self.protocol.default_gallery
        if settings.wav2clip_sr not in (16000, 44100):
            raise ConfigError(f"--wav2clip-sr must be 16000 or 44100, got {settings.wav2clip_sr}")
        if settings.limit is not None and settings.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {settings.limit}")
        chosen = list(settings.metrics or self.protocol.metrics)
        names = [str(m).upper().replace("R@K", "R@5") for m in chosen]  # "R@k" means R@1/5/10 too
        unknown = [m for m, n in zip(chosen, names) if n not in METRIC_CHOICES]
        if unknown:
            raise ConfigError(f"unknown metrics {unknown}; choose from {METRIC_CHOICES}")
        self.metric_names = list(dict.fromkeys(names))
        self.seeds = resolve_seeds(self.protocol.default_seeds, settings.seeds, settings.images_per_clip)
        self.generated = 0
        self.reused = 0
        self._pipe: Any = None

    # ---- data -----------------------------------------------------------------------------
    def load_data(self) -> tuple[ProtocolData, list[Row]]:
        data = self.protocol.load(self.s.data, seed=self.s.split_seed)
        rows = data.evaluation_rows(self.s.limit)
        if not rows:
            raise ConfigError(f"{self.s.data}: no test clips to evaluate")
        return data, rows

    # ---- generation -----------------------------------------------------------------------
    @property
    def pipe(self) -> Any:
        if self._pipe is None:
            from seeingsounds.pipeline import SeeingSoundsPipeline

            self._pipe = SeeingSoundsPipeline.from_pretrained(self.s.checkpoint, device=self.s.device, dtype=self.s.dtype)
        return self._pipe

    def _check_generation_record(self) -> None:
        record = {**_checkpoint_identity(self.s.checkpoint), "device_dtype": [self.s.device, self.s.dtype]}
        path = self.out / IMAGES_DIR / GENERATION_FILE
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old != record:
                raise ConfigError(
                    f"{self.out / IMAGES_DIR} holds images of another checkpoint or settings ({old}); "
                    "give a new --out, or delete that folder to regenerate"
                )
            return
        from seeingsounds.paths import atomic_write_text

        atomic_write_text(path, json.dumps(record, indent=2) + "\n")

    def ensure_images(self, rows: Sequence[Row]) -> list[list[Path]]:
        """Paths of every clip's images (one per seed), generating the missing ones."""
        from seeingsounds.imaging import save_png

        self._check_generation_record()
        paths = [[image_path(self.out, r, s) for s in self.seeds] for r in rows]
        todo = [i for i, ps in enumerate(paths) if not all(p.is_file() for p in ps)]
        self.reused = sum(p.is_file() for ps in paths for p in ps)
        batch = max(1, int(self.s.batch_size))
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            missing_seeds = sorted({s for i in chunk for s, p in zip(self.seeds, paths[i]) if not p.is_file()})
            output = self.pipe([str(rows[i].path) for i in chunk], seeds=missing_seeds,
                               num_images_per_audio=len(missing_seeds), batch_size=batch)
            k = 0
            for i in chunk:
                for seed in missing_seeds:
                    image, k = output.images[k], k + 1
                    target = paths[i][self.seeds.index(seed)]
                    if target.is_file():
                        continue
                    save_png(image, target, {"source": str(rows[i].path), "label": rows[i].label, "seed": seed,
                                             "checkpoint": self.s.checkpoint, "protocol": self.protocol.name,
                                             "settings": output.settings})
                    self.generated += 1
        return paths

    # ---- metrics --------------------------------------------------------------------------
    def judge(self, kind: str) -> Any:
        from seeingsounds.evaluation.judges import get_judge

        if kind == "aic":
            return get_judge("aic", self.s.judge_aic, device=self.s.device or "cpu")
        if kind == "clip":
            return get_judge("clip", self.s.judge_clip, device=self.s.device or "cpu")
        return get_judge("wav2clip", self.s.judge_wav2clip, sample_rate=self.s.wav2clip_sr, device=self.s.device or "cpu")

    def image_metrics(self, data: ProtocolData, rows: Sequence[Row], paths: Sequence[Sequence[Path]]) -> dict[str, Any]:
        classes = sorted(data.classes)  # METRICS.md: sorted(set(labels)), raw names
        flat = [(r, p) for r, ps in zip(rows, paths) for p in ps]
        labels = np.array([classes.index(r.label) for r, _ in flat])
        images = [p for _, p in flat]
        results: dict[str, Any] = {}
        judges: dict[str, Any] = {}
        per_class: dict[str, dict[str, float]] = defaultdict(dict)
        if "AIC" in self.metric_names:
            judge = self.judge("aic")
            # METRICS.md: the raw class names, tokenised as is (no '_' -> ' ', no template)
            img, txt = _embed_files(judge, images), judge.embed_texts(list(classes))
            results["AIC"] = M.aic(img, txt, labels)
            for c_index, name in enumerate(classes):
                mask = labels == c_index
                if mask.any():
                    per_class[name]["AIC"] = M.aic(img[mask], txt, labels[mask])
            judges["aic"] = judge.describe()
        clip_images = None
        if "R@5" in self.metric_names or "AIS" in self.metric_names:
            judge = self.judge("clip")
            clip_images = _embed_files(judge, images)
            judges["clip"] = judge.describe()
        if "R@5" in self.metric_names:
            if self.gallery == "classes":
                gallery = judge.embed_texts([class_text(c) for c in classes])
                targets = labels
            else:
                frames = [r.frame for r in rows]
                lacking = [str(r.path) for r in rows if r.frame is None or not r.frame.is_file()]
                if lacking:
                    raise ConfigError(f"--gallery frames needs an existing 'frame' for every clip; missing for "
                                      f"{len(lacking)}: {', '.join(lacking[:5])}")
                unique = sorted({str(f) for f in frames})
                gallery = _embed_files(judge, [Path(f) for f in unique])
                targets = np.array([unique.index(str(r.frame)) for r, _ in flat])
            for k in RECALL_KS:
                results[f"R@{k}"] = M.recall_at_k(clip_images, gallery, targets, k)
        if "AIS" in self.metric_names:
            from seeingsounds.audio.io import load_audio

            w2c = self.judge("wav2clip")
            waves = [load_audio(str(r.path), target_sr=w2c.sample_rate) for r in rows]
            audio = w2c.embed_audio(waves, w2c.sample_rate)
            per_image_audio = np.repeat(audio, len(self.seeds), axis=0)
            results["AIS"] = M.ais(clip_images, per_image_audio, audio)
            judges["wav2clip"] = w2c.describe()
        return {"metrics": results, "judges": judges, "per_class": dict(per_class)}

    def caption_metrics(self, rows: Sequence[Row]) -> dict[str, Any]:
        """Caption retrieval against the run's class-caption targets (no generator, no judge)."""
        import torch

        from seeingsounds.aligner import SeeingSoundsAligner
        from seeingsounds.audio.io import load_audio
        from seeingsounds.checkpoint import resolve_checkpoint
        from seeingsounds.model import load_encoder
        from seeingsounds.presets import get_preset
        from seeingsounds.training.captionset import load_caption_set

        captions, targets = load_caption_set(self.s.checkpoint)
        main_row: dict[str, int] = {}
        for i, entry in enumerate(captions.entries):
            if entry.kind == "class" and len(entry.labels) == 1:
                main_row.setdefault(normalise_label(entry.labels[0]), i)
        classes = sorted({r.label for r in rows})
        lacking = [c for c in classes if normalise_label(c) not in main_row]
        if lacking:
            raise ConfigError(
                f"caption retrieval needs a class caption of every evaluated class in the run; "
                f"{len(lacking)} have none: {', '.join(lacking)} (was the run trained on this protocol's classes?)"
            )
        run_classes = sorted(main_row, key=main_row.get)
        caption_rows = [main_row[c] for c in run_classes]
        labels = np.array([run_classes.index(normalise_label(r.label)) for r in rows])
        aligner = SeeingSoundsAligner.from_pretrained(resolve_checkpoint(self.s.checkpoint)).eval()
        if not aligner.preset:
            raise ConfigError(f"checkpoint {self.s.checkpoint} records no preset")
        encoder = load_encoder(get_preset(aligner.preset))
        waves = [load_audio(str(r.path), target_sr=encoder.sample_rate) for r in rows]
        with torch.no_grad():
            tokens = encoder.encode(waves, batch_size=max(1, int(self.s.batch_size)))
            pred = aligner(tokens.to(torch.float32))
        names = aligner.aligned_names  # unaligned heads are constant: they carry no evidence
        pred_np = {n: pred[n].float().numpy() for n in names}
        target_np = {n: targets[n][caption_rows].float().numpy() for n in names}
        out = M.caption_retrieval(pred_np, target_np, labels, k=5)
        per_class = {}
        for c in classes:
            mask = np.array([r.label == c for r in rows])
            sub = M.caption_retrieval({n: v[mask] for n, v in pred_np.items()}, target_np, labels[mask], k=5)
            per_class[c] = {"caption_top1": sub["top1"], "caption_top5": sub["topk"]}
        return {
            "metrics": {"caption_top1": out["top1"], "caption_top5": out["topk"],
                        "caption_mean_cosine": out["mean_cosine"], "caption_mean_rank": out["mean_rank"]},
            "per_class": per_class,
            "caption_retrieval": {"captions": len(run_classes), "heads": names, "sequence": "flatten"},
        }

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        data, rows = self.load_data()
        report: dict[str, Any] = {
            "protocol": self.protocol.describe(),
            "checkpoint": self.s.checkpoint,
            "data": str(Path(self.s.data).resolve()),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.s).items()},
            "versions": library_versions(),
            "seeds": self.seeds,
            "split_seed": self.s.split_seed,
            "reference": self.protocol.reference,
            "notes": list(self.protocol.notes),
        }
        if self.s.no_images:
            result = self.caption_metrics(rows)
            report.update(mode="caption-retrieval", metrics=result["metrics"], per_class=result["per_class"],
                          caption_retrieval=result["caption_retrieval"], judges={},
                          counts={"clips": len(rows), "images": 0})
            report["reference"] = {}  # the paper reports no caption retrieval
        else:
            paths = self.ensure_images(rows)
            result = self.image_metrics(data, rows, paths)
            by_class: dict[str, list[list[Path]]] = defaultdict(list)
            for r, ps in zip(rows, paths):
                by_class[r.label].append(ps)
            grids = write_grids(by_class, self.out, max_clips=self.s.max_grid_clips)
            report.update(mode="images", metrics=result["metrics"], judges=result["judges"], per_class=result["per_class"],
                          gallery=self.gallery if any(k.startswith("R@") for k in result["metrics"]) else None,
                          grids=grids, counts={"clips": len(rows), "images": sum(len(p) for p in paths),
                                               "generated": self.generated, "reused": self.reused})
            if "AIC" in self.metric_names:
                report["notes"].append("AIC text side: the raw class names, sorted, tokenised as is, no prompt template")
            if "R@5" in self.metric_names:
                text = " (class names with '_' as spaces)" if self.gallery == "classes" else ""
                report["notes"].append(f"R@k gallery: {self.gallery}{text} (Sound2Scene's exact protocol is not public)")
        report["seconds"] = round(time.time() - started, 2)
        write_json(report, self.out)
        write_markdown(report, self.out)
        return report


def evaluate(settings: EvaluationSettings) -> dict[str, Any]:
    """Run one evaluation and write ``report.json``, ``report.md`` and ``grids/`` under ``settings.out``."""
    return Evaluation(settings).run()
