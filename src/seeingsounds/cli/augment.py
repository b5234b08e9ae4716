"""``seeingsounds augment``: write the transformed audio the model would hear, and print its d_j."""

from __future__ import annotations

import argparse
import sys

from seeingsounds.cli.common import add_effect_arguments

COMMAND = "augment"
HELP = "apply audio effects / mixing to a file and write the result (hear what the model hears)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="input audio file (wav, flac, ogg, opus, mp3)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output file; format from the suffix")
    parser.add_argument(
        "--sample-rate", type=int, metavar="SR", help="resample to SR Hz (default: the input's own rate)"
    )
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.audio.io import load_audio, read_audio, save_audio
    from seeingsounds.cli.common import apply_args

    if args.sample_rate is None:
        wave, sr = read_audio(args.input)
    else:
        sr = args.sample_rate
        wave = load_audio(args.input, target_sr=sr)
    wave, descriptions = apply_args(wave, sr, args)
    path = save_audio(args.output, wave, sr)
    peak = float(abs(wave).max())
    if peak > 1.0:  # wav/flac/ogg/mp3 store full scale at most: the file is clipped where the model's input is not
        print(f"warning: the result peaks at {peak:.2f}, above full scale (1.0): {path} is clipped there "
              "(the model hears the unclipped signal; a lower --volume avoids it)", file=sys.stderr)
    if args.mix:
        print(f"mixed with: {args.mix}")
    print(f"effects: {', '.join(descriptions) if descriptions else 'none'}")
    import soundfile as sf

    info = sf.info(str(path))  # opus/mp3 may have been written at another rate
    print(f"wrote {path} ({info.duration:.2f} s at {info.samplerate} Hz)")
    return 0
