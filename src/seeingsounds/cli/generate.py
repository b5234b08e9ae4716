"""``seeingsounds generate``: sounds (and optionally captions) to PNGs, or mp4 videos, with provenance."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from seeingsounds.cli.common import add_effect_arguments, effects_from_args, mix_from_args
from seeingsounds.errors import ConfigError

if TYPE_CHECKING:
    from seeingsounds.request import LoadOptions, Settings

COMMAND = "generate"
HELP = "generate images (or videos, with a video checkpoint) from sound files with a trained checkpoint"

#: documented seed range (seeingsounds.request.SEED_MAX)
SEED_HELP = "0 .. 4294967295 (2**32-1)"


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose and load the model (shared with ``edit``)."""
    parser.add_argument("--checkpoint", required=True, help="training run folder, aligner folder or hub id")
    parser.add_argument("--device", help="auto (default: the accelerator when there is one), cuda, mps or cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="weights' precision (default: bf16 where supported, fp16 on other GPUs, fp32 on the CPU)")
    parser.add_argument("--lora", metavar="PATH",
                        help="LoRA weights for the generator (file, folder or hub id; default: the preset's, if any)")
    parser.add_argument("--cpu-offload", action="store_true", help="offload generator modules to the CPU (small GPUs)")
    parser.add_argument("--preset", help="use this preset instead of the checkpoint's (e.g. a local copy of the generator)")
    parser.add_argument("--generator-id", help="load the generator from this folder or hub id")


def add_settings_arguments(parser: argparse.ArgumentParser, *,
                           size_help: str = "size, e.g. 512x512 or 512 (default: the preset's; at most the generator's limit)") -> None:
    """Seeds, steps, size, guidance, batching and the contact sheet (shared with ``edit``)."""
    parser.add_argument("--seed", type=int, default=0, help=f"seed of the first image of every input, {SEED_HELP} (default 0)")
    parser.add_argument("--num-images", type=int, default=1, metavar="N", help="images per input, seeds SEED..SEED+N-1")
    parser.add_argument("--steps", type=int, help="diffusion steps (default: the preset's, 10 for FLUX.1-dev)")
    parser.add_argument("--size", metavar="WxH", help=size_help)
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per diffusion batch (default 4)")
    parser.add_argument("--no-sheet", action="store_true", help="do not write contact_sheet.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="*", help="sound files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created), or a .png (.mp4 for a video checkpoint) file for exactly one output")
    add_load_arguments(parser)
    add_settings_arguments(parser)
    parser.add_argument("--caption", action="append", default=[], metavar="TEXT",
                        help="also generate from this caption through the generator's text encoders (repeatable)")
    parser.add_argument("--frames", type=int, metavar="N", help="video checkpoints: frames per video (default: the preset's)")
    parser.add_argument("--fps", type=int, help="video checkpoints: frame rate of the mp4 (default: the preset's)")
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


def load_options(args: argparse.Namespace) -> LoadOptions:
    from seeingsounds.request import LoadOptions  # deferred on purpose: the request module loads torch

    return LoadOptions(checkpoint=args.checkpoint, preset=args.preset, generator_id=args.generator_id,
                       device=args.device, dtype=args.dtype, lora=args.lora, cpu_offload=args.cpu_offload)


def settings_from_args(args: argparse.Namespace) -> Settings:
    from seeingsounds.request import Settings  # deferred on purpose: the request module loads torch

    width, height = parse_size(args.size)
    return Settings(seed=args.seed, num_images=args.num_images, steps=args.steps, guidance=args.guidance, width=width,
                    height=height, batch_size=args.batch_size, effects=effects_from_args(args), mix=mix_from_args(args),
                    num_frames=getattr(args, "frames", None), fps=getattr(args, "fps", None), sheet=not args.no_sheet)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.request import Request  # deferred on purpose: loads torch and diffusers
    from seeingsounds.writers import generate_files

    request = Request(sounds=args.audio, captions=args.caption, settings=settings_from_args(args))
    for path in generate_files(load_options(args), request, args.output):
        print(path)
    return 0
