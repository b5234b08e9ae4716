"""Files out of a :class:`~seeingsounds.pipeline.SeeingSoundsPipeline`: what ``generate`` and ``edit`` write.

:func:`generate_files` and :func:`edit_files` check every input, the output paths and the model's
limits *before* any model weights are loaded, then load the pipeline once, run it in chunks and
write PNGs (or mp4 videos plus a poster PNG) with their provenance, and a labelled contact sheet.
The CLI parses its options, calls one of them and prints the paths they return.

What ``-o`` may write (:func:`check_targets`): never an input, never a file SeeingSounds did not
write (recognised by its provenance), never among the sound clips of a data folder, never into a
training run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from seeingsounds.audio.io import AUDIO_SUFFIXES, audio_fingerprint
from seeingsounds.audio.render import EffectChain, check_chain
from seeingsounds.errors import ConfigError
from seeingsounds.imaging import SOFTWARE_KEY, contact_sheet, provenance, read_provenance, save_png
from seeingsounds.model import load_backend
from seeingsounds.paths import check_not_input, file_sha256, slug
from seeingsounds.pipeline import (
    SeeingSoundsPipeline,
    check_edit_steps,
    check_fps,
    check_guidance,
    check_lora,
    check_seed,
    check_size,
    check_strength,
    load_edit_inputs,
    read_checkpoint_preset,
)
from seeingsounds.runs import RunFolder
from seeingsounds.video import read_mp4_provenance, write_mp4

SHEET_NAME = "contact_sheet.png"
#: the most files one run writes (inputs x --num-images): more is a typo, and its names alone fill the memory
MAX_OUTPUTS = 10_000
#: ``-o`` names with these suffixes mean a file in a format we do not write, not a new folder
OTHER_MEDIA_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mov", ".mkv", ".webm", ".avi",
                        ".m4v", ".wav", ".mp3", ".flac", ".ogg")



@dataclass
class LoadOptions:
    """How to load the pipeline (``SeeingSoundsPipeline.from_pretrained``'s options)."""

    checkpoint: str
    preset: str | None = None
    generator_id: str | None = None
    device: str | None = None
    dtype: str | None = None
    lora: str | None = None
    cpu_offload: bool = False

    def load(self) -> SeeingSoundsPipeline:
        return SeeingSoundsPipeline.from_pretrained(
            self.checkpoint, preset=self.preset, generator_id=self.generator_id, device=self.device,
            dtype=None if self.dtype in (None, "auto") else self.dtype, lora=self.lora, cpu_offload=self.cpu_offload)


@dataclass
class Settings:
    """Generation settings shared by ``generate`` and ``edit`` (``None``: the preset's)."""

    seed: int = 0
    num_images: int = 1
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    batch_size: int = 4
    effects: EffectChain = field(default_factory=list)
    mix: tuple[str, float] | None = None
    num_frames: int | None = None
    fps: int | None = None
    sheet: bool = True


# ---- checks that run before any model is loaded ------------------------------------------------
def stems(paths: Sequence[str]) -> list[str]:
    """File stems, prefixed with the input's index where two inputs share one."""
    names = [slug(Path(p).stem, limit=60, empty="caption") for p in paths]
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
    """Whether ``path`` is a PNG or an mp4 that SeeingSounds wrote: its provenance names the program."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            meta = read_provenance(path)
        elif path.suffix.lower() == ".mp4":
            meta = read_mp4_provenance(path)
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
            + [f"caption{c:02d}-{slug(text, limit=40, empty='caption')}_s{seed}" for c, text in enumerate(captions) for seed in seeds])


def output_targets(folder: Path, single: Path | None, names: Sequence[str], *, video: bool, sheet: bool) -> list[Path]:
    """Every path a run writes: the images (or videos and their poster PNGs) and the contact sheet."""
    files = [single] if single is not None else [folder / f"{name}{'.mp4' if video else '.png'}" for name in names]
    if video:
        files += [f.with_suffix(".png") for f in files]
    return files + ([folder / SHEET_NAME] if sheet else [])


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
      a run folder holding other files, and a checkpoint folder is what gets shared.
    """
    run = next((f for f in (folder, *folder.absolute().parents) if RunFolder(f).is_run()), None)
    if run is not None:
        raise ConfigError(f"-o {folder} is {'' if run == folder else 'inside '}the training run {run}: outputs "
                          "never go into a run (train --resume would refuse it); choose a folder of its own")
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


def check_settings(settings: Settings, n_inputs: int) -> None:
    """Values that need no model: counts, seeds, guidance, effects, the mix partner."""
    for label, value in (("--num-images", settings.num_images), ("--batch-size", settings.batch_size),
                         ("--steps", settings.steps), ("--frames", settings.num_frames), ("--fps", settings.fps)):
        if value is not None and value < 1:
            raise ConfigError(f"{label} must be >= 1, got {value}")
    if settings.fps is not None:
        check_fps(settings.fps, "--fps")
    check_seed(settings.seed, "--seed")
    check_seed(settings.seed + settings.num_images - 1, "--seed + --num-images - 1")
    if settings.guidance is not None:
        check_guidance(settings.guidance, "--guidance")
    check_chain(settings.effects)  # a bad value fails now, not after the generator has loaded
    if settings.mix is not None and not os.path.isfile(settings.mix[0]):
        raise ConfigError(f"--mix file {settings.mix[0]} does not exist")
    if n_inputs < 1:
        raise ConfigError("give at least one sound file")
    if n_inputs * settings.num_images > MAX_OUTPUTS:
        raise ConfigError(f"{n_inputs} inputs x --num-images {settings.num_images} would make "
                          f"{n_inputs * settings.num_images} files, more than {MAX_OUTPUTS} in one run: run it in parts")


def check_model_limits(load: LoadOptions, settings: Settings, sizes: Sequence[tuple[int | None, int | None]] = (),
                       *, strength: float | None = None) -> bool | None:
    """Check sizes, video options and an edit's ``strength`` x steps against the preset and the generator's
    configs (no weights); returns whether it makes videos, or ``None`` when the checkpoint is a hub id
    (its config arrives with the weights)."""
    check_lora(load.lora)
    preset = read_checkpoint_preset(load.checkpoint, load.preset)  # a missing local checkpoint fails here
    if preset is None:
        return None
    if load.generator_id is not None:
        preset = preset.replace(generator_id=str(load.generator_id))
    if strength is not None:
        check_edit_steps(strength, preset.num_inference_steps if settings.steps is None else settings.steps)
    backend = load_backend(preset)
    for width, height in [(settings.width, settings.height), *sizes]:
        check_size(width, height, backend, preset)
    video = bool(getattr(backend, "is_video", False))
    if video and settings.num_frames is not None:
        backend.check_num_frames(settings.num_frames)
    if not video and (settings.num_frames is not None or settings.fps is not None):
        raise ConfigError(f"--frames and --fps are for video checkpoints; {preset.name} makes images")
    return video


@dataclass(frozen=True)
class _SoundMeta:
    """The provenance every output of a sound file carries: its hash, seed, effects and mix."""

    effects: list[Any] | None
    mix: dict[str, Any] | None

    @classmethod
    def of(cls, settings: Settings) -> _SoundMeta:
        mix = None
        if settings.mix is not None:
            mix = {"path": settings.mix[0], "sha256": audio_fingerprint(settings.mix[0]), "ratio": settings.mix[1]}
        return cls([[n, dict(p)] for n, p in settings.effects] or None, mix)

    def image(self, source: str, seed: int, descriptions: Sequence[str] | None) -> dict[str, Any]:
        return {"source": source, "source_sha256": audio_fingerprint(source), "seed": seed, "effects": self.effects,
                "effect_descriptions": list(descriptions or []) or None, "mix": self.mix}


def _chunks(audio: Sequence[str], settings: Settings, progress: bool | None) -> Iterator[tuple[int, list[str]]]:
    """``(start, paths)`` chunks of the sound files, sized so a chunk's images fit one batch; a bar over files."""
    chunk = _chunk(settings.batch_size, settings.num_images)
    bar = tqdm(total=len(audio), desc="sounds", unit="file",
               disable=(not progress) if progress is not None else (None if len(audio) > 1 else True))
    try:
        for start in range(0, len(audio), chunk):
            paths = list(audio[start : start + chunk])
            yield start, paths
            bar.update(len(paths))
    finally:
        bar.close()


def common_provenance(pipe: SeeingSoundsPipeline, checkpoint: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    return provenance(
        checkpoint=checkpoint, preset=pipe.preset.name,
        generator=f"{pipe.preset.generator}:{pipe.preset.generator_id}",
        encoder=f"{pipe.preset.encoder}:{pipe.preset.encoder_id}",
        steps=resolved["num_inference_steps"], guidance=resolved["guidance_scale"],
        size=f"{resolved['width']}x{resolved['height']}", dtype=str(pipe.dtype).replace("torch.", ""), lora=pipe.lora,
    )


class _Writer:
    """Writes images (or videos + posters) and remembers them for the contact sheet."""

    def __init__(self, folder: Path, single: Path | None, common: Mapping[str, Any]):
        self.folder, self.single, self.common = folder, single, dict(common)
        self.written: list[tuple[Path, str]] = []  # (file the sheet shows, its label)
        self.outputs: list[Path] = []

    def image(self, image: Any, name: str, label: str, meta: Mapping[str, Any]) -> None:
        path = self.single if self.single is not None else self.folder / f"{name}.png"
        save_png(image, path, {**self.common, **meta})
        self.written.append((path, label))
        self.outputs.append(path)

    def video(self, frames: Any, poster: Any, name: str, label: str, meta: Mapping[str, Any], fps: int) -> None:
        path = self.single if self.single is not None else self.folder / f"{name}.mp4"
        meta = {**self.common, **meta, "frames": int(len(frames)), "fps": int(fps)}
        write_mp4(frames, path, fps=fps, metadata=meta)
        poster_path = path.with_suffix(".png")
        save_png(poster, poster_path, {**meta, "poster_of": path.name})
        self.written.append((poster_path, label))
        self.outputs += [path, poster_path]

    def sheet(self, enabled: bool, extra: Sequence[tuple[Image.Image, str]] = ()) -> None:
        """A contact sheet of everything written (``extra`` tiles first) when there are several tiles."""
        if not enabled or len(self.written) + len(extra) < 2:
            return
        images, labels = [im for im, _ in extra], [label for _, label in extra]
        for path, label in self.written:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            labels.append(label)
        sheet = contact_sheet(images, labels)
        path = self.folder / SHEET_NAME
        save_png(sheet, path, {**self.common, "images": [p.name for p, _ in self.written]})
        self.outputs.insert(0, path)


def _chunk(batch_size: int, num_images: int) -> int:
    """Inputs per pipeline call so that one call makes about ``batch_size`` images."""
    return max(1, batch_size // num_images) if num_images <= batch_size else 1


# ---- generate -------------------------------------------------------------------------------
def generate_files(load: LoadOptions, audio: Sequence[str], output: str | os.PathLike, settings: Settings, *,
                   captions: Sequence[str] = (), pipe: SeeingSoundsPipeline | None = None,
                   progress: bool | None = None) -> list[Path]:
    """``seeingsounds generate``: images (or, for a video checkpoint, mp4 + poster PNG) per sound file
    and caption, with provenance and a contact sheet. Returns the written paths (the sheet first).

    Everything is checked before the model loads: the sound files, settings, the checkpoint path, the
    size against the generator's limit, the video options and whether the output can be written.
    """
    audio, captions = [str(a) for a in audio], [str(c) for c in captions]
    if not audio and not captions:
        raise ConfigError("give at least one sound file (or --caption TEXT)")
    for path in audio:
        if not os.path.isfile(path):
            raise ConfigError(f"sound file {path} does not exist")
    check_settings(settings, len(audio) + len(captions))
    names = output_names(audio, captions, settings)
    plan_outputs(output, len(names), suffix=None)  # a wrong -o fails before the generator's configs are read
    video = check_model_limits(load, settings) if pipe is None else pipe.is_video
    inputs = [*audio, settings.mix[0] if settings.mix else None]

    def plan(video: bool) -> tuple[Path, Path | None]:
        folder, single = plan_outputs(output, len(names), suffix=".mp4" if video else ".png")
        check_targets(output_targets(folder, single, names, video=video, sheet=settings.sheet and len(names) > 1),
                      inputs, folder, single=single is not None, video=video)
        return folder, single

    folder, single = plan(bool(video))
    pipe = pipe if pipe is not None else load.load()
    if video is None and pipe.is_video:  # a hub checkpoint: its kind is known now
        folder, single = plan(True)
    call = {"num_inference_steps": settings.steps, "guidance_scale": settings.guidance, "height": settings.height,
            "width": settings.width, "batch_size": settings.batch_size}
    if pipe.is_video:
        call.update(num_frames=settings.num_frames, fps=settings.fps)
    resolved = pipe.resolve_settings(settings.steps, settings.guidance, settings.height, settings.width,
                                     settings.num_images, settings.batch_size, num_frames=settings.num_frames)
    writer = _Writer(folder, single, common_provenance(pipe, load.checkpoint, resolved))
    sound_meta = _SoundMeta.of(settings)

    def emit(out: Any, k: int, name: str, label: str, meta: dict[str, Any]) -> None:
        if pipe.is_video:
            writer.video(out.videos[k], out.images[k], name, label, meta, out.settings["fps"])
        else:
            writer.image(out.images[k], name, label, meta)

    n = settings.num_images
    for start, paths in _chunks(audio, settings, progress):
        out = pipe(paths, seed=settings.seed, num_images_per_audio=n, effects=settings.effects,
                   mix=settings.mix, **call)
        for k, seed in enumerate(out.seeds):
            i = start + k // n
            emit(out, k, names[start * n + k], f"{Path(audio[i]).name}\nseed {seed}",
                 sound_meta.image(audio[i], seed, out.effects))
    for c, caption in enumerate(captions):
        out = pipe.from_caption(caption, seed=settings.seed, num_images_per_caption=n, **call)
        for k, seed in enumerate(out.seeds):
            emit(out, k, names[(len(audio) + c) * n + k], f"text: {caption}\nseed {seed}",
                 {"caption": caption, "seed": seed})
    writer.sheet(settings.sheet)
    return writer.outputs


# ---- edit -----------------------------------------------------------------------------------
def edit_files(load: LoadOptions, image: str | os.PathLike, audio: Sequence[str], output: str | os.PathLike,
               settings: Settings, *, strength: float, mask: str | os.PathLike | None = None,
               pipe: SeeingSoundsPipeline | None = None, progress: bool | None = None) -> list[Path]:
    """``seeingsounds edit``: ``image`` edited by every sound file (image-to-image, or inpainting inside
    ``mask``), PNGs with provenance (input image and mask sha256, strength) and a contact sheet that
    starts with the input. Returns the written paths (the sheet first).
    """
    audio = [str(a) for a in audio]
    for path in audio:
        if not os.path.isfile(path):
            raise ConfigError(f"sound file {path} does not exist")
    check_settings(settings, len(audio))
    strength = check_strength(strength)
    picture, mask_image = load_edit_inputs(image, mask)
    if settings.num_frames is not None or settings.fps is not None:
        raise ConfigError("--frames and --fps are for video generation; edit makes images")
    names = output_names(audio, [], settings)
    folder, single = plan_outputs(output, len(names))
    inputs = [*audio, image if isinstance(image, (str, os.PathLike)) else None,
              mask if isinstance(mask, (str, os.PathLike)) else None, settings.mix[0] if settings.mix else None]
    check_targets(output_targets(folder, single, names, video=False, sheet=settings.sheet), inputs, folder,
                  single=single is not None, video=False)
    if pipe is None:
        video = check_model_limits(load, settings, [picture.size], strength=strength)
        if video:
            raise ConfigError(f"checkpoint {load.checkpoint} drives a video generator: edit needs an image checkpoint")

    pipe = pipe if pipe is not None else load.load()
    call = {"num_inference_steps": settings.steps, "guidance_scale": settings.guidance, "height": settings.height,
            "width": settings.width, "batch_size": settings.batch_size}
    sound_meta = _SoundMeta.of(settings)
    image_meta = {"image": str(image), "image_sha256": file_sha256(image) if isinstance(image, (str, os.PathLike)) else None,
                  "mask": str(mask) if mask is not None else None,
                  "mask_sha256": file_sha256(mask) if isinstance(mask, (str, os.PathLike)) else None,
                  "strength": strength}
    writer: _Writer | None = None
    for start, paths in _chunks(audio, settings, progress):
        out = pipe.edit(picture, paths, strength=strength, mask=mask_image, seed=settings.seed,
                        num_images_per_audio=settings.num_images, effects=settings.effects, mix=settings.mix, **call)
        if writer is None:
            writer = _Writer(folder, single, {**common_provenance(pipe, load.checkpoint, out.settings), **image_meta})
        for k, seed in enumerate(out.seeds):
            i = start + k // settings.num_images
            writer.image(out.images[k], names[start * settings.num_images + k],
                         f"{Path(audio[i]).name}\nstrength {strength:g}, seed {seed}",
                         sound_meta.image(audio[i], seed, out.effects))
    assert writer is not None
    writer.sheet(settings.sheet, [(picture, f"input {Path(str(image)).name}" + ("\n(masked)" if mask is not None else ""))])
    return writer.outputs

