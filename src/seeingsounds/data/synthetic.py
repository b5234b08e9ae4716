"""Synthetic sound classes: clearly distinct, seeded, with per-clip variation.

They let the demo and the tests train and check the whole method on any machine, with no
dataset to download: each class is a signal family (a hum, a whistle, noise bursts, a click
train, a chirp) with a caption that says what it could be in a picture.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from seeingsounds.data.manifest import reusable_dataset, stamp_dataset, write_manifest
from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_write_text

#: label -> class-level caption (the paper's t_y)
SYNTHETIC_CLASSES: dict[str, str] = {
    "low hum": "a big diesel engine humming in a dark garage",
    "high whistle": "a referee blowing a shiny metal whistle on a football pitch",
    "noise bursts": "steam bursting out of old pipes in a factory",
    "click train": "a ticking clock on a wooden shelf",
    "chirp": "a small bird singing on a branch in spring",
}


def synthesize(label: str, rng: np.random.Generator, *, seconds: float = 1.8, sample_rate: int = 16000,
               amp: tuple[float, float] = (0.3, 0.8)) -> np.ndarray:
    """One clip of class ``label`` with random peak amplitude (in ``amp``), phase and pitch jitter."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    peak = rng.uniform(*amp)
    if label == "low hum":
        wave = np.sin(2 * np.pi * rng.uniform(140, 260) * t + rng.uniform(0, 2 * np.pi))
    elif label == "high whistle":
        wave = np.sin(2 * np.pi * rng.uniform(2600, 3400) * t + rng.uniform(0, 2 * np.pi))
    elif label == "noise bursts":
        wave = np.zeros(n)
        burst = int(0.12 * sample_rate)
        for start in rng.uniform(0, seconds - 0.15, size=rng.integers(3, 7)):
            i = int(start * sample_rate)
            wave[i : i + burst] = rng.standard_normal(len(wave[i : i + burst]))
    elif label == "click train":
        wave = np.zeros(n)
        period = int(sample_rate / rng.uniform(8, 15))
        wave[rng.integers(0, period) :: period] = 1.0
    elif label == "chirp":
        f0, f1 = rng.uniform(250, 400), rng.uniform(3500, 4500)
        wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)) + rng.uniform(0, 2 * np.pi))
    else:
        raise ConfigError(f"unknown synthetic class {label!r}; available: {sorted(SYNTHETIC_CLASSES)}")
    return (wave / (np.max(np.abs(wave)) + 1e-9) * peak).astype(np.float32)


def make_synthetic_dataset(root: str | Path, *, train: int = 8, val: int = 2, test: int = 4, seed: int = 0,
                           classes: Mapping[str, str] = SYNTHETIC_CLASSES, seconds: float = 1.8,
                           sample_rate: int = 16000, amp: tuple[float, float] = (0.3, 0.8)) -> tuple[Path, Path]:
    """Write wavs, ``manifest.csv`` (path,label,split) and ``captions.json`` under ``root``.

    Returns ``(manifest, captions)``. The same arguments always write the same files; when ``root``
    already holds a complete dataset made with them (``dataset.json``), nothing is rewritten.
    """
    import soundfile as sf

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"the synthetic dataset's seed must be an integer >= 0, got {seed!r}")
    root = Path(root)
    params = {"train": train, "val": val, "test": test, "seed": seed, "classes": dict(classes), "seconds": seconds,
              "sample_rate": sample_rate, "amp": list(amp)}
    if (ready := reusable_dataset(root, params)) is not None:
        return ready
    rng = np.random.default_rng(seed)
    clips: list[tuple[Path, str, str]] = []
    for label in classes:
        folder = root / "audio" / label.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for split, count in (("train", train), ("val", val), ("test", test)):
            for k in range(count):
                path = folder / f"{split}_{k}.wav"
                sf.write(path, synthesize(label, rng, seconds=seconds, sample_rate=sample_rate, amp=amp), sample_rate)
                clips.append((path, label, split))
    # atomic: an interrupted run never leaves a manifest that lists clips it did not finish
    manifest = write_manifest(root / "manifest.csv", clips)
    captions = atomic_write_text(root / "captions.json", json.dumps(dict(classes), indent=1))
    stamp_dataset(root, params)
    return manifest, captions
