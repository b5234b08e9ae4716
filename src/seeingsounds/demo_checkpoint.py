"""The tiny demo checkpoint that ``seeingsounds serve`` uses without ``--checkpoint``.

A training run of preset ``tiny`` on the bundled example sounds (:func:`seeingsounds.assets.example_sounds`),
trained once on first use (seconds on a CPU) into ``$SEEINGSOUNDS_HOME/demo/``. Each example sound's
nearest caption is its own class caption (:data:`DEMO_CAPTIONS`); its pictures are noise. It lives
apart from the web app, which only serves a checkpoint it is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seeingsounds.assets import example_sounds
from seeingsounds.data.manifest import write_manifest
from seeingsounds.paths import build_once, home
from seeingsounds.training import TrainConfig, train

__all__ = ["DEMO_CAPTIONS", "DEMO_EPOCHS", "DEMO_VERSION", "demo_checkpoint"]

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


def demo_checkpoint(root: str | os.PathLike | None = None) -> Path:
    """The tiny demo run folder, trained on the bundled example sounds on first use (~20 s on a CPU) into
    ``root`` (default ``$SEEINGSOUNDS_HOME/demo/tiny-v<DEMO_VERSION>``).

    Its aligner is ``<run>/best``; each example sound's nearest caption is its own class caption.
    """
    target = Path(root) if root is not None else home() / "demo" / f"tiny-v{DEMO_VERSION}"
    return build_once(target, _train_demo)


def _train_demo(folder: Path) -> None:
    sounds = example_sounds()
    data = folder / ".data"  # hidden: the run's own folder may hold nothing but the run (RunFolder's --out check)
    data.mkdir(parents=True)
    write_manifest(data / "manifest.csv", [(sounds[name], name) for name in DEMO_CAPTIONS if name in sounds])
    (data / "captions.json").write_text(json.dumps({n: c for n, c in DEMO_CAPTIONS.items() if n in sounds}, indent=2))
    train(TrainConfig(preset="tiny", data=str(data / "manifest.csv"), captions=str(data / "captions.json"),
                      out=str(folder), epochs=DEMO_EPOCHS, batch_size=8, val_fraction=0.0, patience=DEMO_EPOCHS,
                      lr_sequence=1e-2, lr_pooled=1e-2, seed=0, device="cpu", progress=False))  # the shared feature cache
