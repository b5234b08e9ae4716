"""``seeingsounds serve``: the web demo (record or upload a sound, steer it, see the picture).

Without ``--checkpoint`` it serves a tiny demo checkpoint (preset ``tiny``: random AST -> random
FLUX, 32x32 images) trained once on the bundled example sounds and kept in
``$SEEINGSOUNDS_HOME/demo/`` — it starts offline on a CPU in seconds; its pictures are noise, but
every control, the "what it hears" chart and the downloads work as with a real checkpoint.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

COMMAND = "serve"
HELP = "serve the web demo: record or upload a sound, steer it with effects, see the picture"

#: bump when the demo checkpoint's recipe changes (a new folder is trained)
DEMO_VERSION = 1
#: epochs of the demo run (6 clips: seconds on a CPU)
DEMO_EPOCHS = 40
#: class captions of the bundled example sounds (seeingsounds.assets.example_sounds)
DEMO_CAPTIONS = {
    "bell": "a bell ringing",
    "choir": "a choir singing",
    "crow": "a crow cawing",
    "drums": "drums playing a breakbeat",
    "guitar": "a guitar strumming a chord",
    "piano": "a piano playing softly",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="training run or aligner folder, or hub id (default: a tiny demo checkpoint, "
                             "trained on first use into $SEEINGSOUNDS_HOME/demo)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="largest sound file accepted (default 25)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest sound accepted (default 60)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="generations running at once (default 1, right for one GPU); others wait in the queue")
    parser.add_argument("--max-queue", type=int, default=32, help="requests that may wait (default 32)")
    parser.add_argument("--top-k", type=int, default=5, help="captions shown under 'what it hears' (default 5)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the first available)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")


def demo_checkpoint(root: str | os.PathLike | None = None) -> Path:
    """The tiny demo run folder, trained on the bundled example sounds on first use (~20 s on a CPU).

    Its aligner is ``<run>/best``; each example sound's nearest caption is its own class caption.
    """
    from seeingsounds.paths import build_once, home

    target = Path(root) if root is not None else home() / "demo" / f"tiny-v{DEMO_VERSION}"
    return build_once(target, _train_demo)


def _train_demo(folder: Path) -> None:
    import json

    from seeingsounds.assets import example_sounds
    from seeingsounds.training import TrainConfig, train

    sounds = example_sounds()
    data = folder / "data"
    data.mkdir(parents=True)
    rows = ["path,label"] + [f"{sounds[name]},{name}" for name in DEMO_CAPTIONS if name in sounds]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    (data / "captions.json").write_text(json.dumps({n: c for n, c in DEMO_CAPTIONS.items() if n in sounds}, indent=2))
    train(TrainConfig(preset="tiny", data=str(data / "manifest.csv"), captions=str(data / "captions.json"),
                      out=str(folder), epochs=DEMO_EPOCHS, batch_size=8, val_fraction=0.0, patience=DEMO_EPOCHS,
                      lr_sequence=1e-2, lr_pooled=1e-2, seed=0, device="cpu", progress=False,
                      cache_dir=str(folder / "cache")))


def run(args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from seeingsounds.app import build_app, launch_app

    checkpoint = args.checkpoint
    if checkpoint is None:
        print("no --checkpoint: using the tiny demo checkpoint (noise pictures; the first start trains it, ~20 s)")
        checkpoint = str(demo_checkpoint() / "best")
    app = build_app(checkpoint, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                    concurrency_limit=args.concurrency, max_queue=args.max_queue, top_k=args.top_k,
                    device=args.device)
    print(f"serving {checkpoint} on http://{args.host}:{args.port} (Ctrl+C stops)")
    launch_app(app, host=args.host, port=args.port, share=args.share, block=True)
    return 0
