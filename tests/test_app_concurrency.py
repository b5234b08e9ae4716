"""Several users at once through gradio_client: everyone gets an image; the queue runs one at a time."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]

REQUESTS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """The app with concurrency 1, and a record of how many generations ran at the same time."""
    from seeingsounds.app.ui import build_app, launch_app
    from seeingsounds.demo_checkpoint import demo_checkpoint

    app = build_app(demo_checkpoint() / "best", concurrency_limit=1, max_queue=16)
    engine = app.seeingsounds_service.engine
    generate = engine.generate
    lock = threading.Lock()
    record = {"running": 0, "most": 0, "calls": 0}

    def counted(*args, **kwargs):  # the real generation, counted
        with lock:
            record["running"] += 1
            record["calls"] += 1
            record["most"] = max(record["most"], record["running"])
        try:
            yield from generate(*args, **kwargs)
        finally:
            with lock:
                record["running"] -= 1

    engine.generate = counted
    _, url = launch_app(app, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")  # local only unless told otherwise
    yield url, record
    app.close()


def test_simultaneous_requests_all_get_their_images(served):
    from gradio_client import Client, handle_file
    from PIL import Image

    from seeingsounds.assets import example_sounds
    from seeingsounds.demo_checkpoint import DEMO_CAPTIONS
    from seeingsounds.imaging import read_provenance

    url, record = served
    client = Client(url, verbose=False)
    sounds = example_sounds()
    names = sorted(sounds)
    jobs = []
    for i in range(REQUESTS):
        name = names[i % len(names)]
        # sound, volume, reverb, pitch, lowpass, echo, mix sound, mix ratio, seed, steps, size, images, frames
        jobs.append((name, i, client.submit(handle_file(str(sounds[name])), 1.0, 0.3 if i % 2 else 0.0, 0, 0, 0,
                                            None, 0.5, 100 + i, 2, 32, 1, 1, api_name="/generate")))
    for name, i, job in jobs:
        gallery, caption, hears, heard, files, video = job.result(timeout=120)
        assert video is None  # an image checkpoint: no video
        assert len(gallery) == 1 and len(files) == 1
        with Image.open(files[0]) as image:
            assert image.size == (32, 32)
        provenance = read_provenance(files[0])
        assert provenance["seed"] == 100 + i and provenance["source"] == f"{name}.flac"
        # the demo run hears each example as its own class; reverb (odd requests) edits that caption
        expected = DEMO_CAPTIONS[name] + (", echoing in a large hall" if i % 2 else "")
        assert caption == expected
        assert DEMO_CAPTIONS[name] in [c["label"] for c in hears["confidences"]]
    assert record["calls"] == REQUESTS
    assert record["most"] == 1  # concurrency_limit=1: generations never overlapped


def test_a_client_may_send_the_inputs_by_name(served):
    """gradio_client's keywords: the named inputs (a sound input without a default too), the others at the
    page's defaults (a 32 px tiny image)."""
    from gradio_client import Client, handle_file

    from seeingsounds.assets import example_sounds
    from seeingsounds.imaging import read_provenance

    url, _ = served
    _, caption, *_, files, video = Client(url, verbose=False).predict(
        sound=handle_file(str(example_sounds()["crow"])), mix_sound=None, seed=11, steps=1, api_name="/generate")
    provenance = read_provenance(files[0])
    assert (provenance["seed"], provenance["steps"], provenance["size"]) == (11, 1, "32x32")
    assert provenance["source"] == "crow.flac" and caption == "a crow cawing" and video is None


def test_rejected_uploads_log_no_traceback_and_closing_leaves_no_temp_files(tmp_path, capfd, monkeypatch):
    """A broken or too long upload is answered in the page with one sentence, the server log stays free of
    tracebacks, and app.close() removes the service's output folder and gradio's copies of the uploads."""
    import glob
    import logging
    import tempfile

    import soundfile as sf
    from gradio_client import Client, handle_file

    from seeingsounds.app.ui import build_app, launch_app
    from seeingsounds.demo_checkpoint import demo_checkpoint
    from seeingsounds.assets import example_sounds

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    logging.basicConfig(level=logging.WARNING, force=True)  # as `seeingsounds serve` logs
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "seeingsounds-app-*")))
    app = build_app(demo_checkpoint() / "best", max_seconds=5)
    service = app.seeingsounds_service
    uploads = Path(os.environ["GRADIO_TEMP_DIR"])
    assert uploads.parent == service.output_dir
    _, url = launch_app(app, port=free_port(), block=False, quiet=True)
    try:
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF" + bytes(range(256)) * 8)
        long = tmp_path / "long.wav"
        sf.write(long, np.zeros(16000 * 6, dtype=np.float32), 16000)
        client = Client(url, verbose=False)
        for path, message in ((broken, "unreadable or corrupt audio"), (long, "at most 5 s")):
            with pytest.raises(Exception, match=message):
                client.predict(handle_file(str(path)), 1.0, 0, 0, 0, 0, None, 0.5, 0, 1, 32, 1, 1,
                               api_name="/generate")
        gallery, *_ = client.predict(handle_file(str(example_sounds()["bell"])), 1.0, 0, 0, 0, 0, None, 0.5, 0, 1,
                                     32, 1, 1, api_name="/generate")
        assert len(gallery) == 1
        assert any(uploads.rglob("*.flac"))  # gradio's copy of the upload lives under the service's folder
    finally:
        app.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "generation failed" not in err
    assert not service.output_dir.exists() and "GRADIO_TEMP_DIR" not in os.environ
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "seeingsounds-app-*"))) == before
