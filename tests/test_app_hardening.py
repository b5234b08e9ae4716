"""The web app (and ``edit``) against hostile or odd input: a few-KB picture of 144 megapixels, a long FLAC
in an mkv whose header gives no duration, uploads that are no picture, bad API values, SIGTERM — and
16-bit greyscale pictures, scaled to 8 bits rather than clamped to white; the API's inputs by name."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageFile

from seeingsounds.app.service import Limits, read_checked
from seeingsounds.app.ui import editor_picture
from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.imaging import load_picture
from seeingsounds.request import load_edit_inputs

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

#: 16-bit grey levels and the 8-bit levels they must become (x * 255 / 65535, rounded)
GREY16 = np.array([0, 257 * 64, 32768, 65535], np.uint16)
GREY8 = np.array([0, 64, 128, 255], np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bomb_png(path: Path) -> Path:
    """A 12000x12000 1-bit PNG: a few KB on disk, 144 megapixels decoded."""
    Image.new("1", (12000, 12000)).save(path, format="PNG", optimize=True)
    return path


def grey16_png(path: Path) -> Path:
    Image.fromarray(np.tile(GREY16, (3, 1))).save(path, format="PNG")
    with Image.open(path) as image:
        assert image.mode == "I;16"  # what Pillow opens a 16-bit grey PNG as
    return path


def truncated_png(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def flac_mkv_without_duration(path: Path, seconds: float, sr: int = 8000) -> Path:
    """A 440 Hz tone as FLAC in Matroska written as a live stream: the header gives no duration."""
    block = 4096
    with av.open(str(path), "w", format="matroska", options={"live": "1"}) as out:
        stream = out.add_stream("flac", rate=sr, layout="mono")
        total = int(seconds * sr)
        for start in range(0, total, block):
            t = (start + np.arange(min(block, total - start))) / sr
            frame = av.AudioFrame.from_ndarray((9000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None],
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = sr, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# ---- pictures: one loader, size checked before decoding, 16 bits scaled -------------------------------


def test_a_picture_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """``edit`` (CLI and pipeline) reads pictures with load_edit_inputs: a 144-megapixel PNG of a few KB is
    refused from its header, naming the file, its size and the limit; no pixel is decoded."""
    big = bomb_png(tmp_path / "big.png")
    assert big.stat().st_size < 100_000

    def decoded(self, *args, **kwargs):
        raise AssertionError("the picture was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    message = r"big\.png is 12000x12000 \(144\.0 megapixels\); pictures may have at most 50 megapixels"
    with pytest.raises(ConfigError, match=message):
        load_edit_inputs(str(big))
    with pytest.raises(ConfigError, match=r"mask .*big\.png is 12000x12000"):
        load_edit_inputs(np.zeros((8, 8, 3), np.uint8), str(big))


def test_16_bit_grey_is_scaled_to_8_bits_not_clamped(tmp_path):
    path = grey16_png(tmp_path / "grey16.png")
    picture, mask = load_edit_inputs(str(path), str(path))
    assert picture.mode == "RGB" and mask.mode == "L"
    assert np.array_equal(np.asarray(picture)[0], np.repeat(GREY8[:, None], 3, axis=1))
    assert np.array_equal(np.asarray(mask)[0], GREY8)
    # big-endian 16-bit, 32-bit integers holding 16-bit values, a uint16 array, floats in 0..1
    big_endian = Image.frombytes("I;16B", (4, 1), GREY16.astype(">u2").tobytes())
    as_int32 = Image.fromarray(GREY16.astype(np.int32)[None])
    floats = Image.fromarray((GREY16.astype(np.float32) / 65535)[None])
    for source in (big_endian, as_int32, GREY16[None], floats):
        assert np.array_equal(np.asarray(load_picture(source, mode="L"))[0], GREY8), source
    with pytest.raises(ConfigError, match=r"floating-point picture with values 0\.\.2, outside 0\.\.1"):
        load_picture(Image.fromarray(np.array([[0.0, 2.0]], np.float32)))
    with pytest.raises(ConfigError, match=r"32-bit integer picture with values -1\.\.70000, outside 0\.\.65535"):
        load_picture(Image.fromarray(np.array([[-1, 70000]], np.int32)))


@pytest.mark.parametrize("content", ['<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
                                     "just some text\n", ""])
def test_a_file_that_is_no_picture_is_refused_by_name(tmp_path, content):
    path = tmp_path / "holiday.png"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"image .*holiday\.png is not a readable image \(not a picture format"):
        load_edit_inputs(str(path))
    with pytest.raises(ConfigError, match=r"image .*cut\.png is not a readable image \(truncated or corrupt"):
        load_edit_inputs(str(truncated_png(tmp_path / "cut.png")))


# ---- the web app ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service():
    from seeingsounds.app.service import WebService
    from seeingsounds.demo_checkpoint import demo_checkpoint

    # outputs in its own temp folder, where gradio serves files from
    service = WebService(demo_checkpoint() / "best", limits=Limits(max_upload_mb=1, max_seconds=10))
    yield service
    service.close()


@pytest.fixture(scope="module")
def app(service):
    from seeingsounds.app.ui import build_app

    return build_app(service.checkpoint, service=service)


def editor_payload(editor, path: Path, orig_name: str):
    file = {"path": str(path), "orig_name": orig_name, "meta": {"_type": "gradio.FileData"}}
    return editor.data_model.model_validate({"background": file, "layers": [], "composite": file, "id": None})


def test_the_edit_tab_refuses_bad_pictures_by_their_name_and_scales_16_bits(app, tmp_path):
    """What gradio's image editor gets from an upload (a file under the server's upload folder, with the
    user's file name) goes through the one picture loader: a readable message naming the user's file,
    never the server's folders; the 16-bit picture arrives with its grey levels."""
    import gradio as gr

    import seeingsounds.app.ui

    assert not Path(seeingsounds.app.ui.__file__).with_suffix(".pyi").exists()  # gradio writes one for a subclass
    editor = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "edit-picture")
    svg = tmp_path / "upload-1"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    text = tmp_path / "upload-2"
    text.write_text("hello")
    cases = [(svg, "drawing.png", "drawing.png is not a readable image"),
             (text, "notes.png", "notes.png is not a readable image"),
             (truncated_png(tmp_path / "upload-3"), "cut.png", r"cut.png is not a readable image \(truncated"),
             (bomb_png(tmp_path / "upload-4"), "bomb.png", r"bomb.png is 12000x12000 \(144.0 megapixels\)")]
    for path, name, message in cases:
        with pytest.raises(gr.Error, match=message) as info:
            editor.preprocess(editor_payload(editor, path, name))
        assert str(tmp_path) not in info.value.message and "Traceback" not in info.value.message
    value = editor.preprocess(editor_payload(editor, grey16_png(tmp_path / "upload-5"), "scan.png"))
    assert value["background"].mode == "RGBA"
    assert np.array_equal(np.asarray(value["background"])[0, :, 0], GREY8)
    picture, mask = editor_picture(value)
    assert np.array_equal(np.asarray(picture)[0], np.repeat(GREY8[:, None], 3, axis=1)) and mask is None


