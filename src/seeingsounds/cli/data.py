"""``seeingsounds data``: write a manifest from a dataset as it ships (annotation files, class folders).

    seeingsounds data vggsound  --annotations vggsound.csv --media DIR -o vggsound50.csv --classes vggsound50
    seeingsounds data vegas     --media VEGAS/ -o vegas.csv
    seeingsounds data esc50     --media ESC-50-master/ -o esc50.csv
    seeingsounds data ravdess   --media RAVDESS/ -o ravdess.csv
    seeingsounds data landscape --media Landscape/ --media IntoTheWild/ -o landscape.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COMMAND = "data"
HELP = "write a manifest (path,label) from VGGSound, VEGAS, ESC-50, RAVDESS or Landscape as they ship"


def _common(parser: argparse.ArgumentParser, *, many_roots: bool = True) -> None:
    parser.add_argument("--media", type=Path, required=True, action="append" if many_roots else "store",
                        help="folder holding the clips (searched recursively: audio or video files)"
                        + ("; repeat for several folders" if many_roots else ""))
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="manifest to write (.csv or .jsonl); an input file is never overwritten")
    parser.add_argument("--check-audio", action="store_true",
                        help="open every listed file and leave out (and list) those that cannot be read")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    vgg = sub.add_parser("vggsound", help="from the official vggsound.csv (ytid,start_seconds,label,split)")
    vgg.add_argument("--annotations", type=Path, required=True, help="the official vggsound.csv")
    vgg.add_argument("--classes", default=None,
                     help="keep a class subset: a protocol name (vggsound50) or a file with one class per line")
    vgg.add_argument("--official-split", action="store_true",
                     help="write the annotation's train/test split (default: none; the protocol's seeded split applies)")
    _common(vgg)
    vegas = sub.add_parser("vegas", help="from VEGAS class folders")
    vegas.add_argument("--classes", default=None, help="a class subset: a file with one class per line")
    _common(vegas)
    esc = sub.add_parser("esc50", help="from ESC-50's meta/esc50.csv")
    esc.add_argument("--annotations", type=Path, default=None, help="meta/esc50.csv (default: MEDIA/meta/esc50.csv)")
    esc.add_argument("--esc10", action="store_true", help="only the ESC-10 subset")
    _common(esc, many_roots=False)
    rav = sub.add_parser("ravdess", help="from RAVDESS file names (emotion = 3rd field)")
    rav.add_argument("--channel", choices=("speech", "song", "all"), default="all", help="vocal channel (default all)")
    _common(rav)
    land = sub.add_parser("landscape", help="from Landscape / Into the Wild class folders")
    land.add_argument("--classes", default=None, help="a class subset: a file with one class per line")
    _common(land)


def run(args: argparse.Namespace) -> int:
    from seeingsounds.data.builders import build_manifest

    options: dict[str, object] = {"media": args.media, "output": args.output, "check_audio": args.check_audio}
    for name in ("annotations", "classes", "official_split", "esc10", "channel"):
        if hasattr(args, name):
            options[name] = getattr(args, name)
    report = build_manifest(args.dataset, **options)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0
