"""``seeingsounds augment``: write the transformed audio the model would hear, and print its d_j."""

from __future__ import annotations

import argparse
import sys

from seeingsounds.cli.common import add_effect_arguments
from seeingsounds.errors import ConfigError

COMMAND = "augment"
HELP = "apply audio effects / mixing to a file and write the result (hear what the model hears)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="input audio file (any format `describe` reads)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output file; format from the suffix")
    parser.add_argument(
        "--sample-rate", type=int, metavar="SR", help="resample to SR Hz (default: the input's own rate)"
    )
    parser.add_argument("--force", action="store_true",
                        help="replace OUT even when it is a file SeeingSounds did not write")
    add_effect_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    from seeingsounds.audio.effects import describe_effect
    from seeingsounds.audio.io import SAVE_FORMATS, audio_info, save_audio, written_by_seeingsounds_audio
    from seeingsounds.audio.render import render
    from seeingsounds.cli.common import effects_from_args, mix_from_args
    from seeingsounds.paths import check_output_file

    # every option and the output path are checked before any audio is read; -o never names an input
    if args.sample_rate is not None and args.sample_rate < 1:
        raise ConfigError(f"--sample-rate must be a positive number of Hz, got {args.sample_rate} "
                          "(leave it out to keep the input's rate)")
    effects = effects_from_args(args)
    descriptions = [describe_effect(name, **params) for name, params in effects]
    mixing = mix_from_args(args)
    output = check_output_file(args.output, inputs=[args.input, mixing[0] if mixing else None])
    if output.suffix.lower() not in SAVE_FORMATS:
        raise ConfigError(f"cannot save {output}: unknown suffix {output.suffix.lower()!r}; use one of "
                          f"{', '.join(SAVE_FORMATS)}")
    if (output.exists() or output.is_symlink()) and not args.force and not written_by_seeingsounds_audio(output):
        raise ConfigError(f"{output} exists and was not written by SeeingSounds: choose another -o, or pass --force "
                          "to replace it")
    sr = args.sample_rate or audio_info(args.input).sample_rate
    wave = render(args.input, sample_rate=sr, effects=effects, mix=mixing)
    path = save_audio(output, wave, sr)
    peak = float(abs(wave).max())
    if peak > 1.0:  # wav/flac/ogg/mp3 store full scale at most: the file is clipped where the model's input is not
        print(f"warning: the result peaks at {peak:.2f}, above full scale (1.0): {path} is clipped there "
              "(the model hears the unclipped signal; a lower --volume avoids it)", file=sys.stderr)
    if mixing:
        print(f"mixed with: {mixing[0]}")
    print(f"effects: {', '.join(descriptions) if descriptions else 'none'}")
    info = sf.info(str(path))  # opus/mp3 may have been written at another rate
    print(f"wrote {path} ({info.duration:.2f} s at {info.samplerate} Hz)")
    return 0
