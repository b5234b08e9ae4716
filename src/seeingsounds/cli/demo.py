"""``seeingsounds demo``: the whole method offline, end to end (see :mod:`seeingsounds.demo`)."""

from __future__ import annotations

import argparse

COMMAND = "demo"
HELP = "offline end-to-end demo: encode a real sound, train, describe, volume sweep, mix grid, images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=None, help="offline (default when installed: real aisfx + MiniLM weights) or tiny")
    parser.add_argument("-o", "--out", default="demo-output", help="folder for the data, the run and the images")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the training progress bar")


def run(args: argparse.Namespace) -> int:
    from seeingsounds.demo import run_demo

    run_demo(args.out, preset=args.preset, epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    return 0
