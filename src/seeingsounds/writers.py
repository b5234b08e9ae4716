"""Files out of the engine: one writer (a PNG, or an mp4 and its poster PNG) through one provenance.

:class:`OutputWriter` writes what :class:`~seeingsounds.engine.Engine` makes, with the provenance
:func:`output_provenance` builds (the model and settings) plus each output's own (its sound, seed,
effects, mix: :func:`sound_provenance`), and a labelled contact sheet. Every front end writes through
it: ``generate`` / ``edit`` (:func:`generate_files`, :func:`edit_files`), the web app, the evaluation
runner, the demo and live mode.

What ``-o`` may write (:func:`check_targets`): never an input, never a file SeeingSounds did not
write (recognised by its provenance), never among the sound clips of a data folder, never into a
training run. :func:`generate_files` and :func:`edit_files` check the request, the output paths and
the model's limits *before* any weights load, then run the engine and write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from seeingsounds.audio.io import AUDIO_SUFFIXES, audio_fingerprint
from seeingsounds.engine import Engine, Made
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import IMAGE, VIDEO, OutputKind
from seeingsounds.imaging import PROVENANCE_FIELDS, SOFTWARE_KEY, contact_sheet, provenance, read_provenance, save_png
from seeingsounds.paths import check_not_input, file_sha256, short_list, slug
from seeingsounds.request import LoadOptions, Request, Settings, check_model_limits
from seeingsounds.runs import RunFolder

SHEET_NAME = "contact_sheet.png"
#: ``-o`` names with these suffixes mean a file in a format we do not write, not a new folder
OTHER_MEDIA_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mov", ".mkv", ".webm", ".avi",
                        ".m4v", ".wav", ".mp3", ".flac", ".ogg")


# ---- where outputs may go (checked before any model loads) ------------------------------------
def stems(paths: Sequence[str]) -> list[str]:
    """File stems (in the sound's own script: two runs on ``狗.wav`` and ``猫.wav`` into one folder keep
    both), prefixed with the input's index where two inputs share one."""
    names = [slug(Path(p).stem, limit=60, empty="sound", any_script=True) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{i:03d}-{s}" for i, s in enumerate(names)]


def check_writable(path: Path) -> None:
    """Refuse an output folder that cannot be created or written (the nearest existing parent decides)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            raise ConfigError(f"cannot write to {path}: {probe} is a symbolic link to nothing (its target is missing "
                              "or a loop); choose another -o or fix the link")
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"cannot write to {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {path}: {probe} is not writable (permission denied); choose another -o")


def plan_outputs(output: str | os.PathLike, n_files: int, *, suffix: str | None = ".png") -> tuple[Path, Path | None]:
    """(folder, single file or None). An ``-o`` ending in ``suffix`` names exactly one output file
    (``suffix=None``: .png or .mp4, for the checks made before the generator's kind is known)."""
    out = Path(output).expanduser()
    if out.suffix.lower() in (".png", ".mp4"):
        suffix = suffix or out.suffix.lower()
        if out.suffix.lower() != suffix:
            raise ConfigError(f"-o {out}: this run writes {suffix} files; give a folder or a {suffix} name")
        if n_files != 1:
            raise ConfigError(f"-o {out} names one file but this run makes {n_files}: give a folder instead")
        if out.is_dir():
            raise ConfigError(f"-o {out} is a folder: give a new file name or drop the {suffix}")
        folder = out.parent if str(out.parent) else Path(".")
        check_writable(folder)
        return folder, out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} exists and is not a folder")
    if out.suffix.lower() in OTHER_MEDIA_SUFFIXES and not out.is_dir():
        raise ConfigError(f"-o {out}: images are written as .png and videos as .mp4; give a .png (.mp4) name "
                          "or a folder")
    check_writable(out)
    return out, None


def written_by_seeingsounds(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG, an mp4 or a JSONL log (live mode's: its first line) that SeeingSounds
    wrote: its provenance names the program."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            meta = read_provenance(path)
        elif path.suffix.lower() == ".mp4":
            from seeingsounds.video import read_mp4_provenance  # deferred with write()'s import of the module

            meta = read_mp4_provenance(path)
        elif path.suffix.lower() == ".jsonl":
            with open(path, encoding="utf-8") as f:
                meta = json.loads(f.readline(1 << 20) or "{}")
            meta = meta if isinstance(meta, dict) else {}
        else:
            return False
    except (OSError, ValueError, ConfigError, Image.DecompressionBombError):
        return False
    return str(meta.get(SOFTWARE_KEY, "")).startswith("seeingsounds ")


def sound_files_in(folder: Path) -> list[Path]:
    """The files directly in ``folder`` that a class-folder scan reads as clips (our own videos aside)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and not written_by_seeingsounds(p))


def output_names(audio: Sequence[str], captions: Sequence[str], settings: Settings) -> list[str]:
    """The file stems of every output, in the order they are made: per sound file (then per caption),
    one per seed ``seed .. seed + num_images - 1``."""
    seeds = range(settings.seed, settings.seed + settings.num_images)
    return ([f"{name}_s{seed}" for name in stems(audio) for seed in seeds]
            + [f"caption{c:02d}-{slug(text, limit=40, empty='caption', any_script=True)}_s{seed}" for c, text in enumerate(captions) for seed in seeds])


def output_targets(folder: Path, single: Path | None, names: Sequence[str], *, video: bool, sheet: bool) -> list[Path]:
    """Every path a run writes: the images (or videos and their poster PNGs) and the contact sheet."""
    files = [single] if single is not None else [folder / f"{name}{'.mp4' if video else '.png'}" for name in names]
    if video:
        files += [f.with_suffix(".png") for f in files]
    return files + ([folder / SHEET_NAME] if sheet else [])


#: the files that make a folder a model (an aligner saved with ``save_pretrained``, a transformers model)
MODEL_FILES = ("config.json", "model.safetensors")


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a model's config and weights (:data:`MODEL_FILES`)."""
    return all((folder / name).is_file() for name in MODEL_FILES)


def check_targets(targets: Sequence[Path], inputs: Sequence[str | os.PathLike | None], folder: Path, *,
                  single: bool, video: bool) -> None:
    """Refuse, before any model loads, outputs that would lose a file.

    * an input is never an output (whatever the spelling: relative, ``..``, a symlink, a hard link);
    * a file SeeingSounds did not write is never replaced (a PNG or mp4 of ours carries its
      provenance: re-running a command replaces its own outputs, nothing else);
    * outputs do not go among sound clips: an ``-o`` folder that holds sound files is a data (class)
      folder, where ``train`` would read a video as a clip. A single ``-o NAME.png`` may sit beside
      sounds (a PNG is never read as a clip); a video may not;
    * outputs do not go into a training run (nor its ``best/``, ``last/``): ``train --resume`` refuses
      a run folder holding other files, and a checkpoint folder is what gets shared; nor into any other
      model folder (:func:`is_model_folder`: an aligner saved with ``save_pretrained``, a transformers model).
    """
    run = next((f for f in (folder, *folder.absolute().parents) if RunFolder(f).is_run()), None)
    if run is not None:
        raise ConfigError(f"-o {folder} is {'' if run == folder else 'inside '}the training run {run}: outputs "
                          "never go into a run (train --resume would refuse it); choose a folder of its own")
    model = next((f for f in (folder, *Path(os.path.abspath(folder)).parents) if is_model_folder(f)), None)
    if model is not None:
        raise ConfigError(f"-o {folder} is {'' if model == folder else 'inside '}the model folder {model} (it holds "
                          f"{' and '.join(MODEL_FILES)}): outputs never go into a checkpoint, which is what gets "
                          "shared; choose a folder of its own")
    seen: set[Path] = set()
    for target in targets:
        check_not_input(target, inputs, what="output")
        key = Path(os.path.abspath(target))
        if key in seen:
            if target.name == SHEET_NAME:
                raise ConfigError(f"-o {target} is the name of this run's contact sheet: choose another name "
                                  "or pass --no-sheet")
            raise ConfigError(f"two outputs of this run would both be written to {target}: rename an input "
                              "(or a --caption) so that their names differ")
        seen.add(key)
        if target.is_dir():
            raise ConfigError(f"the output {target} is an existing folder: choose another -o, or move the folder")
        if target.exists() or target.is_symlink():
            if not written_by_seeingsounds(target):
                raise ConfigError(f"{target} exists and was not written by SeeingSounds: choose another -o, "
                                  "or delete that file if it may be replaced")
            if not os.access(target, os.W_OK):
                raise ConfigError(f"{target} exists and is read-only: choose another -o")
    if not single or video:
        sounds = sound_files_in(folder)
        if sounds:
            more = f" and {len(sounds) - 1} more" if len(sounds) > 1 else ""
            raise ConfigError(f"the output folder {folder} holds sound files ({sounds[0].name}{more}): outputs never "
                              "go among the clips of a data folder (train would read a video as a clip); "
                              "choose a folder of its own")




# ---- provenance -------------------------------------------------------------------------------
def output_provenance(engine: Engine, checkpoint: str, resolved: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """The provenance every output of one request shares: the program, the checkpoint as named by the
    front end (the web app hides the server's folders), the model and the resolved settings, plus ``fields``."""
    return provenance(checkpoint=checkpoint, **engine.settings_record(resolved), **fields)


def sound_provenance(path: str | os.PathLike | None, seed: int, settings: Settings,
                     descriptions: Sequence[str] | None = None, *, name: str | None = None,
                     mix_name: str | None = None) -> dict[str, Any]:
    """One output's own provenance: its sound file (``name``, default the path) and that file's hash (none
    for a sound that is no file, e.g. a microphone), its seed, the effects and their descriptions, the mix
    partner (``mix_name``) with its hash and ratio."""
    mix = None
    if settings.mix is not None:
        partner, ratio = settings.mix
        mix = {"path": mix_name or str(partner),
               "sha256": audio_fingerprint(partner) if isinstance(partner, (str, os.PathLike)) else None,
               "ratio": float(ratio)}
    return {"source": name or str(path), "source_sha256": audio_fingerprint(path) if path is not None else None,
            "seed": int(seed),
            "effects": [[n, dict(p)] for n, p in settings.effects] or None,
            "effect_descriptions": list(descriptions or []) or None, "mix": mix}


def edit_provenance(request: Request, *, image_name: str | None = None, mask_name: str | None = None) -> dict[str, Any]:
    """An edit's provenance: the picture and mask (named, and by their hashes) and the strength."""
    spec = request.edit
    assert spec is not None
    named = isinstance(spec.image, (str, os.PathLike))
    masked = isinstance(spec.mask, (str, os.PathLike))
    return {"image": image_name or (str(spec.image) if named else None),
            "image_sha256": file_sha256(spec.image) if named else None,
            "mask": mask_name or (str(spec.mask) if spec.mask is not None else None),
            "mask_sha256": file_sha256(spec.mask) if masked else None, "strength": spec.strength}


# ---- the writer -------------------------------------------------------------------------------
class OutputWriter:
    """Writes the engine's outputs into ``folder`` (or the one file ``single``): a PNG per picture, or an
    mp4 per video with its poster PNG, each with ``common`` + its own provenance; remembers them for the
    contact sheet. ``outputs`` lists every file written (the sheet first)."""

    def __init__(self, folder: str | os.PathLike, common: Mapping[str, Any], *, single: Path | None = None):
        self.folder, self.single, self.common = Path(folder), single, dict(common)
        self.shown: list[tuple[Path, str]] = []  # (file the sheet shows, its label)
        self.outputs: list[Path] = []

    def write(self, made: Made, name: str, *, label: str = "", meta: Mapping[str, Any] | None = None) -> Path:
        """Write one output as ``folder/name.png`` (``.mp4`` + poster ``.png`` for a video); returns the
        file (the mp4 for a video). ``name`` may hold sub-folders; they are created."""
        kind = VIDEO if made.frames is not None else IMAGE
        path = self.single if self.single is not None else self.folder / f"{name}{kind.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        unknown = sorted(set(meta or {}) - set(PROVENANCE_FIELDS))
        if unknown:  # a misspelt key is a bug, as in imaging.provenance
            raise KeyError(f"unknown provenance keys {unknown}; known: {sorted(PROVENANCE_FIELDS)}")
        meta = {**self.common, **(meta or {})}
        if made.frames is None:
            save_png(made.picture, path, meta)
            self.shown.append((path, label))
            self.outputs.append(path)
            return path
        # deferred on purpose: PyAV (FFmpeg) is needed only for videos; pictures and live mode are written
        # without it (a GPU machine that lacks the wheel runs them, e.g. benchmarks/gpu.py)
        from seeingsounds.video import write_mp4

        meta.update(frames=int(len(made.frames)), fps=int(made.fps or 1))
        write_mp4(made.frames, path, fps=int(made.fps or 1), metadata=meta)
        poster = path.with_suffix(".png")
        save_png(made.picture, poster, {**meta, "poster_of": path.name})
        self.shown.append((poster, label))
        self.outputs += [path, poster]
        return path

    def sheet(self, enabled: bool = True, extra: Sequence[tuple[Image.Image, str]] = ()) -> Path | None:
        """A contact sheet of everything written (``extra`` tiles first) when there are several tiles."""
        if not enabled or len(self.shown) + len(extra) < 2:
            return None
        images, labels = [im for im, _ in extra], [label for _, label in extra]
        for path, label in self.shown:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            labels.append(label)
        path = save_png(contact_sheet(images, labels), self.folder / SHEET_NAME,
                        {**self.common, "images": [p.name for p, _ in self.shown]})
        self.outputs.insert(0, Path(path))
        return Path(path)


# ---- the drivers of ``generate`` and ``edit`` -------------------------------------------------
def _plan(output: str | os.PathLike, names: Sequence[str], request: Request, kind: OutputKind,
          sheet: bool) -> tuple[Path, Path | None]:
    folder, single = plan_outputs(output, len(names), suffix=kind.suffix)
    check_targets(output_targets(folder, single, names, video=kind.video, sheet=sheet), request.inputs, folder,
                  single=single is not None, video=kind.video)
    return folder, single


@contextmanager
def kept_on_interrupt(written: Callable[[], Sequence[Path]], planned: int, folder: Path) -> Iterator[None]:
    """Ctrl-C within the block names, in the ``KeyboardInterrupt`` it raises, the outputs already written:
    complete files (each was written whole, then renamed), kept where they are."""
    try:
        yield
    except KeyboardInterrupt as exc:
        done = list(written())
        kept = f" ({short_list([p.name for p in done])})" if done else ""
        raise KeyboardInterrupt(f"{len(done)} of {planned} outputs finished and kept in {folder}{kept}") from exc


def generate_files(load: LoadOptions, request: Request, output: str | os.PathLike, *, engine: Engine | None = None,
                   progress: bool | None = None) -> list[Path]:
    """``seeingsounds generate``: images (or, for a video checkpoint, mp4 + poster PNG) per sound file
    and caption, with provenance and a contact sheet. Returns the written paths (the sheet first).

    Everything is checked before the model loads: the request, the checkpoint path, the size against
    the generator's limit, the video options and whether the output can be written.
    """
    request.check()
    settings = request.settings
    names = output_names([str(s) for s in request.sounds], request.captions, settings)
    plan_outputs(output, len(names), suffix=None)  # a wrong -o fails before the generator's configs are read
    kind = engine.kind if engine is not None else check_model_limits(load, request)
    sheet = settings.sheet and len(names) > 1
    folder, single = _plan(output, names, request, kind or IMAGE, sheet)
    engine = engine if engine is not None else Engine.load(load)
    if kind is None and engine.kind.video:  # a hub checkpoint: its kind is known now
        folder, single = _plan(output, names, request, engine.kind, sheet)
    writer = OutputWriter(folder, output_provenance(engine, load.checkpoint, engine.resolve(settings)), single=single)
    n_sounds = len(request.sounds)
    with kept_on_interrupt(lambda: writer.outputs, len(names), folder):
        for k, made in enumerate(engine.generate(request, progress=progress)):
            if made.input_index < n_sounds:
                path = request.sounds[made.input_index]
                label, meta = f"{Path(path).name}\nseed {made.seed}", sound_provenance(path, made.seed, settings, made.effects)
            else:
                label, meta = f"text: {made.source}\nseed {made.seed}", {"caption": made.source, "seed": made.seed}
            writer.write(made, names[k], label=label, meta=meta)
    writer.sheet(settings.sheet)
    return writer.outputs


def edit_files(load: LoadOptions, request: Request, output: str | os.PathLike, *, engine: Engine | None = None,
               progress: bool | None = None) -> list[Path]:
    """``seeingsounds edit``: the request's picture edited by every sound file (image-to-image, or
    inpainting inside the mask), PNGs with provenance (picture and mask sha256, strength) and a contact
    sheet that starts with the input. Returns the written paths (the sheet first)."""
    if request.edit is None:
        raise ConfigError("edit_files needs an edit request (Request(edit=EditSpec(...)))")
    request.check()
    settings = request.settings
    names = output_names([str(s) for s in request.sounds], [], settings)
    folder, single = _plan(output, names, request, IMAGE, settings.sheet)
    if engine is None:
        check_model_limits(load, request)
        engine = Engine.load(load)
    writer: OutputWriter | None = None
    with kept_on_interrupt(lambda: writer.outputs if writer is not None else [], len(names), folder):
        for k, made in enumerate(engine.edit(request, progress=progress)):
            if writer is None:
                resolved = engine.resolve(settings, size=made.picture.size)
                writer = OutputWriter(folder, output_provenance(engine, load.checkpoint, resolved, **edit_provenance(request)),
                                      single=single)
            path = request.sounds[made.input_index]
            writer.write(made, names[k], label=f"{Path(path).name}\nstrength {request.edit.strength:g}, seed {made.seed}",
                         meta=sound_provenance(path, made.seed, settings, made.effects))
    assert writer is not None
    image = request.edit.image
    writer.sheet(settings.sheet, [(request.picture, f"input {Path(str(image)).name}"
                                   + ("\n(masked)" if request.edit.mask is not None else ""))])
    return writer.outputs