def test_the_service_scales_a_16_bit_picture(service):
    from seeingsounds.assets import example_sounds

    picture = Image.fromarray(np.tile(np.repeat(GREY16, 8), (32, 1)))  # 32x32, four grey bands
    result = service.edit(picture, str(example_sounds()["bell"]), strength=0.5, steps=4)
    with Image.open(result.picture) as saved:
        assert np.array_equal(np.asarray(saved.convert("L"))[0, ::8], GREY8)


def call(url: str, api: str, data: list) -> tuple[str, object]:
    """One call of the page's HTTP API as any client may send it (``json.dumps`` writes NaN as is)."""
    base = url.rstrip("/") + "/gradio_api"
    event = httpx.post(f"{base}/call/{api}", content=json.dumps({"data": data}),
                       headers={"content-type": "application/json"}).json()["event_id"]
    lines = httpx.get(f"{base}/call/{api}/{event}", timeout=120).text.strip().splitlines()
    kind = [line for line in lines if line.startswith("event:")][-1].split(":", 1)[1].strip()
    return kind, json.loads([line for line in lines if line.startswith("data:")][-1].split(":", 1)[1])


def test_bad_api_values_and_uploads_give_a_readable_message(app, tmp_path):
    """Through the server: NaN, text or None where a number goes, and a text file as the picture, are
    refused with a message naming the control or the file: no gradio internals, no server folders."""
    from seeingsounds.app.ui import launch_app
    from seeingsounds.assets import example_sounds

    _, url = launch_app(app, port=free_port(), block=False, quiet=True)
    base = url.rstrip("/") + "/gradio_api"

    def upload(path: Path) -> dict:
        with open(path, "rb") as f:
            (served,) = httpx.post(f"{base}/upload", files={"files": (path.name, f)}).json()
        return {"path": served, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    try:
        bell = upload(example_sounds()["bell"])

        def generate(volume=1.0, seed=0, steps=2):
            # sound, volume, reverb, pitch, lowpass, echo, mix sound, mix ratio, seed, steps, size, images, frames
            return call(url, "generate", [bell, volume, 0, 0, 0, 0, None, 0.5, seed, steps, 32, 1, 5])

        refusals = {
            "a NaN seed": (generate(seed=float("nan")), "Seed must be a finite number, got 'nan'"),
            "text as volume": (generate(volume="loud"), "Volume (gain; 1 = unchanged) must be a finite number, "
                                                        "got 'loud'"),
            "no volume": (generate(volume=None), "Volume (gain; 1 = unchanged) must be a finite number, got 'None'"),
            "infinite steps": (generate(steps=float("inf")), "Steps must be a finite number, got 'inf'"),
            "too many steps": (generate(steps=500), "Steps must be 1..50, got 500"),
        }
        notes = tmp_path / "notes.png"
        notes.write_text("not a picture")
        picture = upload(notes)
        edit = call(url, "edit", [{"background": picture, "layers": [], "composite": picture, "id": None}, bell,
                                  1.0, 0, 0, 0, 0, None, 0.5, 0.6, 0, 4])
        refusals["a text file as picture"] = (edit, "Picture notes.png is not a readable image (not a picture format")
        for what, ((kind, data), message) in refusals.items():
            assert kind == "error" and data["error"].startswith(message), (what, data)
            assert "Traceback" not in data["error"] and "/" not in data["error"], (what, data)
        kind, data = generate()
        assert kind == "complete" and len(data[0]) == 1, data  # the server kept serving
    finally:
        app.close()


# ---- inputs by name ------------------------------------------------------------------------------------

#: the HTTP API's parameters, by name and in order (the built-in effects' sliders in display order)
GENERATE = ["sound", "volume", "reverb", "pitch", "lowpass", "echo", "mix_sound", "mix_ratio", "seed", "steps", "size",
            "num_images", "frames"]
EDIT = ["picture", "sound", "volume", "reverb", "pitch", "lowpass", "echo", "mix_sound", "mix_ratio", "strength",
        "seed", "steps"]


def handler(app, api_name: str):
    return next(f.fn for f in app.fns.values() if f.api_name == api_name)


def test_the_api_names_its_parameters(app):
    """A client may send every input by its name (gradio_client's ``predict(seed=7, ...)``); the positional
    order is the same as before the names."""
    endpoints = app.get_api_info()["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/generate"]["parameters"]] == GENERATE
    assert [p["parameter_name"] for p in endpoints["/edit"]["parameters"]] == EDIT


