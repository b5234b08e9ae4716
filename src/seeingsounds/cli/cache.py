"""``seeingsounds cache``: precompute the frozen encoder's tokens and the caption targets of a dataset.

Under ``accelerate launch`` / ``torchrun`` every process encodes its share (each entry written once).
"""

from __future__ import annotations

import argparse
import sys

from seeingsounds.cli.common import add_train_option

COMMAND = "cache"
HELP = "precompute encoder features and caption targets of a dataset into the feature cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the options `train` shares come from TrainConfig's fields (seeingsounds.training.config)
    for name in ("preset", "data", "captions", "cache_dir", "cache_dtype"):
        add_train_option(parser, name)
    parser.add_argument("--include-test", action="store_true", help="also encode the test split (for evaluation)")
    add_train_option(parser, "skip_bad")
    parser.add_argument("--seed", type=int, default=0, help="split seed when the manifest has no split column")
    parser.add_argument("--batch-size", type=int, default=16, help="clips (and captions) per encoder batch")
    parser.add_argument("--device", default="auto",
                        help="where the encoders run: auto (the accelerator when there is one), cpu, cuda[:N], mps")
    add_train_option(parser, "dtype")
    add_train_option(parser, "augment", help="also cache the clips transformed by this chain (same syntax as "
                                             "`train --augment`)")
    add_train_option(parser, "progress")


def run(args: argparse.Namespace) -> int:
    # imported here so that `seeingsounds --help` stays fast (cli/main.py)
    from seeingsounds.audio.render import check_chain
    from seeingsounds.cache import FeatureCache
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.precompute import precompute_dataset
    from seeingsounds.training.config import parse_augments

    chains = [check_chain(chain) for chain in parse_augments(args.augment)]
    dataset = load_dataset(args.data, args.captions, seed=args.seed, skip_bad=args.skip_bad)
    cache = FeatureCache(args.cache_dir, dtype=args.cache_dtype)
    result = precompute_dataset(dataset, args.preset, cache, chains=chains, include_test=args.include_test,
                                device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                progress=args.progress, skip_bad=args.skip_bad)
    if result.rank == 0:  # one report under torchrun / accelerate launch
        if result.undecodable:
            print(f"skipped {len(result.undecodable)} audio file(s) that cannot be decoded (--skip-bad):\n"
                  + "\n".join(f"  - {why}" for why in result.undecodable), file=sys.stderr)
        print(f"{dataset.summary()}; {result.encoder_inputs} encoder inputs")
        print(f"{result.root}\n  audio features: {result.audio}\n  caption targets: {result.targets}")
    return 0
