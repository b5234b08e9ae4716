"""``seeingsounds generate``: sounds (and optionally captions) to PNGs with provenance metadata."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from seeingsounds.cli.common import add_effect_arguments, effects_from_args, mix_from_args
from seeingsounds.errors import ConfigError

COMMAND = "generate"
HELP = "generate images from sound files with a trained checkpoint"

SHEET_NAME = "contact_sheet.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="*", help="sound files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--checkpoint", required=True, help="training run folder, aligner folder or hub id")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created), or a .png file when there is exactly one image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image of every input (default 0)")
    parser.add_argument("--num-images", type=int, default=1, metavar="N", help="images per input, seeds SEED..SEED+N-1")
    parser.add_argument("--steps", type=int, help="diffusion steps (default: the preset's, 10 for FLUX.1-dev)")
    parser.add_argument("--size", metavar="WxH", help="image size, e.g. 512x512 or 512 (default: the preset's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per diffusion batch (default 4)")
    parser.add_argument("--caption", action="append", default=[], metavar="TEXT",
                        help="also generate from this caption through the generator's text encoders (repeatable)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the first available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="weights' precision (default: bf16 on cuda, fp32 elsewhere)")
    parser.add_argument("--lora", metavar="PATH", help="LoRA weights for the generator (file, folder or hub id)")
    parser.add_argument("--cpu-offload", action="store_true", help="offload generator modules to the CPU (small GPUs)")
    parser.add_argument("--preset", help="use this preset instead of the checkpoint's (e.g. a local copy of the generator)")
    parser.add_argument("--generator-id", help="load the generator from this folder or hub id")
    parser.add_argument("--no-sheet", action="store_true", help="do not write contact_sheet.png")
    add_effect_arguments(parser)


def parse_size(text: str | None) -> tuple[int | None, int | None]:
    """``"512x384"`` -> (512, 384) as (width, height); ``"512"`` -> (512, 512); None -> (None, None)."""
    if text is None:
        return None, None
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not match:
        raise ConfigError(f"--size must look like 512x512 (width x height) or 512, got {text!r}")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    if width < 1 or height < 1:
        raise ConfigError(f"--size must be positive, got {text!r}")
    return width, height


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].rstrip("-") or "caption"


def _stems(paths: list[str]) -> list[str]:
    """File stems, prefixed with the input's index where two inputs share one."""
    stems = [_slug(Path(p).stem, 60) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i:03d}-{s}" for i, s in enumerate(stems)]


def _check(args: argparse.Namespace) -> None:
    if not args.audio and not args.caption:
        raise ConfigError("give at least one sound file (or --caption TEXT)")
    for path in args.audio:
        if not os.path.isfile(path):
            raise ConfigError(f"sound file {path} does not exist")
    for label, value in (("--num-images", args.num_images), ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value is not None and value < 1:
            raise ConfigError(f"{label} must be >= 1, got {value}")
    if args.guidance is not None and args.guidance < 0:
        raise ConfigError(f"--guidance must be >= 0, got {args.guidance}")


def _plan_outputs(args: argparse.Namespace, n_images: int) -> tuple[Path, Path | None]:
    """(folder, single file or None). A ``.png`` output takes exactly one image."""
    out = Path(args.output)
    if out.suffix.lower() == ".png":
        if n_images != 1:
            raise ConfigError(f"-o {out} names one PNG but this run makes {n_images} images: give a folder instead")
        return out.parent if str(out.parent) else Path("."), out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} exists and is not a folder")
    return out, None