def test_a_request_receives_its_inputs_by_name_in_any_order(app, service, monkeypatch):
    """The Generate and Edit handlers pass each value to the service under its own name: the same values in
    reverse order make the same request."""
    from seeingsounds.app.service import EditResult, Result

    received: list[dict] = []

    def run(sound, **kwargs):
        received.append({"sound": sound, **{k: v for k, v in kwargs.items() if k != "progress"}})
        return Result(images=[], caption="", hears={}, audio=Path("heard.wav"), seeds=[])

    def edit(picture, sound, **kwargs):
        received.append({"picture": picture, "sound": sound, **{k: v for k, v in kwargs.items() if k != "progress"}})
        return EditResult(images=[], seeds=[], picture=Path("input.png"), mask=None, size=(32, 32))

    monkeypatch.setattr(service, "run", run)
    monkeypatch.setattr(service, "edit", edit)
    values = dict(zip(GENERATE, ["bell.flac", 0.5, 0.25, -3, 800, 0.1, "crow.flac", 0.3, 7.0, 3, 32, 2, 9]))
    expected = {**values, "seed": 7, "frames": None}  # an image checkpoint: no frames
    for order in (values, dict(reversed(values.items()))):
        received.clear()
        handler(app, "generate")(**order)
        assert received == [expected]
    edits = dict(zip(EDIT, [None, "drums.flac", 1.0, 0, 0, 0, 0.4, None, 0.5, 0.8, 5.0, 12]))
    for order in (edits, dict(reversed(edits.items()))):
        received.clear()
        handler(app, "edit")(**order)
        assert received == [{**edits, "seed": 5, "mask": None}]

# ---- sounds: decoding stops at the duration limit ------------------------------------------------------


def test_a_long_mkv_without_duration_is_not_decoded_whole(tmp_path, monkeypatch):
    """A 2-minute FLAC in an mkv whose header gives no length (a few hundred KB; an hour is 15 MB and used
    to cost 230 MiB): decoding stops just past the limit, then the sound is refused."""
    from seeingsounds.audio import io as audio_io
    from seeingsounds.audio.io import audio_info

    sr, limit = 8000, 5.0
    path = flac_mkv_without_duration(tmp_path / "long.mkv", seconds=120, sr=sr)
    assert audio_info(path).seconds is None and path.stat().st_size < 1_000_000
    decoded = []
    blocks = audio_io._mono_blocks_ffmpeg

    def counting(*args, **kwargs):
        for block in blocks(*args, **kwargs):
            decoded.append(len(block))
            yield block

    monkeypatch.setattr(audio_io, "_mono_blocks_ffmpeg", counting)
    with pytest.raises(AudioLoadError, match=r"long\.mkv: the sound is longer than 5 s, the most this demo takes"):
        read_checked(path, Limits(max_upload_mb=5, max_seconds=limit))
    # the header check decodes one frame, the read stops within a frame of the limit + the resampling margin:
    # not the 960,000 samples of the file
    assert limit * sr < sum(decoded) <= limit * sr + 256 + 2 * max(decoded)
    # a sound within the limit is read whole
    decoded.clear()
    wave, rate = read_checked(flac_mkv_without_duration(tmp_path / "short.mkv", seconds=3, sr=sr),
                              Limits(max_upload_mb=5, max_seconds=limit))
    assert rate == sr and len(wave) == 3 * sr and sum(decoded) - decoded[0] == 3 * sr


