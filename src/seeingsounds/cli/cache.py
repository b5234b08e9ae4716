"""``seeingsounds cache``: precompute the frozen encoder's tokens and the caption targets of a dataset."""

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
    parser.add_argument("--batch-size", type=int, default=16, help="clips per encoder batch")
    parser.add_argument("--device", default="cpu", help="device of the encoder (cpu, cuda, mps)")
    parser.add_argument("--augment", action="append", default=[], metavar="EFFECT[:k=v,...][+...]",
                        help="also cache the clips transformed by this chain (same syntax as `train --augment`)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from seeingsounds.cache import AudioItem, FeatureCache
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.model import load_backend, load_encoder
    from seeingsounds.presets import get_preset
    from seeingsounds.training.config import parse_augment

    chains = [parse_augment(s) for s in args.augment]
    if chains:
        from seeingsounds.audio.effects import describe_effect

        for chain in chains:
            for name, params in chain:
                describe_effect(name, **params)
    dataset = load_dataset(args.data, args.captions, seed=args.seed, skip_bad=args.skip_bad)
    preset = get_preset(args.preset)
    clips = [c for c in dataset.clips if args.include_test or c.split != "test"]
    items = [AudioItem.of(c.path, effects=chain) for chain in [[], *chains] for c in clips]
    print(f"{dataset.summary()}; {len(items)} encoder inputs")
    cache = FeatureCache(args.cache_dir, dtype=args.cache_dtype)
    encoder = load_encoder(preset, device=args.device)
    cache.ensure_audio(encoder, items, batch_size=args.batch_size, progress=not args.no_progress)
    audio = str(cache.stats)
    cache.stats = type(cache.stats)()
    texts = [t for label in dataset.labels for t in dataset.captions[label]] + [""]
    cache.caption_targets(load_backend(preset), texts, progress=not args.no_progress)
    print(f"{cache.root}\n  audio features: {audio}\n  caption targets: {cache.stats}")
    return 0