def run(args: argparse.Namespace) -> int:
    _check(args)
    width, height = parse_size(args.size)
    effects = effects_from_args(args)
    from seeingsounds.audio.effects import describe_effect

    for name, params in effects:  # a bad value fails now, not after the generator has loaded
        describe_effect(name, **params)
    mixing = mix_from_args(args)
    if mixing is not None and not os.path.isfile(mixing[0]):
        raise ConfigError(f"--mix file {mixing[0]} does not exist")
    n_images = (len(args.audio) + len(args.caption)) * args.num_images
    folder, single = _plan_outputs(args, n_images)

    from tqdm.auto import tqdm

    from seeingsounds import __version__
    from seeingsounds.audio.io import audio_fingerprint
    from seeingsounds.imaging import contact_sheet, save_png
    from seeingsounds.pipeline import SeeingSoundsPipeline

    pipe = SeeingSoundsPipeline.from_pretrained(
        args.checkpoint, preset=args.preset, generator_id=args.generator_id, device=args.device,
        dtype=None if args.dtype == "auto" else args.dtype, lora=args.lora, cpu_offload=args.cpu_offload,
    )
    settings = pipe.resolve_settings(args.steps, args.guidance, height, width, args.num_images, args.batch_size)
    common: dict[str, Any] = {
        "Software": f"seeingsounds {__version__}",
        "checkpoint": args.checkpoint,
        "preset": pipe.preset.name,
        "generator": f"{pipe.preset.generator}:{pipe.preset.generator_id}",
        "encoder": f"{pipe.preset.encoder}:{pipe.preset.encoder_id}",
        "steps": settings["num_inference_steps"],
        "guidance": settings["guidance_scale"],
        "size": f"{settings['width']}x{settings['height']}",
        "dtype": str(pipe.dtype).replace("torch.", ""),
        "lora": args.lora,
        "seeingsounds_version": __version__,
    }
    call = {"num_inference_steps": settings["num_inference_steps"], "guidance_scale": settings["guidance_scale"],
            "height": settings["height"], "width": settings["width"], "batch_size": args.batch_size}

    written: list[tuple[Path, str]] = []  # (path, contact-sheet label)

    def emit(image: Any, name: str, label: str, meta: dict[str, Any]) -> None:
        path = single if single is not None else folder / name
        save_png(image, path, {**common, **meta})
        written.append((path, label))

    stems = _stems(args.audio)
    chunk = max(1, args.batch_size // args.num_images) if args.num_images <= args.batch_size else 1
    mix_meta = None
    if mixing is not None:
        mix_meta = {"path": mixing[0], "sha256": audio_fingerprint(mixing[0]), "ratio": mixing[1]}
    bar = tqdm(total=len(args.audio), desc="sounds", unit="file", disable=None if len(args.audio) > 1 else True)
    for start in range(0, len(args.audio), chunk):
        paths = args.audio[start : start + chunk]
        out = pipe(paths, seed=args.seed, num_images_per_audio=args.num_images, effects=effects, mix=mixing, **call)
        for k, (image, seed) in enumerate(zip(out.images, out.seeds)):
            i = start + k // args.num_images
            meta = {"source": args.audio[i], "source_sha256": audio_fingerprint(args.audio[i]), "seed": seed,
                    "effects": [[n, dict(p)] for n, p in effects] or None,
                    "effect_descriptions": out.effects or None, "mix": mix_meta}
            emit(image, f"{stems[i]}_s{seed}.png", f"{Path(args.audio[i]).name}\nseed {seed}", meta)
        bar.update(len(paths))
    bar.close()

    for c, caption in enumerate(args.caption):
        out = pipe.from_caption(caption, seed=args.seed, num_images_per_caption=args.num_images, **call)
        for image, seed in zip(out.images, out.seeds):
            emit(image, f"caption{c:02d}-{_slug(caption)}_s{seed}.png", f"text: {caption}\nseed {seed}",
                 {"caption": caption, "seed": seed})

    if len(written) > 1 and not args.no_sheet:
        from PIL import Image

        images = []
        for path, _ in written:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        sheet = contact_sheet(images, [label for _, label in written])
        save_png(sheet, folder / SHEET_NAME, {**common, "images": [p.name for p, _ in written]})
        print(folder / SHEET_NAME)
    for path, _ in written:
        print(path)
    return 0
