"""``seeingsounds describe``: the run's captions nearest to what the aligner predicts for each clip."""

from __future__ import annotations

import argparse
import json

from seeingsounds.cli.common import add_device_arguments, add_effect_arguments, effects_from_args, mix_from_args

COMMAND = "describe"
HELP = "show what a trained aligner 'hears': the nearest captions of its run for each clip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="training run folder (or its best/ or last/)")
    parser.add_argument("clips", nargs="+", help="audio files")
    parser.add_argument("--top-k", type=int, default=5, help="captions shown per clip")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--batch-size", type=int, default=8, help="clips encoded at a time (default 8)")
    add_device_arguments(parser)
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.describe import describe_audio  # deferred on purpose: torch stays out of `--help`

    descriptions = describe_audio(args.checkpoint, args.clips, top_k=args.top_k, effects=effects_from_args(args),
                                  mix=mix_from_args(args), device=args.device, dtype=args.dtype,
                                  batch_size=args.batch_size)
    if args.json:
        print(json.dumps([d.to_dict() for d in descriptions], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(d.to_text() for d in descriptions))
    return 0
