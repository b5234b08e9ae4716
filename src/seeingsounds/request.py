"""One request to the engine, checked once at the boundary, before any model weights load.

A :class:`Request` is what every front end asks for: sound files (and, for ``generate``, captions
for the text path), the :class:`Settings` (seeds, steps, size, guidance, effects chain, mix, video
length), and for an edit the picture, its optional mask and the strength (:class:`EditSpec`).
:meth:`Request.check` validates everything that needs no model; :func:`check_model_limits` checks
the sizes, video options and an edit's steps against the preset and the generator's configs (no
weights) and returns the generator's :class:`~seeingsounds.generators.base.OutputKind`. After that
the :class:`~seeingsounds.engine.Engine` trusts the request.

The value checks (:func:`check_seed`, :func:`check_guidance`, :func:`check_size`, ...) live here and
nowhere else; :class:`~seeingsounds.pipeline.SeeingSoundsPipeline` calls them for its Python callers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seeingsounds.audio.io import audio_info
from seeingsounds.audio.render import EffectChain, check_chain
from seeingsounds.checkpoint import resolve_checkpoint
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import OutputKind
from seeingsounds.imaging import load_picture
from seeingsounds.model import load_backend
from seeingsounds.paths import found_spelling
from seeingsounds.presets import get_preset

__all__ = ["EditSpec", "LoadOptions", "Request", "Settings", "check_fps", "check_guidance", "check_lora",
           "check_model_limits", "check_seed", "check_size", "check_size_multiple", "check_strength", "size_limit",
           "size_multiple"]

#: the most files one run writes (inputs x --num-images): more is a typo, and its names alone fill the memory
MAX_OUTPUTS = 10_000
#: seeds are 0 .. 2**32-1 (documented in ``generate --help``): every RNG in use takes them unchanged
#: (torch would silently wrap -1 to 2**64-1)
SEED_MAX = 2**32 - 1
#: sizes beyond this multiple of the generator's native resolution are refused (see :func:`size_limit`)
SIZE_LIMIT_FACTOR = 2
#: the highest mp4 frame rate accepted (players and the H.264 levels in common use stop well below)
FPS_MAX = 240

#: the largest guidance scale accepted: far above any useful one (1-20), larger only saturates or overflows
GUIDANCE_MAX = 100.0


def check_guidance(value: Any, label: str = "guidance_scale") -> float:
    """``value`` as a float in ``0 .. GUIDANCE_MAX``; NaN, infinite or out-of-range values are refused
    (NaN made black images, 1e308 a traceback inside the generator)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value <= GUIDANCE_MAX:
        raise ConfigError(f"{label} must be a number in 0..{GUIDANCE_MAX:g}, got {value!r}")
    return float(value)


def check_seed(seed: Any, label: str = "seed") -> int:
    """``seed`` as an int in ``0 .. SEED_MAX``; a negative or larger one is refused (torch would wrap it)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"{label} must be an integer in 0..{SEED_MAX}, got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ConfigError(f"{label} must be in 0..{SEED_MAX} (2**32-1), got {seed}")
    return int(seed)


def _component_config(backend: Any, name: str) -> dict[str, Any]:
    """The config of the generator's component ``name`` (read from its config file, no weights); empty
    when the generator has no such component."""
    try:
        return backend.load_config(name)
    except Exception:  # a component the generator does not have
        return {}


def _denoiser_config(backend: Any) -> dict[str, Any]:
    """The config of the generator's denoiser: its transformer, else its UNet."""
    return _component_config(backend, "transformer") or _component_config(backend, "unet")


def size_limit(backend: Any, preset: Any) -> tuple[int, str]:
    """The largest image side this generator accepts, and why: read from configs only (no weights).

    A hard limit where the model has one (SD3's positional-embedding table); otherwise
    ``SIZE_LIMIT_FACTOR`` x the native resolution (the denoiser's ``sample_size`` x VAE factor, the
    VAE's ``sample_size``, or the preset's default size): beyond it the model repeats itself and the
    memory grows with the square of the side.
    """
    vae = _component_config(backend, "vae")
    vae_factor = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    denoiser = _denoiser_config(backend)
    native, why = max(int(preset.height), int(preset.width)), "the preset's default size"
    if denoiser.get("sample_size"):
        native, why = int(denoiser["sample_size"]) * vae_factor, "sample_size in its config"
    elif vae.get("sample_size"):
        native, why = int(vae["sample_size"]), "its VAE's sample_size"
    native = max(native, int(preset.height), int(preset.width))
    limit = SIZE_LIMIT_FACTOR * native
    reason = (f"{SIZE_LIMIT_FACTOR}x the {native} px it was made for ({why}): larger sizes repeat content "
              "and need memory growing with the square of the side")
    pos = denoiser.get("pos_embed_max_size")
    if pos:
        hard = int(pos) * int(denoiser.get("patch_size", 1) or 1) * vae_factor
        if hard < limit:
            limit, reason = hard, f"its positional-embedding table covers {hard} px (pos_embed_max_size {pos})"
    return limit, reason


