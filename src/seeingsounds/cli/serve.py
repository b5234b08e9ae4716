"""``seeingsounds serve``: the web demo (record or upload a sound, steer it, see the picture or, for a
video checkpoint, the video; or edit an uploaded picture with a sound, inside a mask drawn in the page).

Without ``--checkpoint`` it serves a tiny demo checkpoint (preset ``tiny``: random AST -> random
FLUX, 32x32 images) trained once on the bundled example sounds and kept in
``$SEEINGSOUNDS_HOME/demo/`` — it starts offline on a CPU in seconds; its pictures are noise, but
every control, the "what it hears" chart, the edit tab and the downloads work as with a real checkpoint.
"""

from __future__ import annotations

import argparse
import os

from seeingsounds.cli.common import add_device_arguments

COMMAND = "serve"
HELP = "serve the web demo: record or upload a sound, steer it with effects, see the picture (or video), edit a picture"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="training run or aligner folder, or hub id; a video checkpoint serves videos "
                             "(default: a tiny demo checkpoint, trained on first use into $SEEINGSOUNDS_HOME/demo)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="largest sound file accepted (default 25)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest sound accepted (default 60)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="generations running at once (default 1, right for one GPU); others wait in the queue")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait (default 32)")
    parser.add_argument("--top-k", type=int, default=5, help="captions shown under 'what it hears' (default 5)")
    add_device_arguments(parser)
    parser.add_argument("--lora", metavar="PATH_OR_ID", default=None,
                        help="LoRA weights for the generator (a .safetensors file, its folder or a hub id)")
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep the generator's modules on the CPU until used (small GPUs)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")


def run(args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # deferred on purpose: gradio, torch
    from seeingsounds.app.ui import build_app, check_address, launch_app, sigterm_as_interrupt
    from seeingsounds.demo_checkpoint import demo_checkpoint

    check_address(args.host, args.port)  # before the demo trains or the model loads
    with sigterm_as_interrupt():  # a SIGTERM while the demo trains or the model loads cleans up as Ctrl+C
        checkpoint = args.checkpoint
        if checkpoint is None:
            print("no --checkpoint: using the tiny demo checkpoint (noise pictures; the first start trains it, ~20 s)")
            checkpoint = str(demo_checkpoint() / "best")
        app = build_app(checkpoint, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                        concurrency_limit=args.concurrency, max_queue=args.max_queue, top_k=args.top_k,
                        device=args.device, dtype=args.dtype, lora=args.lora, cpu_offload=args.cpu_offload)
        print(f"serving {checkpoint} on http://{args.host}:{args.port} (Ctrl+C or SIGTERM stops)")
        launch_app(app, host=args.host, port=args.port, share=args.share, block=True)
    return 0
