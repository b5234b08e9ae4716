"""``seeingsounds live``: the microphone (or a file played as a stream) becomes moving pictures."""

from __future__ import annotations

import argparse

from seeingsounds.cli.common import add_effect_arguments
from seeingsounds.cli.generate import SEED_HELP, add_load_arguments, load_options, parse_size

COMMAND = "live"
HELP = "turn the microphone (or a sound file played as a stream) into pictures that follow what it hears"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True,
                        help="folder for the frames (frameNNNNN.png with provenance) and the log live.jsonl")
    parser.add_argument("--input", metavar="FILE", help="play this sound file as the stream (default: the microphone)")
    parser.add_argument("--fast", action="store_true",
                        help="with --input: read the file as fast as pictures are made (one per hop), not in real time")
    parser.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds of sound (default: the "
                        "end of the file; the microphone runs until Ctrl-C)")
    parser.add_argument("--hop", type=float, default=None, metavar="S",
                        help="seconds of new sound per picture (default 0.5)")
    parser.add_argument("--ease", type=float, default=None, metavar="A",
                        help="share of the previous picture's conditioning kept at each hop, in [0, 1) "
                        "(default 0.6; 0: no easing)")
    parser.add_argument("--window", type=float, metavar="S",
                        help="seconds of the newest sound the model hears (default: the encoder's window)")
    parser.add_argument("--record", metavar="SESSION.mp4", help="also write the session as an mp4 with its sound")
    add_load_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help=f"the seed of every frame, {SEED_HELP} (default 0)")
    parser.add_argument("--steps", type=int, help="diffusion steps (default: the preset's)")
    parser.add_argument("--size", metavar="WxH", help="size, e.g. 64x64 or 64 (default: the preset's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the preset's)")
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.cli.common import effects_from_args, mix_from_args
    from seeingsounds.live import DEFAULT_EASE, DEFAULT_HOP, LiveOptions, record_session  # deferred: loads torch
    from seeingsounds.request import Settings

    width, height = parse_size(args.size)
    settings = Settings(seed=args.seed, steps=args.steps, guidance=args.guidance, width=width, height=height,
                        batch_size=1, effects=effects_from_args(args), mix=mix_from_args(args), sheet=False)
    options = LiveOptions(hop=DEFAULT_HOP if args.hop is None else args.hop,
                          ease=DEFAULT_EASE if args.ease is None else args.ease, window=args.window,
                          seconds=args.seconds)
    def show(frame) -> None:  # type: ignore[no-untyped-def]
        heard = ", ".join(f"{caption} ({score:.2f})" for caption, score in frame.heard[:3]) or "-"
        print(f"{frame.stream_time:7.2f} s  {frame.latency * 1000:6.0f} ms  {heard}", flush=True)

    summary = record_session(load_options(args), settings, args.output, input=args.input, fast=args.fast,
                             options=options, record=args.record, on_frame=show)
    print(f"{len(summary.frames)} frames in {summary.folder} ({summary.pictures_per_s:.1f} pictures/s, latency "
          f"{summary.mean_latency * 1000:.0f} ms mean, {summary.max_latency * 1000:.0f} ms max, "
          f"{summary.skipped} hops skipped), log {summary.log}"
          + (f", recording {summary.record}" if summary.record else "")
          + (" (stopped by Ctrl-C)" if summary.interrupted else ""))
    return 0
