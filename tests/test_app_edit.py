"""The web demo's edit tab and video output, without a browser: WebService.edit on the tiny demo run,
the image editor's value -> picture + mask, and a tiny Wan checkpoint's mp4 through the page's API."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from PIL import Image

from seeingsounds.app.service import Limits
from seeingsounds.app.ui import editor_picture
from seeingsounds.errors import ConfigError
from seeingsounds.imaging import PROVENANCE_FIELDS, SOFTWARE_KEY, read_provenance
from seeingsounds.paths import file_sha256

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]

STEPS = 6


def gradient(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1).astype(np.uint8)


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from seeingsounds.app.service import WebService
    from seeingsounds.demo_checkpoint import demo_checkpoint

    service = WebService(demo_checkpoint() / "best", limits=Limits(max_upload_mb=1, max_seconds=10),
                         output_dir=tmp_path_factory.mktemp("app-edit-out"))
    yield service
    service.close()


@pytest.fixture(scope="module")
def sounds():
    from seeingsounds.assets import example_sounds

    return example_sounds()


def test_editor_value_gives_the_background_and_the_painted_mask():
    background = Image.fromarray(gradient(40, 24)).convert("RGBA")
    layer = np.zeros((24, 40, 4), np.uint8)
    layer[4:10, 8:20] = [255, 0, 255, 255]
    layer[12, 30] = [255, 0, 255, 1]  # a faint brush edge counts as painted
    picture, mask = editor_picture({"background": background, "layers": [Image.fromarray(layer, "RGBA")],
                                    "composite": background})
    assert picture.mode == "RGB" and picture.size == (40, 24)
    assert np.array_equal(np.asarray(picture), gradient(40, 24))
    assert mask.dtype == np.uint8 and mask.shape == (24, 40)
    expected = np.zeros((24, 40), np.uint8)
    expected[4:10, 8:20] = 255
    expected[12, 30] = 255
    assert np.array_equal(mask, expected)
    # nothing drawn, no layers, no picture
    assert editor_picture({"background": background, "layers": [Image.new("RGBA", (40, 24))]})[1] is None
    assert editor_picture({"background": background, "layers": []})[1] is None
    assert editor_picture({"background": None, "layers": [], "composite": None}) == (None, None)
    assert editor_picture(None) == (None, None)


def test_edit_writes_the_picture_with_its_provenance(service, sounds):
    from seeingsounds.audio.io import audio_fingerprint

    picture = gradient(48, 41)
    m = service.size_multiple
    result = service.edit(picture, str(sounds["bell"]), strength=0.5, seed=3, steps=STEPS, volume=0.15)
    size = (48, 41 // m * m)  # rounded down to the generator's multiple
    assert result.seeds == [3] and result.size == size and size[1] < 41
    (path,) = result.images
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
    meta = read_provenance(path)
    assert set(meta) <= set(PROVENANCE_FIELDS) and meta[SOFTWARE_KEY].startswith("seeingsounds ")
    assert meta["strength"] == 0.5 and meta["seed"] == 3 and meta["steps"] == STEPS and meta["size"] == f"{size[0]}x{size[1]}"
    assert meta["image"] == "input.png" and meta["image_sha256"] == file_sha256(result.picture)
    assert np.array_equal(pixels(result.picture), picture)  # the input as received, hashed as saved
    assert meta["mask"] is None and meta["mask_sha256"] is None and result.mask is None
    assert meta["source"] == "bell.flac" and meta["source_sha256"] == audio_fingerprint(sounds["bell"])
    assert meta["effects"] == [["volume", {"alpha": 0.15}]] and meta["effect_descriptions"] == ["low-volume"]
    assert meta["checkpoint"].endswith("/best") and meta["preset"] == "tiny"
    # the same request gives the same pixels; another seed other pixels; a higher strength moves further away
    again = service.edit(picture, str(sounds["bell"]), strength=0.5, seed=3, steps=STEPS, volume=0.15)
    assert np.array_equal(pixels(again.images[0]), pixels(path))
    other = service.edit(picture, str(sounds["bell"]), strength=0.5, seed=4, steps=STEPS, volume=0.15)
    assert np.abs(pixels(other.images[0]) - pixels(path)).mean() > 1


def test_edit_equals_the_pipeline_edit_of_the_transformed_sound(service, sounds):
    """The page runs pipe.edit on the sound at the encoder's rate with the effects: the library's pixels."""
    from seeingsounds.audio.io import read_audio, resample

    picture = Image.fromarray(gradient(32, 32))
    result = service.edit(picture, str(sounds["crow"]), strength=0.7, seed=1, steps=STEPS, reverb=0.5)
    wave, sr = read_audio(sounds["crow"])
    rate = service.sample_rate
    direct = service.engine.pipe.edit(picture, (rate, resample(wave, sr, rate)), strength=0.7, seed=1,
                              num_inference_steps=STEPS, effects=[("reverb", {"room_size": 0.5})])
    assert np.array_equal(pixels(result.images[0]), np.asarray(direct.images[0].convert("RGB"), dtype=np.float64))


def test_a_mask_is_saved_hashed_and_keeps_the_outside(service, sounds):
    picture = gradient(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 255
    masked = service.edit(picture, str(sounds["drums"]), mask=mask, strength=0.9, seed=2, steps=STEPS)
    meta = read_provenance(masked.images[0])
    assert meta["mask"] == "mask.png" and meta["mask_sha256"] == file_sha256(masked.mask)
    assert np.array_equal(pixels(masked.mask)[..., 0], mask.astype(np.float64))
    # inpainting changes the right half more than the kept left half (measured against an empty-mask edit)
    empty = service.edit(picture, str(sounds["drums"]), mask=np.zeros_like(mask), strength=0.9, seed=2, steps=STEPS)
    change = np.abs(pixels(masked.images[0]) - pixels(empty.images[0])).mean(axis=(0, 2))
    assert change[16:].mean() > 2 * change[:16].mean()


def test_edit_errors_a_user_can_fix(service, sounds):
    bell = str(sounds["bell"])
    picture = gradient(32, 32)
    with pytest.raises(ConfigError, match=r"the mask is 16x8 but the picture is 32x32: draw the mask on the picture"):
        service.edit(picture, bell, mask=np.zeros((8, 16), np.uint8))
    with pytest.raises(ConfigError, match=r"strength must be a number in \(0, 1\]"):
        service.edit(picture, bell, strength=0)
    with pytest.raises(ConfigError, match="upload a picture"):
        service.edit(None, bell)
    with pytest.raises(ConfigError, match="upload or record a sound"):
        service.edit(picture, None)
    with pytest.raises(ConfigError, match="raise the steps"):
        service.edit(picture, bell, strength=0.05, steps=4)


def test_a_large_picture_is_scaled_down_to_the_generators_limit(service, sounds):
    m = service.size_multiple
    assert service.max_size == 64  # the tiny generator refuses more (2x its 32 px)
    assert service.fit((200, 100)) == (64, 32) and service.fit((30, 90)) == (20 // m * m, 64)
    result = service.edit(gradient(200, 100), str(sounds["bell"]), strength=0.5, steps=4)
    with Image.open(result.images[0]) as image:
        assert image.size == (64, 32)
    assert pixels(result.picture).shape == (100, 200, 3)  # the input PNG is the picture as uploaded


def test_the_size_slider_stops_at_the_generators_limit(service, sounds):
    from seeingsounds.app.ui import build_app

    app = build_app(service.checkpoint, service=service)
    size = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "size")
    m = service.size_multiple
    assert (size.minimum, size.maximum, size.step) == (m, 64, m)
    strength = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "edit-strength")
    assert (strength.minimum, strength.maximum, strength.step, strength.value) == (0.05, 1.0, 0.05, 0.6)
    with pytest.raises(ConfigError, match="larger than this generator's limit of 64 px"):
        service.run(str(sounds["bell"]), size=80)


# ---- a video checkpoint (tiny Wan) ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def video_service(tmp_path_factory):
    from test_pipeline import make_checkpoint

    from seeingsounds.app.service import WebService

    root = tmp_path_factory.mktemp("app-video")
    service = WebService(make_checkpoint(root / "ckpt", "tiny-wan"), device="cpu",
                         limits=Limits(max_upload_mb=1, max_seconds=10))  # outputs under the temp dir, as gradio serves
    yield service
    service.close()


def test_a_video_checkpoint_gives_an_mp4_per_seed_and_its_poster(video_service, sounds):
    from seeingsounds.video import read_mp4

    assert video_service.is_video and not video_service.engine.captions  # an aligner folder: no captions to rank
    result = video_service.run(str(sounds["bell"]), steps=2, size=32, num_images=2, frames=9, seed=5)
    assert result.seeds == [5, 6] and len(result.videos) == 2 and len(result.images) == 2
    assert result.caption == "" and result.hears == {}
    for video, poster, seed in zip(result.videos, result.images, result.seeds):
        frames, fps, meta = read_mp4(video)
        assert frames.shape == (9, 32, 32, 3) and fps == pytest.approx(8.0)  # tiny-wan's preset plays at 8 fps
        assert meta["frames"] == 9 and meta["fps"] == 8 and meta["seed"] == seed and meta["source"] == "bell.flac"
        assert set(meta) <= set(PROVENANCE_FIELDS)
        poster_meta = read_provenance(poster)
        assert poster_meta["poster_of"] == video.name and poster_meta["seed"] == seed
        # the poster is the middle frame (H.264 at crf 18 is close, not exact)
        assert np.abs(pixels(poster) - frames[4].astype(np.float64)).mean() < 6
    with pytest.raises(ConfigError, match="1 \\+ a multiple of 4"):
        video_service.run(str(sounds["bell"]), steps=2, size=32, frames=6)
    with pytest.raises(ConfigError, match="video generator: editing needs an image checkpoint"):
        video_service.edit(gradient(32, 32), str(sounds["bell"]))


def test_the_page_serves_the_video(video_service, sounds):
    """Through the page's API: the Generate button of a video checkpoint returns the mp4 for the player."""
    from gradio_client import Client, handle_file

    from seeingsounds.app.ui import build_app, launch_app
    from seeingsounds.video import read_mp4

    app = build_app(video_service.checkpoint, service=video_service)
    video = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "video")
    assert video.visible is True
    assert not any(getattr(b, "elem_id", None) == "edit" for b in app.blocks.values())  # no edit button
    _, url = launch_app(app, port=free_port(), block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        # sound, volume, reverb, pitch, lowpass, echo, mix sound, mix ratio, seed, steps, size, videos, frames
        gallery, caption, hears, heard, files, played = client.predict(
            handle_file(str(sounds["drums"])), 1.0, 0, 0, 0, 0, None, 0.5, 0, 2, 32, 1, 5, api_name="/generate")
    finally:
        app.close()
    path = played["video"] if isinstance(played, dict) else played
    frames, fps, meta = read_mp4(path)
    assert frames.shape == (5, 32, 32, 3) and meta["source"] == "drums.flac" and meta["frames"] == 5
    assert len(gallery) == 1 and len(files) == 2  # the mp4 and its poster
