"""Run a benchmark protocol on a trained checkpoint: generate (or reuse) images, judge, report.

Images are made by the :class:`~seeingsounds.engine.Engine` and written by the one
:class:`~seeingsounds.writers.OutputWriter`, one PNG per clip x seed under
``<out>/images/<class>/<clip>-<hash>_seed<s>.png`` (``hash`` = first 8 hex digits of the SHA-1 of the
clip's resolved path) with the provenance of every output plus the clip's ``label`` and the ``protocol``,
each as soon as it is generated, so an interrupted run resumes where it stopped without regenerating anything.
``<out>/images/generation.json`` records the checkpoint and generation settings; a resumed run
with other settings is refused instead of mixing images.

``no_images=True`` evaluates caption retrieval only (METRICS.md): the aligner's predictions for
the evaluation clips ranked against the run's own class-caption targets
(``caption_targets.safetensors``): no generator, no judge, no text encoder. Predictions stream through
:class:`seeingsounds.conditioner.AudioConditioner` a batch at a time into a
:class:`seeingsounds.retrieval.CaptionIndex`, so memory does not grow with the number of clips.

Across processes (``accelerate launch -m seeingsounds.cli.main evaluate ...`` or ``torchrun``), the
missing images (clip x seed pairs) are split between the processes; each generates and writes its own
share, then embeds its share of the images (and clips, for AIS) with the judges; the embeddings are
gathered and the main process writes the report (the others print nothing).
Resuming works the same: only missing images are generated, by whichever process they fall to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from PIL import Image

from seeingsounds.audio.render import render
from seeingsounds.checkpoint import resolve_checkpoint
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.data.manifest import Clip
from seeingsounds.data.protocols import ProtocolData, class_text, get_protocol, normalise_label
from seeingsounds.devices import resolve_device
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation import metrics as M
from seeingsounds.evaluation.judges import get_judge
from seeingsounds.evaluation.offline_judge import is_offline_judge
from seeingsounds.evaluation.report import class_file_name, write_grids, write_json, write_markdown
from seeingsounds.engine import Engine
from seeingsounds.paths import atomic_write_text, ensure_writable_dir, file_sha256, home, is_within, slug
from seeingsounds.request import LoadOptions, Request, Settings, read_checkpoint_preset
from seeingsounds.retrieval import CaptionIndex
from seeingsounds.runs import BEST, EVAL_PREFIX, LAST, RunFolder, library_versions
from seeingsounds.writers import OutputWriter, output_provenance, sound_provenance

logger = logging.getLogger(__name__)

GALLERIES = ("classes", "frames")
METRIC_CHOICES = ("AIC", "R@5", "AIS")
RECALL_KS = (1, 5, 10)
IMAGES_DIR = "images"
#: images / clips embedded by a judge at a time
EMBED_BATCH = 64
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
    device: str | None = "auto"
    dtype: str | None = None
    batch_size: int = 4
    #: LoRA weights for the generator (file, folder or hub id) and CPU offload, as ``generate`` takes them
    lora: str | None = None
    cpu_offload: bool = False
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


def image_path(out: Path, row: Clip, seed: int) -> Path:
    """Deterministic PNG path of one clip x seed."""
    digest = hashlib.sha1(str(row.path.resolve()).encode()).hexdigest()[:8]
    name = f"{slug(row.path.stem, empty='class')}-{digest}_seed{seed}.png"
    return Path(out) / IMAGES_DIR / class_file_name(row.label) / name


def stream_similarity(conditioner: AudioConditioner, index: CaptionIndex, sources: Iterable[Any], *,
                      batch_size: int = 4) -> np.ndarray:
    """``[clips, captions]`` cosine similarities, a batch of clips at a time: only the (small) similarity
    rows are kept, never the predictions (a FLUX-dev prediction is ~2 M values per clip)."""
    return index.similarity_rows(conditioner.predict(iter(sources), batch_size=batch_size)).astype(np.float64)


def share(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """Process ``rank``'s share of ``items`` out of ``world`` processes: every ``world``-th, from ``rank``
    (the shares are disjoint and together hold every item once)."""
    return list(items[rank::world])


def _checkpoint_identity(checkpoint: str) -> dict[str, Any]:
    folder = resolve_checkpoint(checkpoint)
    out: dict[str, Any] = {"checkpoint": str(Path(folder).resolve()) if Path(folder).exists() else folder}
    # the weights, and the config that records the preset (generator, steps, guidance, image size)
    for key, name in (("weights_sha256", "model.safetensors"), ("config_sha256", "config.json")):
        file = Path(folder) / name
        if file.is_file():
            out[key] = file_sha256(file)
    return out


def _embed_files(judge: Any, files: Sequence[Path], batch: int = EMBED_BATCH) -> np.ndarray:
    """Image embeddings of ``files``, ``batch`` images in memory at a time."""
    rows = []
    for i in range(0, len(files), batch):
        images = []
        for path in files[i : i + batch]:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        rows.append(judge.embed_images(images))
    return np.concatenate(rows) if rows else judge.embed_images([])


def default_report_folder(checkpoint: str | os.PathLike[str], protocol: str) -> Path:
    """Where ``evaluate`` reports without ``--out``: ``<run>/eval-<protocol>`` for a training run or its
    ``best/`` (``eval-<protocol>-last`` for its ``last/``): never inside those two, which training
    replaces and which are what gets shared; ``<folder>-eval-<protocol>`` beside a bare aligner folder;
    ``<hub id>/eval-<protocol>`` for a hub id."""
    path, name = Path(checkpoint).expanduser(), f"{EVAL_PREFIX}{protocol}"
    if not path.is_dir():
        return path / name
    if RunFolder(path).is_run():
        return path / name
    parent = path.absolute().parent if path.name in ("", ".", "..") else path.parent  # "." inside best/
    if path.resolve().name in (BEST, LAST) and RunFolder(parent).is_run():
        return parent / (name if path.resolve().name == BEST else f"{name}-{LAST}")
    folder = path if path.name else path.resolve()  # "." names the working directory
    return folder.with_name(f"{folder.name}-{name}") if folder.name else folder / name


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
        if settings.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {settings.batch_size}")
        if settings.split_seed < 0:
            raise ConfigError(f"--split-seed must be >= 0, got {settings.split_seed}")
        chosen = list(settings.metrics or self.protocol.metrics)
        names = [str(m).upper().replace("R@K", "R@5") for m in chosen]  # "R@k" means R@1/5/10 too
        unknown = [m for m, n in zip(chosen, names) if n not in METRIC_CHOICES]
        if unknown:
            raise ConfigError(f"unknown metrics {unknown}; choose from {METRIC_CHOICES}")
        self.metric_names = list(dict.fromkeys(names))
        self.seeds = resolve_seeds(self.protocol.default_seeds, settings.seeds, settings.images_per_clip)
        self.generated = 0
        self.reused = 0
        self._engine: Engine | None = None
        self._state: PartialState | None = None
        self.generated_by_process: list[int] = []

    # ---- data -----------------------------------------------------------------------------
    def load_data(self) -> tuple[ProtocolData, list[Clip]]:
        data = self.protocol.load(self.s.data, seed=self.s.split_seed)
        rows = data.evaluation_rows(self.s.limit)
        if not rows:
            raise ConfigError(f"{self.s.data}: no test clips to evaluate")
        return data, rows

    # ---- generation -----------------------------------------------------------------------
    @property
    def state(self) -> PartialState:
        """This process's place among the launched ones (one process without a launcher)."""
        if self._state is None:
            self._state = PartialState(cpu=resolve_device(self.s.device).type == "cpu")
        return self._state

    @property
    def device(self) -> str | None:
        """The device of this process's models: ``--device`` when given, else this process's accelerator."""
        if self.s.device not in (None, "auto"):
            return str(self.s.device)
        return str(self.state.device) if self.state.num_processes > 1 else None

    @property
    def engine(self) -> Engine:
        """The loaded checkpoint (loaded on first use: a resumed run with every image made loads nothing)."""
        if self._engine is None:
            self._engine = Engine.load(LoadOptions(checkpoint=self.s.checkpoint, device=self.device, dtype=self.s.dtype,
                                                   lora=self.s.lora, cpu_offload=self.s.cpu_offload))
        return self._engine

    def _generation_record(self) -> dict[str, Any]:
        record = {**_checkpoint_identity(self.s.checkpoint), "device_dtype": [self.s.device, self.s.dtype]}
        if self.s.device == "auto":  # "auto" and unset pick the same device: one record for both
            record["device_dtype"][0] = None
        if self.s.lora:
            record["lora"] = str(self.s.lora)
        return record

    def _check_generation_record(self) -> None:
        record = self._generation_record()
        path = self.out / IMAGES_DIR / GENERATION_FILE
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old != record:
                raise ConfigError(
                    f"{self.out / IMAGES_DIR} holds images of another checkpoint or settings ({old}); "
                    "give a new --out, or delete that folder to regenerate"
                )
            return
        if self.state.is_main_process:
            atomic_write_text(path, json.dumps(record, indent=2) + "\n")

    def ensure_images(self, rows: Sequence[Clip]) -> list[list[Path]]:
        """Paths of every clip's images (one per seed), generating the missing ones.

        The missing clip x seed pairs are dealt round-robin to the launched processes; each generates its
        share, clips of one seed batched together, and writes each PNG as soon as it exists.
        """
        self._check_generation_record()
        paths = [[image_path(self.out, r, s) for s in self.seeds] for r in rows]
        missing = [(i, j) for i, ps in enumerate(paths) for j, p in enumerate(ps) if not p.is_file()]
        self.reused = sum(len(ps) for ps in paths) - len(missing)
        self.generated = len(missing)
        mine = share(missing, self.state.process_index, self.state.num_processes)
        batch = max(1, int(self.s.batch_size))
        writer: OutputWriter | None = None
        for j, seed in enumerate(self.seeds):
            clips = [i for i, k in mine if k == j]
            settings = Settings(seed=seed, batch_size=batch)
            for start in range(0, len(clips), batch):  # one request per batch: a protocol may hold any number of clips
                chunk = clips[start : start + batch]
                request = Request(sounds=[str(rows[i].path) for i in chunk], settings=settings).check()
                if writer is None:
                    writer = OutputWriter(self.out / IMAGES_DIR, output_provenance(
                        self.engine, self.s.checkpoint, self.engine.resolve(settings), protocol=self.protocol.name))
                for made in self.engine.generate(request, progress=False):
                    row = rows[chunk[made.input_index]]
                    # a video generator's poster frame is what the judges see: written as the image
                    name = paths[chunk[made.input_index]][j].relative_to(writer.folder).with_suffix("")
                    writer.write(replace(made, frames=None), str(name),
                                 meta={**sound_provenance(row.path, made.seed, settings, made.effects),
                                       "label": row.label})
        self.generated_by_process = gather_object([len(mine)]) if self.state.num_processes > 1 else [len(mine)]
        self.state.wait_for_everyone()
        return paths

    # ---- metrics --------------------------------------------------------------------------
    def judge_id(self, kind: str) -> str | None:
        """The model of judge ``kind``: ``--judge-<kind>`` when given, else the one the checkpoint's preset
        names (``aic`` / ``clip``; a hub checkpoint, whose preset is not read here: the registry's default)."""
        given = {"aic": self.s.judge_aic, "clip": self.s.judge_clip, "wav2clip": self.s.judge_wav2clip}[kind]
        if given or kind == "wav2clip":
            return given
        preset = read_checkpoint_preset(self.s.checkpoint)
        return None if preset is None else getattr(preset, f"judge_{kind}")

    def judge(self, kind: str) -> Any:
        """A judge on this process's device (``--device auto``: the accelerator when there is one)."""
        device = resolve_device(self.device or "auto")
        if kind == "wav2clip":
            return get_judge("wav2clip", self.s.judge_wav2clip, sample_rate=self.s.wav2clip_sr, device=device)
        return get_judge(kind, self.judge_id(kind), device=device)

    def check_judges(self) -> list[str]:
        """AIS compares the R@k image judge with Wav2CLIP audio, so an image judge in another space (the offline
        judge's is MiniLM's) cannot score it: AIS asked for with ``--metrics`` is refused before anything loads;
        AIS from the protocol's defaults is left out. Returns the report notes saying so."""
        clip = self.judge_id("clip")
        if "AIS" not in self.metric_names or clip is None or not is_offline_judge(clip):
            return []
        if not self.s.metrics:
            self.metric_names = [m for m in self.metric_names if m != "AIS"]
            return [f"AIS left out: the image judge {clip!r} lives in MiniLM's caption space, not Wav2CLIP's"]
        raise ConfigError(f"AIS needs an image judge in Wav2CLIP's space (CLIP ViT-B/32), but the R@k judge is "
                              f"{clip!r} (MiniLM's caption space): leave AIS out (--metrics AIC R@k) or pass "
                              "--judge-clip openai/clip-vit-base-patch32")

    def _embed_shared(self, count: int, embed: Any) -> np.ndarray:
        """``embed(indices) -> [len(indices), D]`` over ``range(count)``, each launched process embedding its
        :func:`share`; the rows are gathered on every process in their order."""
        world = self.state.num_processes
        if world == 1:
            return np.asarray(embed(list(range(count))))
        mine = share(list(range(count)), self.state.process_index, world)
        parts = gather_object([(mine, np.asarray(embed(mine)) if mine else None)])
        width = next(e.shape[1] for _, e in parts if e is not None)
        out = np.zeros((count, width), dtype=next(e.dtype for _, e in parts if e is not None))
        for ids, rows in parts:
            if rows is not None:
                out[ids] = rows
        return out

    def image_metrics(self, data: ProtocolData, rows: Sequence[Clip], paths: Sequence[Sequence[Path]]) -> dict[str, Any]:
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
            img, txt = self._embed_shared(len(images), lambda ids: _embed_files(judge, [images[i] for i in ids])), \
                judge.embed_texts(list(classes))
            results["AIC"] = M.aic(img, txt, labels)
            for c_index, name in enumerate(classes):
                mask = labels == c_index
                if mask.any():
                    per_class[name]["AIC"] = M.aic(img[mask], txt, labels[mask])
            judges["aic"] = judge.describe()
        clip_images = None
        if "R@5" in self.metric_names or "AIS" in self.metric_names:
            judge = self.judge("clip")
            clip_images = self._embed_shared(len(images), lambda ids: _embed_files(judge, [images[i] for i in ids]))
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
            w2c = self.judge("wav2clip")

            def embed_clips(ids: Sequence[int]) -> np.ndarray:  # whole clips, rendered and embedded a batch at a time
                parts = [w2c.embed_audio([render(str(rows[i].path), sample_rate=w2c.sample_rate)
                                          for i in ids[j : j + EMBED_BATCH]], w2c.sample_rate)
                         for j in range(0, len(ids), EMBED_BATCH)]
                return np.concatenate(parts) if parts else np.zeros((0, 0))

            audio = self._embed_shared(len(rows), embed_clips)
            per_image_audio = np.repeat(audio, len(self.seeds), axis=0)
            results["AIS"] = M.ais(clip_images, per_image_audio, audio)
            judges["wav2clip"] = w2c.describe()
        return {"metrics": results, "judges": judges, "per_class": dict(per_class)}

    def caption_metrics(self, rows: Sequence[Clip]) -> dict[str, Any]:
        """Caption retrieval against the run's class-caption targets (no generator, no judge).

        The clips stream through the conditioner ``batch_size`` at a time; only the [clips, classes]
        similarities are kept.
        """
        run = RunFolder.find(self.s.checkpoint)
        captions = run.caption_set()
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
        # the loaded engine's own conditioner when images were made: the encoder is never loaded twice
        conditioner = self._engine.conditioner if self._engine is not None else AudioConditioner.from_pretrained(
            self.s.checkpoint, device=self.device or "auto", dtype=self.s.dtype)
        names = conditioner.names  # unaligned heads are constant: they carry no evidence
        index = CaptionIndex(run.caption_targets(caption_rows, dtype=torch.float32), names,
                             device=conditioner.device, dtype=conditioner.dtype)
        sim = stream_similarity(conditioner, index, [str(r.path) for r in rows], batch_size=max(1, int(self.s.batch_size)))
        out = M.retrieval_scores(sim, labels, k=5)
        per_class = {}
        for c in classes:
            mask = np.array([r.label == c for r in rows])
            sub = M.retrieval_scores(sim[mask], labels[mask], k=5)
            per_class[c] = {"caption_top1": sub["top1"], "caption_top5": sub["topk"]}
        return {
            "metrics": {"caption_top1": out["top1"], "caption_top5": out["topk"],
                        "caption_mean_cosine": out["mean_cosine"], "caption_mean_rank": out["mean_rank"]},
            "per_class": per_class,
            "caption_retrieval": {"captions": len(run_classes), "heads": names, "sequence": "flatten",
                                  "device": str(conditioner.device), "dtype": str(conditioner.dtype).replace("torch.", "")},
        }

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        """Evaluate and write the report; ``None`` on a launched process other than the main one."""
        report = self._evaluate()
        self._leave_process_group()
        return report

    def _leave_process_group(self) -> None:
        """Wait for every process, then leave a launched run's process group, as the trainer does: a process
        that left and exited while the main one was still scoring and writing could abort (SIGABRT,
        "terminate called without an active exception"), failing the launch after the report was written."""
        if self._state is not None and self._state.num_processes > 1:
            self._state.wait_for_everyone()
            self._state.destroy_process_group()

    def _evaluate(self) -> dict[str, Any] | None:
        started = time.time()
        data, rows = self.load_data()
        # before any model loads: a wrong --out or SEEINGSOUNDS_HOME is one line, not a traceback later
        if RunFolder(self.out).is_run():  # its reports would make it a folder `train --resume` refuses
            raise ConfigError(f"--out {self.out} is a training run: choose a folder of its own (the default is "
                              f"<run>/{EVAL_PREFIX}<protocol>)")
        first_in = {}  # one clip per folder: a check per folder, not per clip
        for clip in data.rows:
            first_in.setdefault(clip.path.parent, clip.path)
        inside = next((path for folder, path in first_in.items() if is_within(folder, self.out)), None)
        if inside is not None:  # images/ and grids/ would go among the clips (a class-folder scan reads them)
            raise ConfigError(f"--out {self.out} holds clips of {self.s.data} (e.g. {inside}): reports never go "
                              f"among a dataset's clips; choose a folder of its own (the default is "
                              f"<run>/{EVAL_PREFIX}<protocol>)")
        ensure_writable_dir(self.out, "evaluation report folder (--out)")
        home(writable=True)
        if self.s.no_images and not self.state.is_main_process:
            return None  # caption retrieval is cheap: the main process does it alone
        judge_notes = [] if self.s.no_images else self.check_judges()
        report: dict[str, Any] = {
            "protocol": self.protocol.describe(),
            "checkpoint": self.s.checkpoint,
            "data": str(Path(self.s.data).resolve()),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.s).items()},
            "versions": library_versions(),
            "seeds": self.seeds,
            "split_seed": self.s.split_seed,
            "reference": self.protocol.reference,
            "notes": [*self.protocol.notes, *judge_notes],
            "lora": self.s.lora,
        }
        if self.s.no_images:
            result = self.caption_metrics(rows)
            report.update(mode="caption-retrieval", metrics=result["metrics"], per_class=result["per_class"],
                          caption_retrieval=result["caption_retrieval"], judges={},
                          counts={"clips": len(rows), "images": 0})
            report["reference"] = {}  # the paper reports no caption retrieval
        else:
            paths = self.ensure_images(rows)
            result = self.image_metrics(data, rows, paths)  # every process embeds its share of the images
            if not self.state.is_main_process:
                return None
            report["processes"] = self.state.num_processes
            by_class: dict[str, list[list[Path]]] = defaultdict(list)
            for r, ps in zip(rows, paths):
                by_class[r.label].append(ps)
            grids = write_grids(by_class, self.out, max_clips=self.s.max_grid_clips)
            report.update(mode="images", metrics=result["metrics"], judges=result["judges"], per_class=result["per_class"],
                          gallery=self.gallery if any(k.startswith("R@") for k in result["metrics"]) else None,
                          grids=grids, counts={"clips": len(rows), "images": sum(len(p) for p in paths),
                                               "generated": self.generated, "reused": self.reused,
                                               "generated_by_process": self.generated_by_process})
            if "AIC" in self.metric_names:
                report["notes"].append("AIC text side: the raw class names, sorted, tokenised as is, no prompt template")
            if "R@5" in self.metric_names:
                text = " (class names with '_' as spaces)" if self.gallery == "classes" else ""
                report["notes"].append(f"R@k gallery: {self.gallery}{text} (Sound2Scene's exact protocol is not public)")
        report["seconds"] = round(time.time() - started, 2)
        write_json(report, self.out)
        write_markdown(report, self.out)
        return report


def evaluate(settings: EvaluationSettings) -> dict[str, Any] | None:
    """Run one evaluation and write ``report.json``, ``report.md`` and ``grids/`` under ``settings.out``.

    Returns the report; ``None`` on a launched process other than the main one (which writes it).
    """
    return Evaluation(settings).run()