def size_multiple(backend: Any) -> int:
    """What image sides must be multiples of for this generator (VAE downsampling x latent patching; FLUX
    packs 2x2 latent patches), read from configs only (no weights)."""
    vae = _component_config(backend, "vae")
    blocks = vae.get("block_out_channels")
    factor = int(vae.get("scale_factor_spatial") or (2 ** (len(blocks) - 1) if blocks else 8))
    if backend.pipeline_class().__name__.startswith("Flux"):
        return factor * 2
    patch = _denoiser_config(backend).get("patch_size", 1) or 1
    return factor * int(patch[-1] if isinstance(patch, (tuple, list)) else patch)


def check_size_multiple(width: int, height: int, multiple: int) -> None:
    """Refuse a size whose sides are not multiples of ``multiple`` (:func:`size_multiple`), with one that is."""
    if height % multiple or width % multiple:
        raise ConfigError(
            f"height and width must be multiples of {multiple} for this generator, got {width}x{height}: "
            f"try {max(multiple, width // multiple * multiple)}x{max(multiple, height // multiple * multiple)}"
        )


def check_size(width: int | None, height: int | None, backend: Any, preset: Any) -> None:
    """Refuse a size larger than :func:`size_limit` before any weights are loaded."""
    limit, reason = size_limit(backend, preset)
    for label, value in (("width", width), ("height", height)):
        if value is not None and int(value) > limit:
            raise ConfigError(f"{label} {value} is larger than this generator's limit of {limit} px: {reason}")


def read_checkpoint_preset(checkpoint: str | os.PathLike, preset: str | Any = None) -> Any:
    """The preset a checkpoint records (or ``preset``), read from its config only: no weights loaded."""
    folder = resolve_checkpoint(checkpoint)
    if preset is not None:
        return get_preset(preset)
    config_file = Path(folder) / "config.json"
    recorded = None
    if config_file.is_file():
        try:
            recorded = json.loads(config_file.read_text(encoding="utf-8")).get("preset")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config_file} is not readable JSON ({exc}): the checkpoint is damaged") from exc
    else:  # a hub id: the config is fetched by from_pretrained
        return None
    if not recorded:
        raise ConfigError(f"checkpoint {checkpoint} records no preset: pass preset=<name> (see `seeingsounds presets`)")
    return get_preset(recorded)


def load_edit_inputs(image: Any, mask: Any = None) -> tuple[Image.Image, Image.Image | None]:
    """The picture (RGB) and optional mask (L) of an edit, checked to be readable and of one size."""
    picture = load_picture(image, what="image")
    mask_image = load_picture(mask, what="mask", mode="L") if mask is not None else None
    if mask_image is not None and mask_image.size != picture.size:
        named = isinstance(image, (str, os.PathLike)) and isinstance(mask, (str, os.PathLike))
        raise ConfigError(f"the mask{f' {mask}' if named else ''} is {mask_image.width}x{mask_image.height} but "
                          f"the image{f' {image}' if named else ''} is {picture.width}x{picture.height}: "
                          "give a mask of the image's size")
    return picture, mask_image


def check_strength(strength: Any) -> float:
    """An edit's strength: the share of the diffusion run over the input, in (0, 1]."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or not 0.0 < float(strength) <= 1.0:
        raise ConfigError(f"strength must be a number in (0, 1] (1 = ignore the input image), got {strength!r}")
    return float(strength)


def check_edit_steps(strength: float, steps: int) -> None:
    """Refuse an edit whose ``int(steps * strength)`` is 0: the img2img pipeline would run no diffusion step."""
    if int(steps * strength) < 1:
        raise ConfigError(f"strength {strength} x {steps} steps runs no diffusion step: "
                          f"raise the steps to at least {math.ceil(1 / strength)} or the strength")


def check_fps(fps: Any, label: str = "fps") -> int:
    """A video's frame rate: an integer in ``1 .. FPS_MAX``."""
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= FPS_MAX:
        raise ConfigError(f"{label} must be an integer in 1..{FPS_MAX}, got {fps!r}")
    return int(fps)




