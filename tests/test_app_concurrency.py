"""Several users at once through gradio_client: everyone gets an image; the queue runs one at a time."""

from __future__ import annotations

import socket
import threading

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
    from seeingsounds.app import build_app, launch_app
    from seeingsounds.app import demo_checkpoint

    app = build_app(demo_checkpoint() / "best", concurrency_limit=1, max_queue=16)
    engine = app.seeingsounds_engine
    generate = engine.images
    lock = threading.Lock()
    record = {"running": 0, "most": 0, "calls": 0}

    def counted(*args, **kwargs):  # the real generation, counted
        with lock:
            record["running"] += 1
            record["calls"] += 1
            record["most"] = max(record["most"], record["running"])
        try:
            return generate(*args, **kwargs)
        finally:
            with lock:
                record["running"] -= 1

    engine.images = counted
    _, url = launch_app(app, port=free_port(), block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")  # local only unless told otherwise
    yield url, record
    app.close()


def test_simultaneous_requests_all_get_their_images(served):
    from gradio_client import Client, handle_file
    from PIL import Image

    from seeingsounds.assets import example_sounds
    from seeingsounds.app import DEMO_CAPTIONS
    from seeingsounds.imaging import read_provenance

    url, record = served
    client = Client(url, verbose=False)
    sounds = example_sounds()
    names = sorted(sounds)
    jobs = []
    for i in range(REQUESTS):
        name = names[i % len(names)]
        # sound, volume, reverb, pitch, lowpass, echo, mix sound, mix ratio, seed, steps, size, images
        jobs.append((name, i, client.submit(handle_file(str(sounds[name])), 1.0, 0.3 if i % 2 else 0.0, 0, 0, 0,
                                            None, 0.5, 100 + i, 2, 32, 1, api_name="/generate")))
    for name, i, job in jobs:
        gallery, caption, hears, heard, files = job.result(timeout=120)
        assert len(gallery) == 1 and len(files) == 1
        with Image.open(files[0]) as image:
            assert image.size == (32, 32)
        provenance = read_provenance(files[0])
        assert provenance["seed"] == 100 + i and provenance["sound"] == f"{name}.flac"
        # the demo run hears each example as its own class; reverb (odd requests) edits that caption
        expected = DEMO_CAPTIONS[name] + (", echoing in a large hall" if i % 2 else "")
        assert caption == expected
        assert DEMO_CAPTIONS[name] in [c["label"] for c in hears["confidences"]]
    assert record["calls"] == REQUESTS
    assert record["most"] == 1  # concurrency_limit=1: generations never overlapped
