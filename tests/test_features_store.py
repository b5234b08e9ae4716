"""Feature store at scale: header-only start-up checks, verified reads, recompute on corruption,
targets on the model's device, the one render, and 2-process caching that writes each entry once."""

from __future__ import annotations

import json
import time
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import items_of, sine, write_sines

SR = 16000


@pytest.fixture()
def clips(tmp_path):
    return write_sines(tmp_path, (220.0, 440.0, 880.0, 660.0), sr=SR)


def test_start_up_reads_headers_only(tmp_path, clips, tiny_encoder, tiny_backend, monkeypatch):
    import seeingsounds.cache as cache_module
    from seeingsounds.cache import FeatureCache

    monkeypatch.setattr(cache_module, "CHECK_THREADS", 2)  # 4 entries: checked on threads
    cache = FeatureCache(tmp_path / "c")
    cache.ensure_audio(tiny_encoder, items_of(clips), progress=False)
    cache.ensure_targets(tiny_backend, ["a dog", "rain"], progress=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("tensor bytes were read or hashed at start-up")

    with monkeypatch.context() as m:
        m.setattr(cache_module, "_read_verified", forbidden)
        m.setattr(cache_module, "tensor_digest", forbidden)
        m.setattr(type(tiny_backend), "load_text_pipeline", forbidden)
        warm = FeatureCache(tmp_path / "c")
        paths = warm.ensure_audio(tiny_encoder, items_of(clips), progress=False)
        targets = warm.ensure_targets(tiny_backend, ["rain", "a dog", "rain"], progress=False)
    assert (warm.stats.hits, warm.stats.misses, warm.stats.written) == (4 + 2, 0, 0)
    assert len(set(paths)) == 4 and targets[0] == targets[2] != targets[1]
    # a truncated entry (size differs from what its header says) is caught from the header alone
    paths[1].write_bytes(paths[1].read_bytes()[:-100])
    again = FeatureCache(tmp_path / "c")
    again.ensure_audio(tiny_encoder, items_of(clips), progress=False)
    assert (again.stats.corrupt, again.stats.misses, again.stats.written) == (1, 1, 1)


def test_read_entry_contract_and_load_tokens_recompute(tmp_path, clips, tiny_encoder):
    from seeingsounds.cache import CorruptEntryError, FeatureCache, read_tokens

    cache = FeatureCache(tmp_path / "c")
    paths = cache.ensure_audio(tiny_encoder, items_of(clips), progress=False)
    good = cache.read_entry(paths[0])
    assert set(good) == {"tokens"} and good["tokens"].dtype == torch.float16
    assert good["tokens"].shape == (tiny_encoder.num_tokens, tiny_encoder.hidden_size)
    assert torch.equal(read_tokens(paths[0]), good["tokens"])
    assert cache.read_entry(tmp_path / "c" / "nothing.safetensors") is None and cache.stats.corrupt == 0
    # flip one tensor byte: the header (and the start-up check) stays intact, the read catches it
    data = bytearray(paths[0].read_bytes())
    data[-3] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    with pytest.raises(CorruptEntryError, match=str(paths[0].name)):
        read_tokens(paths[0])
    assert not paths[0].exists()  # deleted, never trusted
    paths[0].write_bytes(bytes(data))
    fresh = FeatureCache(tmp_path / "c")
    assert fresh.read_entry(paths[0]) is None and fresh.stats.corrupt == 1 and not paths[0].exists()
    paths[0].write_bytes(bytes(data))
    tokens = fresh.load_tokens(tiny_encoder, items_of(clips[:1])[0])  # recomputed, rewritten, returned
    assert torch.equal(tokens, good["tokens"]) and fresh.stats.corrupt == 2 and fresh.stats.written == 1
    assert torch.equal(FeatureCache(tmp_path / "c").read_entry(paths[0])["tokens"], good["tokens"])
    # an entry under another entry's name: the key in its metadata is not its file name
    paths[2].write_bytes(paths[1].read_bytes())
    assert fresh.read_entry(paths[2]) is None and not paths[2].exists()


def test_targets_load_where_asked_stream_to_disk_and_are_released(tmp_path, tiny_backend, monkeypatch):
    from seeingsounds.cache import FeatureCache

    direct = tiny_backend.encode_captions(["rain on a roof"])
    calls, pipes = [], []
    original = type(tiny_backend).load_text_pipeline

    def recording(self, *, device=None, dtype=None):
        calls.append((torch.device(device), dtype))
        pipe = original(self, device=device, dtype=dtype)
        pipes.append(weakref.ref(pipe))
        return pipe

    monkeypatch.setattr(type(tiny_backend), "load_text_pipeline", recording)
    cache = FeatureCache(tmp_path / "c")
    caps = ["a dog barks", "rain on a roof", "a dog barks", "a bell"]
    paths = cache.ensure_targets(tiny_backend, caps, batch_size=2, progress=False)
    assert calls == [(torch.device("cpu"), torch.float32)]  # auto on a CPU machine: CPU, fp32, loaded once
    assert all(p() is None for p in pipes)  # released when the targets exist
    assert paths[0] == paths[2] and len(set(paths)) == 3 and cache.stats.written == 3
    entry = cache.read_entry(paths[1])
    spec = tiny_backend.conditioning_spec()
    assert {n: tuple(t.shape) for n, t in entry.items()} == {n: s.shape for n, s in spec.items()}
    assert all(t.dtype == torch.float16 for t in entry.values())
    torch.testing.assert_close(entry["pooled_prompt_embeds"].float(), direct["pooled_prompt_embeds"][0],
                               atol=2e-3, rtol=2e-3)
    # explicit device/dtype are passed through; nothing loads when nothing is missing
    cache.ensure_targets(tiny_backend, caps + ["a cat"], device="cpu", dtype="bf16", progress=False)
    assert calls[-1] == (torch.device("cpu"), torch.bfloat16) and len(calls) == 2
    cache.ensure_targets(tiny_backend, caps, device="cpu", dtype="bf16", progress=False)
    assert len(calls) == 2
    # a corrupt target entry is recomputed by load_targets
    data = bytearray(paths[1].read_bytes())
    data[-2] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    again = cache.load_targets(tiny_backend, "rain on a roof")
    assert all(torch.equal(again[n], entry[n]) for n in entry) and len(calls) == 3


def test_cache_renders_with_the_one_render(tmp_path, tiny_encoder):
    from seeingsounds.audio.render import render
    from seeingsounds.cache import AudioItem, CACHE_VERSION, FeatureCache, load_item_wave

    long, short = tmp_path / "long.wav", tmp_path / "short.wav"
    sf.write(long, sine(330.0, 20.0, SR, 0.4), SR)
    sf.write(short, sine(990.0, 3.0, SR, 0.2), SR)
    effects = [("speed", {"factor": 2.0})]
    item = AudioItem.of(long, effects=effects, mix=(short, 0.3))
    n = tiny_encoder.window_samples
    wave = load_item_wave(item, SR, n)
    assert np.array_equal(wave, render(long, sample_rate=SR, num_samples=n, effects=effects, mix=(short, 0.3)))
    cache = FeatureCache(tmp_path / "c", dtype="float32")
    assert cache.audio_key_parts(tiny_encoder, item)["v"] == CACHE_VERSION >= 2
    tokens = cache.load_tokens(tiny_encoder, item)
    torch.testing.assert_close(tokens, tiny_encoder.encode([wave])[0])


WORKER = r"""
import json, sys
from pathlib import Path
from seeingsounds.cache import AudioItem, FeatureCache, launch_rank
from seeingsounds.model import load_backend, load_encoder

root, out = Path(sys.argv[1]), Path(sys.argv[2])
written = []

class Recording(FeatureCache):
    def write(self, path, *args, **kwargs):
        written.append(str(path))
        return super().write(path, *args, **kwargs)

cache = Recording(root / "cache")
encoder, backend = load_encoder("tiny"), load_backend("tiny")
clips = sorted((root / "clips").glob("*.wav"))
items = [AudioItem.of(p) for p in clips] + [AudioItem.of(p, effects=[("volume", {"alpha": 0.2})]) for p in clips]
audio = cache.ensure_audio(encoder, items, batch_size=2, progress=False)
captions = [f"caption number {i}" for i in range(7)] + [""]
targets = cache.ensure_targets(backend, captions, batch_size=2, progress=False)
# every process returns with the whole set readable
assert all(cache.read_entry(p) is not None for p in audio + targets)
(out / f"rank{launch_rank()}.json").write_text(json.dumps({"written": written, "entries": len(set(audio + targets))}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_each_entry_exactly_once(tmp_path):
    from safetensors import safe_open

    (tmp_path / "clips").mkdir()
    for i in range(6):
        sf.write(tmp_path / "clips" / f"c{i}.wav", sine(200.0 + 100 * i, 1.0, SR, 0.5), SR)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), str(tmp_path), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    writes = ranks[0]["written"] + ranks[1]["written"]
    assert ranks[0]["entries"] == 12 + 8 and len(writes) == 20 and len(set(writes)) == 20  # each once, none twice
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert sorted(map(str, files)) == sorted(writes)
    assert not list((tmp_path / "cache").rglob("*.claim")) and not list((tmp_path / "cache").rglob("*.tmp"))
    for f in files:  # the writer recorded in each entry is the process that wrote it
        with safe_open(str(f), framework="pt") as st:
            rank = int(st.metadata()["writer_rank"])
        assert str(f) in ranks[rank]["written"]


def test_cache_command_under_two_processes(tmp_path):
    (tmp_path / "clips").mkdir()
    rows = []
    for i in range(4):
        sf.write(tmp_path / "clips" / f"c{i}.wav", sine(300.0 + 50 * i, 1.0, SR, 0.5), SR)
        rows.append(f"clips/c{i}.wav,tone{i % 2}")
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "captions.json").write_text(json.dumps({"tone0": "a low tone", "tone1": "a high tone"}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "seeingsounds.cli.main", "cache", "--preset", "tiny",
           "--data", str(tmp_path / "m.csv"), "--captions", str(tmp_path / "captions.json"), "--include-test",
           "--cache-dir", str(tmp_path / "c"), "--batch-size", "1", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert len(list((tmp_path / "c" / "audio").rglob("*.safetensors"))) == 4
    assert len(list((tmp_path / "c" / "targets").rglob("*.safetensors"))) == 3
    assert not list((tmp_path / "c").rglob("*.claim"))
    assert proc.stdout.count("caption targets:") == 1  # one report, from rank 0


def test_audio_hashes_are_remembered_across_starts(tmp_path, clips, tiny_encoder, monkeypatch):
    import seeingsounds.cache as cache_module
    from seeingsounds.cache import HASHES_FILE, FeatureCache

    FeatureCache(tmp_path / "c").ensure_audio(tiny_encoder, items_of(clips), progress=False)
    assert len((tmp_path / "c" / HASHES_FILE).read_text().splitlines()) == 4
    hashed = []
    real = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    warm = FeatureCache(tmp_path / "c")
    warm.ensure_audio(tiny_encoder, items_of(clips), progress=False)
    assert hashed == [] and warm.stats.hits == 4  # a start stats the clips, it does not read them
    sf.write(clips[2], sine(123.0, 1.5, SR, 0.5), SR)  # edited: new mtime -> hashed again, a miss
    again = FeatureCache(tmp_path / "c")
    again.ensure_audio(tiny_encoder, items_of(clips), progress=False)
    assert hashed == [clips[2].name] and (again.stats.hits, again.stats.misses) == (3, 1)


def test_cache_command_passes_device_and_dtype_to_the_text_encoders(tmp_path, clips, monkeypatch):
    from seeingsounds.cli.main import main
    from seeingsounds.generators.flux import FluxBackend

    seen = []
    original = FluxBackend.load_text_pipeline

    def recording(self, *, device=None, dtype=None):
        seen.append((str(device), dtype))
        return original(self, device=device, dtype=dtype)

    monkeypatch.setattr(FluxBackend, "load_text_pipeline", recording)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{p.name},tone{i % 2}\n" for i, p in enumerate(clips)))
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"tone0": "a low tone", "tone1": "a high tone"}))
    base = ["cache", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions), "--no-progress"]
    assert main([*base, "--cache-dir", str(tmp_path / "a"), "--device", "cpu", "--dtype", "bf16"]) == 0
    assert main([*base, "--cache-dir", str(tmp_path / "b")]) == 0  # auto: the CPU here, fp32
    assert seen == [("cpu", torch.bfloat16), ("cpu", torch.float32)]


def test_share_work_takes_over_a_dead_claim_and_waits_for_a_live_one(tmp_path):
    import os
    import threading

    from seeingsounds.cache import share_work

    entries = [tmp_path / f"e{i}.safetensors" for i in range(3)]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is gone: a claim it left (kill -9) is stale
    host = socket.gethostname()
    (tmp_path / "e1.safetensors.claim").write_text(json.dumps({"host": host, "pid": dead.pid, "rank": 1}))
    (tmp_path / "e2.safetensors.claim").write_text(json.dumps({"host": host, "pid": os.getppid(), "rank": 1}))
    computed = []

    def compute(chunk):
        computed.extend(chunk)
        for i in chunk:
            entries[i].write_bytes(b"x")

    def other_process_finishes_e2():
        time.sleep(0.5)
        entries[2].write_bytes(b"y")
        (tmp_path / "e2.safetensors.claim").unlink()

    helper = threading.Thread(target=other_process_finishes_e2)
    helper.start()
    share_work([0, 1, 2], entries, compute, rank=0, world=2, batch_size=8, poll_s=0.05)
    helper.join()
    assert sorted(computed) == [0, 1]  # e1's dead claim taken over; e2 left to its live owner
    assert entries[2].read_bytes() == b"y" and not list(tmp_path.glob("*.claim*"))
