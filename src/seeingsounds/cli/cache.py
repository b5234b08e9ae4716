"""``seeingsounds cache``: precompute the frozen encoder's tokens and the caption targets of a dataset.

Under ``accelerate launch`` / ``torchrun`` every process encodes its share (each entry written once).
"""

from __future__ import annotations

import argparse

COMMAND = "cache"
HELP = "precompute encoder features and caption targets of a dataset into the feature cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="preset name (see `seeingsounds presets`)")
    parser.add_argument("--data", required=True, help="manifest (.csv/.jsonl) or class-per-folder directory")
    parser.add_argument("--captions", required=True, help="class captions file")
    parser.add_argument("--cache-dir", help="feature cache folder (default: $SEEINGSOUNDS_HOME/features)")
    parser.add_argument("--cache-dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--include-test", action="store_true", help="also encode the test split (for evaluation)")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable audio files (listed)")
    parser.add_argument("--seed", type=int, default=0, help="split seed when the manifest has no split column")
    parser.add_argument("--batch-size", type=int, default=16, help="clips (and captions) per encoder batch")
    parser.add_argument("--device", default="auto",
                        help="where the encoders run: auto (the accelerator when there is one), cpu, cuda[:N], mps")
    parser.add_argument("--dtype", default="auto",
                        help="precision of the text encoders: auto (bf16 where supported, else fp16; fp32 on "
                             "the CPU), fp32, fp16, bf16 (the audio encoder stays fp32, as in `train`)")
    parser.add_argument("--augment", action="append", default=[], metavar="EFFECT[:k=v,...][+...]",
                        help="also cache the clips transformed by this chain (same syntax as `train --augment`)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    # imported here so that `seeingsounds --help` stays fast (cli/main.py)
    from seeingsounds.audio.render import check_chain
    from seeingsounds.cache import FeatureCache
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.precompute import precompute_dataset
    from seeingsounds.training.config import parse_augment

    chains = [check_chain(parse_augment(s)) for s in args.augment]
    dataset = load_dataset(args.data, args.captions, seed=args.seed, skip_bad=args.skip_bad)
    cache = FeatureCache(args.cache_dir, dtype=args.cache_dtype)
    result = precompute_dataset(dataset, args.preset, cache, chains=chains, include_test=args.include_test,
                                device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                progress=not args.no_progress)
    if result.rank == 0:  # one report under torchrun / accelerate launch
        print(f"{dataset.summary()}; {result.encoder_inputs} encoder inputs")
        print(f"{result.root}\n  audio features: {result.audio}\n  caption targets: {result.targets}")
    return 0
