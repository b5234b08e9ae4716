"""``seeingsounds demo``: the whole method offline, end to end (see :mod:`seeingsounds.demo`)."""

from __future__ import annotations

import argparse

COMMAND = "demo"
HELP = "offline end-to-end demo: encode a real sound, train, describe, volume sweep, mix grid, images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=None, help="offline (default when installed: real aisfx + MiniLM weights) or tiny")
    parser.add_argument("-o", "--out", default="demo-output", help="folder for the data, the run, the pictures (index.html, report.png) and results.json; "
                        "a second run reuses what it holds")
    from seeingsounds.demo import EPOCHS

    parser.add_argument("--epochs", type=int, default=EPOCHS, help="most epochs to train (default %(default)s; early stopping ends sooner)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are shown only on a terminal anyway)")


def run(args: argparse.Namespace) -> int:
    from seeingsounds.demo import run_demo

    run_demo(args.out, preset=args.preset, epochs=args.epochs, seed=args.seed, progress=False if args.no_progress else None)
    return 0
