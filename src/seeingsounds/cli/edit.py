"""``seeingsounds edit``: edit a picture with a sound (image-to-image, or inpainting inside a mask)."""

from __future__ import annotations

import argparse

from seeingsounds.cli.common import add_effect_arguments
from seeingsounds.cli.generate import add_load_arguments, add_settings_arguments, load_options, settings_from_args

COMMAND = "edit"
HELP = "edit a picture with sound files: image-to-image (or inpainting inside --mask) driven by the aligner"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="sound files (wav, flac, ogg, mp3, ...): one edit each")
    parser.add_argument("--image", required=True, help="the picture to edit (PNG, JPEG, WebP)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created), or a .png for exactly one image")
    parser.add_argument("--strength", type=float, default=0.6,
                        help="how much may change, in (0, 1]: low keeps the picture, 1 ignores it (default 0.6)")
    parser.add_argument("--mask", help="only repaint where this image (same size as --image) is white")
    add_load_arguments(parser)
    add_settings_arguments(parser, size_help="output size, e.g. 512x512 (default: the picture's, rounded down to the "
                                             "generator's size multiple; the picture and mask are resized to it)")
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.request import EditSpec, Request  # deferred on purpose: loads torch and diffusers
    from seeingsounds.writers import edit_files

    request = Request(sounds=args.audio, settings=settings_from_args(args),
                      edit=EditSpec(image=args.image, mask=args.mask, strength=args.strength))
    for path in edit_files(load_options(args), request, args.output):
        print(path)
    return 0
