"""``seeingsounds evaluate``: AIC / AIS / R@k (or caption retrieval) of a checkpoint on a benchmark protocol."""

from __future__ import annotations

import argparse
from pathlib import Path

from seeingsounds.cli.common import add_device_arguments

COMMAND = "evaluate"
HELP = "evaluate a checkpoint on a benchmark protocol (AIC, AIS, R@k, or caption retrieval with --no-images)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="training run folder, aligner folder or hub id")
    parser.add_argument("--protocol", required=True,
                        help="vggsound50, vegas, vegas5, esc50, ravdess or landscape (see seeingsounds.data.protocols)")
    parser.add_argument("--data", required=True, metavar="MANIFEST",
                        help="your local copy: CSV/JSONL with path,label[,split][,frame]")
    parser.add_argument("--out", default=None, help="report folder (default: <run>/eval-<protocol>, also for its best/ or last/; "
                             "<folder>-eval-<protocol> beside an aligner folder)")
    parser.add_argument("--images-per-clip", type=int, default=None, metavar="N", help="images per clip (seeds 0..N-1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds, one image per clip and seed")
    parser.add_argument("--no-images", action="store_true",
                        help="caption retrieval only: no generator, no judges (uses the run's caption targets)")
    parser.add_argument("--metrics", nargs="+", default=None, choices=["AIC", "AIS", "R@5"],
                        help="metrics to compute (default: the protocol's)")
    parser.add_argument("--judge-aic", default=None, metavar="ID", help="AIC judge (default: the preset's; "
                        "openai/clip-vit-large-patch14, offline-judge for the offline preset)")
    parser.add_argument("--judge-clip", default=None, metavar="ID",
                        help="R@k / AIS image judge (default: the preset's; "
                        "openai/clip-vit-base-patch32, offline-judge for the offline preset)")
    parser.add_argument("--judge-wav2clip", default=None, metavar="ID",
                        help="AIS audio judge: Wav2CLIP checkpoint file, folder or URL (default: the release URL)")
    parser.add_argument("--wav2clip-sr", type=int, default=16000, choices=[16000, 44100],
                        help="rate Wav2CLIP is fed (16000: its training rate; 44100: SonicDiffusion's)")
    parser.add_argument("--gallery", choices=["classes", "frames"], default=None,
                        help="R@k gallery: class-name texts (default) or ground-truth frames (manifest column 'frame')")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N clips only (round-robin over classes)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 90/10 split when the manifest has no split column")
    add_device_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=4, help="clips (or images) per batch (default 4)")
    parser.add_argument("--lora", metavar="PATH_OR_ID", default=None,
                        help="LoRA weights for the generator (a .safetensors file, its folder or a hub id); recorded "
                             "in the report")
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep the generator's modules on the CPU until used (small GPUs)")


def run(args: argparse.Namespace) -> int:
    from seeingsounds.evaluation.runner import (  # deferred on purpose: torch, diffusers
        EvaluationSettings,
        default_report_folder,
        evaluate,
    )

    out = args.out or str(default_report_folder(args.checkpoint, args.protocol))
    report = evaluate(EvaluationSettings(
        checkpoint=args.checkpoint, protocol=args.protocol, data=args.data, out=out, seeds=args.seeds,
        images_per_clip=args.images_per_clip, no_images=args.no_images, judge_aic=args.judge_aic,
        judge_clip=args.judge_clip, judge_wav2clip=args.judge_wav2clip, wav2clip_sr=args.wav2clip_sr,
        gallery=args.gallery, limit=args.limit, metrics=args.metrics, split_seed=args.split_seed,
        device=args.device, dtype=None if args.dtype == "auto" else args.dtype, batch_size=args.batch_size,
        lora=args.lora, cpu_offload=args.cpu_offload,
    ))
    if report is None:  # a launched process other than the main one: the main process reports
        return 0
    print((Path(out) / "report.md").read_text(encoding="utf-8"))
    print(f"report: {Path(out) / 'report.json'}")
    return 0 if report.get("metrics") else 1
