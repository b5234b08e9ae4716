"""Shared fixtures. Tiny models are built once into SEEINGSOUNDS_HOME (default: .cache/ in the repo)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SEEINGSOUNDS_HOME", str(REPO / ".cache" / "seeingsounds"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

#: real sound files from Debian packages that .ci/run installs
DEBIAN_SOUNDS = {
    "freedesktop": Path("/usr/share/sounds/freedesktop/stereo"),
    "sonic-pi": Path("/usr/share/sonic-pi/samples"),
    "tuxpaint": Path("/usr/share/tuxpaint/stamps"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SEEINGSOUNDS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="needs real weights / a GPU: set SEEINGSOUNDS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def debian_sounds(name: str) -> Path:
    """Folder of a Debian sound package; fails in CI (which installs them), skips elsewhere."""
    path = DEBIAN_SOUNDS[name]
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run should have installed the Debian package")
        pytest.skip(f"{path} not installed (apt-get install the Debian package)")
    return path


def sine(freq: float, seconds: float = 1.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_long_sine(path: Path, minutes: int, sr: int = 16000, freq: float = 220) -> Path:
    """A ``minutes``-long 16-bit mono WAV of one sine, written a minute at a time (never whole in memory)."""
    import soundfile as sf

    minute = np.tile(sine(freq, 1.0, sr), 60)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(minute)
    return path


def write_sines(folder: Path, freqs: tuple[float, ...], seconds: float = 1.5, sr: int = 16000) -> list[Path]:
    """``folder/clip{i}.wav``: one sine per frequency (amplitude 0.5)."""
    import soundfile as sf

    paths = []
    for i, f in enumerate(freqs):
        path = folder / f"clip{i}.wav"
        sf.write(path, sine(f, seconds, sr, 0.5), sr)
        paths.append(path)
    return paths


def write_picture_and_mask(root: Path) -> tuple[Path, Path]:
    """A 32x32 gradient picture ``in.png`` and a mask ``mask.png`` white in its middle 16x16, for edit tests."""
    from PIL import Image

    yy, xx = np.mgrid[0:32, 0:32]
    Image.fromarray(np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)).save(root / "in.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(root / "mask.png")
    return root / "in.png", root / "mask.png"


def synthetic_train_data(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path, Path]:
    """``(root, manifest, captions)``: the synthetic classes, 4 train + 1 val clips each, for `train` runs."""
    from seeingsounds.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp(name)
    manifest, captions = make_synthetic_dataset(root, train=4, val=1, test=0)
    return root, manifest, captions


def train_args(data: tuple[Path, Path, Path], out: Path, *extra: str) -> list[str]:
    """A one-epoch `seeingsounds train` of the tiny preset on :func:`synthetic_train_data`."""
    root, manifest, captions = data
    return ["train", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--out", str(out),
            "--epochs", "1", "--batch-size", "8", "--cache-dir", str(root / "cache"), "--no-progress", *extra]


def items_of(paths, **kw):
    """One feature-cache item per path, with the same effects/mix options."""
    from seeingsounds.cache import AudioItem

    return [AudioItem.of(p, **kw) for p in paths]


@pytest.fixture(scope="session")
def tiny_preset():
    from seeingsounds.presets import get_preset

    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_preset):
    from seeingsounds.model import load_encoder

    return load_encoder(tiny_preset)


@pytest.fixture(scope="session")
def tiny_backend(tiny_preset):
    from seeingsounds.model import load_backend

    return load_backend(tiny_preset)


@pytest.fixture(scope="session")
def tiny_conditioner(tiny_preset, tiny_encoder, tiny_backend):
    """The tiny encoder + a seeded tiny aligner for the tiny generator, fp32 on the CPU."""
    import torch

    from seeingsounds.conditioner import AudioConditioner
    from seeingsounds.model import create_aligner

    torch.manual_seed(0)
    aligner = create_aligner(tiny_preset, tiny_encoder.hidden_size, tiny_backend.conditioning_spec())
    return AudioConditioner(tiny_encoder, aligner, device="cpu", dtype="fp32")


_scratch: dict[str, object] = {}


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_one_folder(tmp_path_factory: pytest.TempPathFactory):
    """Every temporary file or folder the code under test makes (``tempfile``, and ``TMPDIR`` for
    subprocesses, gradio, the browser) goes into one folder that is removed after the session, so
    the suite leaves nothing in /tmp; what was left there is named in the summary."""
    tmp_path_factory.getbasetemp()  # pytest's own tmp_path folders stay where pytest keeps them
    scratch = Path(tempfile.mkdtemp(prefix="seeingsounds-tests-"))
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)
    yield scratch
    _scratch["left"] = sorted(p.name for p in scratch.iterdir())
    tempfile.tempdir = saved[0]
    if saved[1] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[1]
    shutil.rmtree(scratch, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    left = list(_scratch.get("left") or [])
    if left:
        shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        terminalreporter.write_line(f"temporary files the code under test left behind (now removed): {shown}")
