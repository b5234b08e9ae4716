"""LLM caption engine against a local fake OpenAI-compatible server (no outside network)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seeingsounds.captions.edit import get_editor
from seeingsounds.captions.llm import CaptionEngineError, LLMEditor, default_system_prompt
from seeingsounds.errors import ConfigError


class FakeOpenAI:
    """Chat-completions server on 127.0.0.1; ``mode`` picks the behaviour, ``requests`` records bodies."""

    def __init__(self):
        self.mode = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": {"message": "no such route"}}')
                mode = fake.mode
                if mode == "ok":
                    user = body["messages"][-1]["content"].replace("\n", " | ")
                    reply = {"choices": [{"message": {"role": "assistant", "content": f' "LLM<{user}>" \n'}}]}
                    return self._send(200, json.dumps(reply).encode())
                if mode == "malformed":
                    return self._send(200, b"{not json")
                if mode == "nochoices":
                    return self._send(200, b'{"choices": []}')
                if mode == "multiline":
                    reply = {"choices": [{"message": {"content": "Sure! Here it is:\na train\nHope this helps"}}]}
                    return self._send(200, json.dumps(reply).encode())
                if mode == "slow":
                    time.sleep(0.6)
                    return self._send(200, b'{"choices": [{"message": {"content": "late"}}]}')
                if mode == "500":
                    return self._send(500, b'{"error": {"message": "overloaded"}}')
                if mode == "408once":  # a request timeout the first time, then an answer
                    fake.mode = "ok"
                    return self._send(408, b'{"error": {"message": "request timeout"}}')
                if mode == "401":
                    return self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')
                raise AssertionError(mode)

            def _send(self, code, payload):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.stop()


def editor(fake, tmp_path, **kwargs) -> LLMEditor:
    # a busy CI machine may take longer than a short timeout to answer: only test_timeout sets one
    options = {"model": "fake-4o", "api_key": "sk-test", "timeout": 10, "max_attempts": 3, "backoff": 0.01,
               "cache": tmp_path / "llm-cache.json"}
    options.update(kwargs)
    return LLMEditor(fake.url, **options)


def test_success_request_shape_and_cache_answers_offline(fake, tmp_path):
    e = editor(fake, tmp_path, temperature=0.3)
    assert e.edit("a train passing by", "low-volume") == "LLM<Caption: a train passing by | Transformation: low-volume>"
    assert e.fuse("a train", "a helicopter") == "LLM<Caption 1: a train | Caption 2: a helicopter>"
    assert e.class_caption("dog_bark") == "LLM<Class label: dog_bark>"
    assert len(fake.requests) == 3 and e.request_count == 3
    body = fake.requests[0]
    assert body["model"] == "fake-4o" and body["temperature"] == 0.3
    assert body["messages"][0] == {"role": "system", "content": default_system_prompt("edit")}
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
    assert e.edit("a train passing by", "low-volume").startswith("LLM<")  # in-memory hit
    assert len(fake.requests) == 3
    lines = [json.loads(x) for x in (tmp_path / "llm-cache.json").read_text().splitlines()]
    assert lines[0] == {"format": "seeingsounds-caption-cache/2"} and len(lines) == 1 + 3
    fake.stop()  # nothing listens any more: a rerun must come from the file alone
    rerun = editor(fake, tmp_path, temperature=0.3, max_attempts=1)
    assert rerun.class_caption("dog_bark") == "LLM<Class label: dog_bark>"
    assert rerun.edit_many("a train passing by", ["low-volume"]) == "LLM<Caption: a train passing by | Transformation: low-volume>"
    assert rerun.request_count == 0
    with pytest.raises(CaptionEngineError, match="cannot connect"):  # a different model is a cache miss
        editor(fake, tmp_path, model="other", max_attempts=1).class_caption("dog_bark")


def test_cache_key_depends_on_system_prompt(fake, tmp_path):
    a = editor(fake, tmp_path)
    b = editor(fake, tmp_path, system_prompts={"class_caption": "Answer with one caption."})
    assert a.cache_key("class_caption", ("dog",)) != b.cache_key("class_caption", ("dog",))
    assert a.cache_key("edit", ("x", "y")) == b.cache_key("edit", ("x", "y"))
    b.class_caption("dog")
    assert fake.requests[-1]["messages"][0]["content"] == "Answer with one caption."


@pytest.mark.parametrize(("mode", "message"), [("malformed", "not JSON"), ("nochoices", "no choices"), ("multiline", "3 lines")])
def test_bad_replies_retried_then_error(fake, tmp_path, mode, message):
    fake.mode = mode
    with pytest.raises(CaptionEngineError) as info:
        editor(fake, tmp_path).edit("a train", "low-volume")
    text = str(info.value)
    assert fake.url in text and "edit" in text and message in text and "3 attempt" in text
    assert len(fake.requests) == 3
    assert not (tmp_path / "llm-cache.json").exists()


def test_timeout(fake, tmp_path):
    fake.mode = "slow"  # answers after 0.6 s: a client that waited would get "late", not this error
    with pytest.raises(CaptionEngineError, match="timeout of 0.2 s"):
        editor(fake, tmp_path, timeout=0.2, max_attempts=2).class_caption("dog")
    assert len(fake.requests) == 2


def test_http_500_retried_then_error(fake, tmp_path):
    fake.mode = "500"
    with pytest.raises(CaptionEngineError, match="HTTP 500: overloaded") as info:
        editor(fake, tmp_path, max_attempts=4).fuse("a train", "an owl")
    assert "fuse" in str(info.value)
    assert len(fake.requests) == 4


def test_http_500_with_template_fallback_warns(fake, tmp_path, caplog):
    fake.mode = "500"
    e = editor(fake, tmp_path, max_attempts=2, fallback="template")
    with caplog.at_level(logging.WARNING, logger="seeingsounds.captions.llm"):
        caption = e.edit("a train passing by", "low-volume")
    assert caption == "a distant train passing by"
    assert e.fallback_count == 1 and len(fake.requests) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "template caption" in warnings[0].getMessage() and "HTTP 500" in warnings[0].getMessage()
    fake.mode = "ok"  # the fallback was not cached: the next call asks the endpoint again
    assert e.edit("a train passing by", "low-volume").startswith("LLM<")


def test_http_401_not_retried_and_no_fallback(fake, tmp_path):
    fake.mode = "401"
    with pytest.raises(CaptionEngineError, match="HTTP 401: Incorrect API key provided.*OPENAI_API_KEY") as info:
        editor(fake, tmp_path, fallback="template").class_caption("dog")
    assert info.value.transient is False
    assert len(fake.requests) == 1
    assert "sk-test" not in str(info.value)


def test_connection_refused_bounded(tmp_path):
    server = FakeOpenAI()
    server.stop()  # port now closed
    e = editor(server, tmp_path, max_attempts=3)
    with pytest.raises(CaptionEngineError, match="after 3 attempt.*cannot connect"):
        e.class_caption("dog")
    assert e.request_count == 3


def test_api_key_from_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    LLMEditor(fake.url, cache=None, timeout=10).class_caption("dog")
    assert fake.headers[-1]["Authorization"] == "Bearer sk-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    LLMEditor(fake.url, cache=None, timeout=10).class_caption("cat")
    assert "Authorization" not in fake.headers[-1]


def test_bad_options_and_bad_cache(tmp_path):
    with pytest.raises(ConfigError) as info:
        get_editor("llm", base_url="localhost:8000", timeout=0, fallback="yes", system_prompts={"fusion": "x"})
    text = str(info.value)
    assert "http://" in text and "timeout" in text and "fallback" in text and "fusion" in text
    bad = tmp_path / "cache.json"
    bad.write_text("[1, 2]")
    with pytest.raises(CaptionEngineError, match="not a caption cache"):
        LLMEditor("http://127.0.0.1:9/v1", cache=bad)


def test_shipped_prompts_ask_for_one_line():
    for op in ("edit", "fuse", "class_caption"):
        text = default_system_prompt(op)
        assert "single line" in text and "caption only" in text


def test_default_temperature_is_zero(fake, tmp_path):
    e = LLMEditor(fake.url, cache=None, timeout=10)
    assert e.temperature == 0.0
    e.class_caption("dog")
    assert fake.requests[-1]["temperature"] == 0
    assert get_editor("llm", base_url=fake.url).temperature == 0.0
    assert get_editor("llm", base_url=fake.url, temperature=0.5).temperature == 0.5


def test_cache_is_appended_per_caption_not_rewritten(fake, tmp_path):
    import os

    path = tmp_path / "c.jsonl"
    e = get_editor("llm", base_url=fake.url, model="fake", cache_path=path, timeout=10)
    e.class_caption("dog")
    inode, sizes = os.stat(path).st_ino, [path.stat().st_size]
    for label in ("cat", "owl", "cow"):
        e.class_caption(label)
        sizes.append(path.stat().st_size)
    assert os.stat(path).st_ino == inode  # the same file, appended to (a rewrite would replace it)
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 4 and json.loads(lines[0]) == {"format": "seeingsounds-caption-cache/2"}
    growth = [b - a for a, b in zip(sizes, sizes[1:])]
    assert growth == [len(line.encode()) + 1 for line in lines[2:]]  # each caption costs exactly its line
    # an interrupted append leaves a torn last line: dropped, the file compacted, the rest kept
    with open(path, "ab") as f:
        f.write(b'{"key": "abc", "capt')
    again = get_editor("llm", base_url=fake.url, model="fake", cache_path=path, timeout=10)
    assert [again.class_caption(x) for x in ("dog", "cat", "owl", "cow")] == [
        f"LLM<Class label: {x}>" for x in ("dog", "cat", "owl", "cow")]
    assert again.request_count == 0
    assert path.read_text().splitlines() == lines and not list(tmp_path.glob(".*.tmp"))


def test_cache_shared_by_two_editors_and_legacy_file_converted(fake, tmp_path):
    path = tmp_path / "shared.jsonl"
    a = editor(fake, tmp_path, cache=path)
    b = editor(fake, tmp_path, cache=path)
    a.fuse("a train", "an owl")
    assert b.fuse("a train", "an owl") == "LLM<Caption 1: a train | Caption 2: an owl>" and b.request_count == 0
    legacy = tmp_path / "old.llm-cache.json"
    key = a.cache_key("class_caption", ("dog",))
    legacy.write_text(json.dumps({"format": "seeingsounds-caption-cache/1",
                                  "entries": {key: {"operation": "class_caption", "caption": "an old dog"}}}, indent=1))
    old = editor(fake, tmp_path, cache=legacy)
    assert old.class_caption("dog") == "an old dog" and old.request_count == 0
    lines = [json.loads(x) for x in legacy.read_text().splitlines()]
    assert lines[0] == {"format": "seeingsounds-caption-cache/2"} and lines[1]["key"] == key


@pytest.mark.parametrize("url", ["http://exa mple.com/v1", "http://[::1/v1", "http://127.0.0.1:99999/v1", "https:///v1"])
def test_invalid_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="base_url"):
        LLMEditor(url, cache=None)


def test_invalid_url_at_request_time_is_a_config_error(fake, tmp_path, monkeypatch):
    import http.client
    import urllib.request

    def invalid(*args, **kwargs):
        raise http.client.InvalidURL("nonnumeric port: 'x'")

    monkeypatch.setattr(urllib.request, "urlopen", invalid)
    e = editor(fake, tmp_path, fallback="template")
    with pytest.raises(ConfigError, match="not a usable URL.*--base-url"):
        e.class_caption("dog")
    assert e.request_count == 1 and e.fallback_count == 0


def test_ssl_error_is_permanent_not_retried_and_no_fallback(fake, tmp_path):
    https = fake.url.replace("http://", "https://")  # TLS handshake against a plain-HTTP server fails
    e = LLMEditor(https, cache=tmp_path / "c.jsonl", timeout=2, max_attempts=3, backoff=0.01, fallback="template")
    with pytest.raises(CaptionEngineError, match="TLS/SSL") as info:
        e.class_caption("dog")
    assert info.value.transient is False and e.request_count == 1 and e.fallback_count == 0
    assert not (tmp_path / "c.jsonl").exists()


def test_http_408_is_retried(fake, tmp_path):
    fake.mode = "408once"
    e = editor(fake, tmp_path)
    assert e.class_caption("dog") == "LLM<Class label: dog>"
    assert len(fake.requests) == 2 and e.request_count == 2