# ---- serve: SIGTERM cleans up as Ctrl+C does -----------------------------------------------------------


def test_sigterm_is_an_interrupt_inside_the_block_only():
    """``seeingsounds serve`` runs within it: a SIGTERM while the demo trains or the model loads unwinds like
    Ctrl+C (build_once removes its temporary folder), and the previous handler comes back after."""
    from seeingsounds.app.ui import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives at once; never reached
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_removes_the_upload_and_output_folder(tmp_path):
    from seeingsounds.demo_checkpoint import demo_checkpoint
    from seeingsounds.assets import example_sounds

    checkpoint = demo_checkpoint() / "best"  # trained here if missing, not in the server
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "seeingsounds.cli.main", "serve", "--checkpoint", str(checkpoint),
                               "--port", str(port), "--device", "cpu"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.communicate()[0][-3000:]
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        with open(example_sounds()["bell"], "rb") as f:
            (uploaded,) = httpx.post(f"{url}/gradio_api/upload", files={"files": ("bell.flac", f)}).json()
        (folder,) = scratch.glob("seeingsounds-app-*")
        assert Path(uploaded).is_file() and Path(uploaded).is_relative_to(folder / "uploads")
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output[-3000:]
    assert "Keyboard interruption in main thread... closing server." in output  # gradio's Ctrl+C path
    assert not folder.exists() and not list(scratch.glob("seeingsounds-app-*")), output[-3000:]


def test_every_pillow_mode_converts_or_is_refused_by_name():
    """LAB converts to grey through RGB; 'La' (premultiplied) converts to nothing: a ConfigError, not a ValueError."""
    for mode in ("LAB", "HSV", "YCbCr", "CMYK", "RGBa", "PA", "P", "1"):
        for target in ("RGB", "RGBA", "L"):
            assert load_picture(Image.new(mode, (4, 3)), mode=target).mode == target
    with pytest.raises(ConfigError, match="the mask is a Pillow 'La' picture, which cannot be converted to L"):
        load_picture(Image.new("La", (4, 3)), what="mask", mode="L")


def test_a_truncated_upload_is_made_with_a_notice_naming_it_by_its_upload_name(service, tmp_path, monkeypatch):
    """A truncated upload was turned into a picture of its few seconds with no word on the page: the
    warning reached only the server log, naming the server's upload folder."""
    import gradio as gr
    import soundfile as sf

    from seeingsounds.app.ui import report
    from seeingsounds.assets import example_sounds

    t = np.arange(32000) / 16000
    whole = tmp_path / "whole.wav"
    sf.write(whole, 0.3 * np.sin(2 * np.pi * 523 * t), 16000, subtype="PCM_16")  # 2 s: 44 + 64000 bytes
    upload = tmp_path / "gradio" / "3f9a" / "bell take 2.wav"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(whole.read_bytes()[:44 + 16000])  # a download stopped after 0.5 s
    shown: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *args, **kwargs: shown.append(message))
    result = report(lambda: service.run(str(upload), steps=1), "generating")
    assert len(result.images) == 1
    assert shown == ["Audio bell take 2.wav is truncated: its header declares 2.00 s but the file holds only 0.500 s "
                     "(8000 of 32000 frames); using what is there (copy or export it again for the whole sound)"]
    shown.clear()
    report(lambda: service.run(str(example_sounds()["bell"]), steps=1), "generating")
    assert shown == []  # a whole file: no notice


def test_warnings_of_other_requests_are_not_mixed_in():
    import logging
    import threading

    from seeingsounds.app.service import warnings_told

    log = logging.getLogger("seeingsounds.audio.io")
    with warnings_told() as told:
        other = threading.Thread(target=log.warning, args=("audio %s is truncated", "/srv/other/b.wav"))
        other.start()
        other.join()
        log.warning("audio %s is truncated", "/srv/uploads/a.wav")
        log.info("not a warning")
    assert told == ["audio a.wav is truncated"]