def sound_path(path: str | os.PathLike, what: str = "sound file") -> str:
    """A sound file named on the command line, checked before any model loads: ``~`` expanded (a quoted
    ``~`` or ``--mix=~/a.wav`` reaches us unexpanded), found under the other Unicode normalisation of its
    name (``café`` typed composed, stored decomposed by a Mac), an existing file whose header is audio.
    A shell pattern that matched nothing reaches us unchanged: the error says so."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text) if text.startswith("~") else text
    expanded = found_spelling(expanded)
    if not os.path.isfile(expanded):
        if any(c in text for c in "*?[") and not os.path.exists(expanded):
            raise ConfigError(f"{what} {text} does not exist: no file matches that pattern (the shell passes a "
                              "pattern that matches nothing as it is); check the folder and the suffix")
        reason = "is a folder, not a file" if os.path.isdir(expanded) else "does not exist"
        raise ConfigError(f"{what} {text} {reason}")
    audio_info(expanded)  # not audio, or truncated to nothing: fails now, not after the model has loaded
    return expanded


#: the files diffusers' ``load_lora_weights`` reads
LORA_SUFFIXES = (".safetensors", ".bin")


def check_lora(lora: str | os.PathLike | None) -> str | None:
    """A LoRA argument as a string (``~`` expanded), ``None`` for none. Refused before any model loads:
    a missing local path (one that starts with ``.``, ``/`` or ``~``, or names a weights file), a file
    that is not a ``.safetensors``/``.bin`` file and a folder without one (diffusers failed on them with
    a traceback once the generator had loaded)."""
    if lora is None or str(lora) == "":
        return None
    lora = str(lora)
    if lora.startswith("~"):
        lora = os.path.expanduser(lora)  # not a hub id; neither diffusers nor a quoted shell argument expands it
    path = Path(lora)
    if path.is_file() and path.suffix.lower() not in LORA_SUFFIXES:
        raise ConfigError(f"LoRA weights {lora} is not a {' or '.join(LORA_SUFFIXES)} file: give LoRA weights "
                          "(a .safetensors file, its folder or a hub id)")
    if path.is_dir() and not any(p.suffix.lower() in LORA_SUFFIXES for p in path.iterdir() if p.is_file()):
        raise ConfigError(f"the LoRA folder {lora} holds no {' or '.join(LORA_SUFFIXES)} file: give LoRA weights "
                          "(a .safetensors file, its folder or a hub id)")
    if not path.exists() and (lora.startswith((".", "/", "~")) or path.suffix.lower() in LORA_SUFFIXES):
        raise ConfigError(f"LoRA weights {lora} do not exist: give a .safetensors file, its folder or a hub id")
    return lora


# ---- the request ------------------------------------------------------------------------------
@dataclass
class LoadOptions:
    """Which checkpoint to load and how (``SeeingSoundsPipeline.from_pretrained``'s options)."""

    checkpoint: str
    preset: str | None = None
    generator_id: str | None = None
    device: str | None = None
    dtype: str | None = None
    lora: str | None = None
    cpu_offload: bool = False


@dataclass
class Settings:
    """Generation settings shared by ``generate``, ``edit``, the web app and live mode (``None``: the preset's)."""

    seed: int = 0
    num_images: int = 1
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    batch_size: int = 4
    effects: EffectChain = field(default_factory=list)
    mix: tuple[Any, float] | None = None
    num_frames: int | None = None
    fps: int | None = None
    sheet: bool = True

    def check(self, n_inputs: int) -> None:
        """Values that need no model: counts, seeds, guidance, effects, the mix partner."""
        for label, value in (("--num-images", self.num_images), ("--batch-size", self.batch_size),
                             ("--steps", self.steps), ("--frames", self.num_frames), ("--fps", self.fps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ConfigError(f"{label} must be >= 1, got {value}")
        if self.fps is not None:
            check_fps(self.fps, "--fps")
        check_seed(self.seed, "--seed")
        check_seed(self.seed + self.num_images - 1, "--seed + --num-images - 1")
        if self.guidance is not None:
            check_guidance(self.guidance, "--guidance")
        self.effects = check_chain(self.effects)  # a bad value fails now, not after the generator has loaded
        if self.mix is not None:
            if not (isinstance(self.mix, (tuple, list)) and len(self.mix) == 2):
                raise ConfigError(f"mix must be (partner sound, ratio), got {self.mix!r}")
            partner, ratio = self.mix
            if isinstance(partner, (str, os.PathLike)):
                partner = sound_path(partner, "--mix file")
                self.mix = (partner, ratio)
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
                raise ConfigError(f"the mix ratio must be a number in [0, 1] (share of the partner), got {ratio!r}")
        if n_inputs < 1:
            raise ConfigError("give at least one sound file")
        if n_inputs * self.num_images > MAX_OUTPUTS:
            raise ConfigError(f"{n_inputs} inputs x --num-images {self.num_images} would make "
                              f"{n_inputs * self.num_images} files, more than {MAX_OUTPUTS} in one run: run it in parts")


@dataclass
class EditSpec:
    """What an edit changes: the picture (path, PIL image or array), the optional mask (white: may change)
    and the strength (share of the diffusion run over the picture, in (0, 1])."""

    image: Any
    mask: Any = None
    strength: float = 0.6


@dataclass
class Request:
    """One request: sounds (paths, or arrays with :attr:`sample_rate`) and, for ``generate``, captions
    for the text path; the settings; for an edit, the :class:`EditSpec`.

    :meth:`check` validates it once (no model needed) and loads an edit's picture and mask into
    :attr:`picture` / :attr:`mask_image`.
    """

    sounds: Sequence[Any] = ()
    settings: Settings = field(default_factory=Settings)
    captions: Sequence[str] = ()
    edit: EditSpec | None = None
    sample_rate: int | None = None
    picture: Image.Image | None = field(default=None, init=False, repr=False)
    mask_image: Image.Image | None = field(default=None, init=False, repr=False)

    @property
    def inputs(self) -> list[Any]:
        """Every file this request reads (never an output): the sounds, the mix partner, the picture, the mask."""
        files: list[Any] = [s for s in self.sounds if isinstance(s, (str, os.PathLike))]
        if self.settings.mix is not None and isinstance(self.settings.mix[0], (str, os.PathLike)):
            files.append(self.settings.mix[0])
        if self.edit is not None:
            files += [f for f in (self.edit.image, self.edit.mask) if isinstance(f, (str, os.PathLike))]
        return files

    def check(self) -> Request:
        """Validate everything that needs no model; returns ``self`` (now trusted)."""
        self.sounds = [sound_path(s) if isinstance(s, (str, os.PathLike)) else s for s in self.sounds]
        self.captions = [str(c) for c in self.captions]
        if not self.sounds and not self.captions:
            raise ConfigError("give at least one sound file" + ("" if self.edit else " (or --caption TEXT)"))
        self.settings.check(len(self.sounds) + len(self.captions))
        if self.edit is not None:
            if self.captions:
                raise ConfigError("an edit is driven by sounds; captions are for generate")
            if self.settings.num_frames is not None or self.settings.fps is not None:
                raise ConfigError("--frames and --fps are for video generation; edit makes images")
            self.edit.strength = check_strength(self.edit.strength)
            self.picture, self.mask_image = load_edit_inputs(self.edit.image, self.edit.mask)
        return self


def check_model_limits(load: LoadOptions, request: Request) -> OutputKind | None:
    """Check sizes, video options and an edit's strength x steps against the preset and the generator's
    configs (no weights); returns the generator's output kind, or ``None`` when the checkpoint is a hub
    id (its config arrives with the weights)."""
    check_lora(load.lora)
    preset = read_checkpoint_preset(load.checkpoint, load.preset)  # a missing local checkpoint fails here
    if preset is None:
        return None
    if load.generator_id is not None:
        preset = preset.replace(generator_id=str(load.generator_id))
    settings = request.settings
    backend = load_backend(preset)
    sizes = [(settings.width, settings.height)]
    if request.edit is not None:
        check_edit_steps(request.edit.strength, preset.num_inference_steps if settings.steps is None else settings.steps)
        if request.picture is not None:
            sizes.append(request.picture.size)
    for width, height in sizes:
        check_size(width, height, backend, preset)
    if settings.width is not None or settings.height is not None:  # an edit's picture is resized to a multiple
        check_size_multiple(settings.width or preset.width, settings.height or preset.height, size_multiple(backend))
    kind = backend.output_kind
    if kind.video and settings.num_frames is not None:
        backend.check_num_frames(settings.num_frames)
    if not kind.video and (settings.num_frames is not None or settings.fps is not None):
        raise ConfigError(f"--frames and --fps are for video checkpoints; {preset.name} makes images")
    if kind.video and request.edit is not None:
        raise ConfigError(f"checkpoint {load.checkpoint} drives a video generator: edit needs an image checkpoint")
    return kind
