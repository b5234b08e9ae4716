"""``seeingsounds describe``: the run's captions nearest to what the aligner predicts for each clip."""

from __future__ import annotations

import argparse

COMMAND = "describe"
HELP = "show what a trained aligner 'hears': the nearest captions of its run for each clip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from seeingsounds.cli.common import add_effect_arguments

    parser.add_argument("--checkpoint", required=True, help="training run folder (or its best/ or last/)")
    parser.add_argument("clips", nargs="+", help="audio files")
    parser.add_argument("--top-k", type=int, default=5, help="captions shown per clip")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from seeingsounds.cli.common import effects_from_args, mix_from_args
    from seeingsounds.describe import describe_audio

    descriptions = describe_audio(args.checkpoint, args.clips, top_k=args.top_k,
                                  effects=effects_from_args(args), mix=mix_from_args(args))
    if args.json:
        print(json.dumps([d.to_dict() for d in descriptions], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(d.to_text() for d in descriptions))
    return 0
