"""``seeingsounds presets``: list the named presets."""

from __future__ import annotations

import argparse
import json

COMMAND = "presets"
HELP = "list the named presets (encoder, generator, defaults)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the full presets as JSON")


def run(args: argparse.Namespace) -> int:
    from seeingsounds.presets import available_presets, get_preset  # deferred on purpose: `--help` stays light

    presets = [get_preset(n) for n in available_presets()]
    if args.json:
        print(json.dumps([p.to_dict() for p in presets], indent=2))
        return 0
    for p in presets:
        print(f"{p.name:14s} {p.encoder}:{p.encoder_id} -> {p.generator}:{p.generator_id}\n{'':14s} {p.description}")
    return 0
