"""Eq. 7 at scale: fused captions only for the mixes drawn, a bounded feature cache, reproducible LLM edits."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine

from seeingsounds.data.synthetic import make_synthetic_dataset


def many_classes(root, classes: int, clips: int = 2):
    """``classes`` sine classes of ``clips`` short train clips each (no validation split)."""
    lines, captions = ["path,label,split"], {}
    for c in range(classes):
        label = f"tone {c:03d}"
        captions[label] = f"a tone number {c}"
        for k in range(clips):
            path = root / f"c{c:03d}_{k}.wav"
            sf.write(path, sine(200.0 + 37.0 * c + k, 0.3, 16000), 16000)
            lines.append(f"{path.name},{label},train")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "captions.json").write_text(json.dumps(captions))
    return root / "manifest.csv", root / "captions.json"


def test_fused_captions_encoded_equal_the_class_pairs_drawn(tmp_path, tiny_encoder, tiny_backend):
    """60 classes have 1,770 class pairs; --mix-pairs 16 must fuse and encode only the pairs drawn."""
    from seeingsounds.cache import FeatureCache
    from seeingsounds.training import TrainConfig, Trainer

    manifest, captions = many_classes(tmp_path, 60)
    cfg = TrainConfig(preset="tiny", data=manifest, captions=captions, out=tmp_path / "run", epochs=1, batch_size=32,
                      cache_dir=tmp_path / "cache", progress=False, augment=[[["volume", {"alpha": 0.1}]]],
                      mix_pairs=16)
    trainer = Trainer(cfg, encoder=tiny_encoder, backend=tiny_backend, log=lambda m: None)
    trainer.setup()
    rows = trainer.epoch_rows(0)
    drawn = {frozenset(trainer.captions.entries[r[1]].labels) for r in rows if r[2] == 2}
    assert sum(r[2] == 2 for r in rows) == 16
    assert trainer.counts["fused"] == trainer.counts["class_pairs_drawn"] == len(drawn) <= 16
    assert trainer.counts["class"] == 60 and trainer.counts["edited"] == 60
    # targets encoded: one per distinct caption (+ the empty caption), nothing for undrawn pairs
    assert trainer.counts["targets_encoded"] == len(set(trainer.captions.texts)) + 1
    assert len(list((tmp_path / "cache" / "targets").rglob("*.safetensors"))) == len(set(trainer.captions.texts)) + 1
    assert len(trainer.targets) == len(trainer.captions) == 120 + len(drawn)
    # the same seed draws the same pool; another seed another one
    again = Trainer(TrainConfig(**{**cfg.to_dict(), "out": str(tmp_path / "again")}), encoder=tiny_encoder,
                    backend=tiny_backend, log=lambda m: None)
    again.setup()
    assert again.captions.texts == trainer.captions.texts
    assert again.counts["targets_encoded"] == 0 and FeatureCache(tmp_path / "cache").root.is_dir()


def test_feature_cache_stops_growing_after_the_first_epochs(tmp_path, tiny_encoder, tiny_backend):
    from seeingsounds.training import TrainConfig, train

    manifest, captions = make_synthetic_dataset(tmp_path / "data", train=4, val=1, test=0)
    cache = tmp_path / "cache"

    def entries() -> int:
        return len(list((cache / "audio").rglob("*.safetensors")))

    options = dict(preset="tiny", data=manifest, captions=captions, out=tmp_path / "run", batch_size=16,
                   cache_dir=cache, progress=False, patience=100, augment=[[["volume", {"alpha": 0.2}]]], mix_pairs=12)
    train(TrainConfig(**options, epochs=2), encoder=tiny_encoder, backend=tiny_backend)
    after_two = entries()
    # 25 clips + 25 volume variants + at most 12 train mixes + the validation mixes
    assert 50 < after_two <= 50 + 12 + 3
    train(TrainConfig(**options, epochs=5, resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert entries() == after_two
    # --augment-live: only the unmodified clips are cached
    live = tmp_path / "live-cache"
    train(TrainConfig(**{**options, "out": tmp_path / "live", "cache_dir": live, "cache_augmented": False}, epochs=2),
          encoder=tiny_encoder, backend=tiny_backend)
    assert len(list((live / "audio").rglob("*.safetensors"))) == 25


class FakeOpenAI:
    """A chat-completions endpoint on 127.0.0.1 that counts requests and answers deterministically."""

    def __init__(self):
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests += 1
                user = body["messages"][-1]["content"].split("\n")[0][-40:]
                payload = json.dumps({"choices": [{"message": {"content": f"llm says {user}"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm():
    server = FakeOpenAI()
    yield server
    server.stop()


def test_exact_resume_with_llm_edits_served_from_the_run(tmp_path, llm, tiny_encoder, tiny_backend):
    from safetensors.torch import load_file

    from seeingsounds.errors import ConfigError
    from seeingsounds.training import TrainConfig, train

    manifest, captions = make_synthetic_dataset(tmp_path / "data", train=4, val=1, test=0)
    options = dict(preset="tiny", data=manifest, captions=captions, batch_size=8, epochs=2, cache_dir=tmp_path / "cache",
                   progress=False, patience=100, augment=[[["volume", {"alpha": 0.1}]]], mix_pairs=6,
                   caption_engine="llm", llm_base_url=llm.url, llm_model="fake-model")
    train(TrainConfig(**options, out=tmp_path / "full"), encoder=tiny_encoder, backend=tiny_backend)
    asked = llm.requests
    assert asked >= 5  # 5 edits (one per class) + the fusions of the drawn pairs
    edits = [json.loads(x) for x in (tmp_path / "full" / "caption_edits.jsonl").read_text().splitlines()]
    assert len(edits) == asked and {e["op"] for e in edits} == {"edit", "fuse"}
    texts = json.loads((tmp_path / "full" / "captions.json").read_text())["captions"]
    assert sum(t["text"].startswith("llm says") for t in texts) == asked

    part = TrainConfig(**options, out=tmp_path / "part", max_steps=3)
    train(part, encoder=tiny_encoder, backend=tiny_backend)
    before_resume = llm.requests
    assert before_resume == 2 * asked
    done = train(TrainConfig(**options, out=tmp_path / "part", resume=True), encoder=tiny_encoder, backend=tiny_backend)
    assert llm.requests == before_resume  # the resume asked the endpoint nothing
    assert done.global_step == json.loads((tmp_path / "full" / "metrics.jsonl").read_text().splitlines()[-1])[
        "global_step"]
    a, b = load_file(str(tmp_path / "full" / "last" / "model.safetensors")), \
        load_file(str(tmp_path / "part" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # edits that no longer match the run's captions (a lost or edited file) are refused, not trained on
    edits_file = tmp_path / "part" / "caption_edits.jsonl"
    lines = edits_file.read_text().splitlines()
    changed = {**json.loads(lines[0]), "output": "a different caption"}
    edits_file.write_text("\n".join([json.dumps(changed), *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match="captions would differ"):
        train(TrainConfig(**{**options, "epochs": 3}, out=tmp_path / "part", resume=True), encoder=tiny_encoder,
              backend=tiny_backend)
    assert np.isfinite(done.last["train_loss"])
