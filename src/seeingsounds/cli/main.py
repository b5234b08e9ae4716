"""``seeingsounds`` command line: one module per sub-command in this package.

A sub-command module defines ``COMMAND`` (its name), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; it is discovered automatically. Modules import
heavy libraries inside ``run`` so that ``seeingsounds --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from seeingsounds import __version__
from seeingsounds.errors import SeeingSoundsError


def _commands() -> dict[str, object]:
    import seeingsounds.cli as package

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in ("main", "common"):
            continue
        module = importlib.import_module(f"seeingsounds.cli.{info.name}")
        if hasattr(module, "COMMAND"):
            found[module.COMMAND] = module
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seeingsounds", description="Turn sounds into images (SeeingSounds reference implementation)."
    )
    parser.add_argument("--version", action="version", version=f"seeingsounds {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _commands().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def quiet_libraries() -> None:
    """Silence the weight-loading chatter of transformers/diffusers (our own bars stay).

    Uses environment variables, read when those libraries are first imported, so that light
    commands do not pay for importing them here.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        quiet_libraries()
    try:
        return int(args._run(args) or 0)
    except SeeingSoundsError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # its message, where a command gives one, says what was kept
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
