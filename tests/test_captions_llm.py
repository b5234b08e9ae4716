"""LLM caption engine against a local fake OpenAI-compatible server (no outside network)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seeingsounds.captions.edit import get_editor
from seeingsounds.captions.llm import CaptionEngineError, LLMEditor, default_system_prompt
from seeingsounds.errors import ConfigError


#: the "trickle" modes send this many bytes at 2 bytes/s: a minute
TRICKLE_BYTES = 120
#: the "huge" modes send this many bytes (the tests cap replies at 1 MiB)
HUGE_BYTES = 64 << 20
#: 200 replies that are not a usable caption: content type, body
BAD_REPLIES = {
    "html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"),
    "not-utf8": ("application/json", b'{"choices": [{"message": {"content": "caf\xe9 \xff"}}]}'),
    "deep": ("application/json", b"[" * 200_000),
    "list": ("application/json", b"[1, 2, 3]"),
    "string-choices": ("application/json", b'{"choices": "a dog"}'),
    "null-content": ("application/json", b'{"choices": [{"message": {"content": null}}]}'),
    "refusal": ("application/json",
                b'{"choices": [{"message": {"content": null, "refusal": "I cannot help with that"}}]}'),
    "cut-short": ("application/json",
                  b'{"choices": [{"message": {"content": "a dog barking at the"}, "finish_reason": "length"}]}'),
    "empty": ("application/json", b""),
}


class FakeOpenAI:
    """Chat-completions server on 127.0.0.1; ``mode`` picks the behaviour, ``requests`` records bodies."""

    def __init__(self):
        self.mode = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.redirect_to = ""  # Location of the "3xx" modes
        self.sent = 0  # body bytes written by the "trickle" and "huge" modes before the client left
        self.done = threading.Event()  # set when such a reply has ended (sent all, or the client left)
        self.closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # where a client that follows a redirect of its POST ends up (urllib: GET)
                fake.headers.append(dict(self.headers))
                reply = {"choices": [{"message": {"content": "a caption from the redirect target"}}]}
                return self._send(200, json.dumps(reply).encode())

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
                if mode.isdigit() and mode.startswith("3"):  # a redirect to fake.redirect_to
                    self.send_response(int(mode))
                    self.send_header("Location", fake.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if mode in BAD_REPLIES:
                    content_type, payload = BAD_REPLIES[mode]
                    return self._send(200, payload, content_type)
                if mode == "short-body":  # announces more than it sends, then closes (HTTP/1.0)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "500")
                    self.end_headers()
                    self.wfile.write(b'{"choices": [{"message": {"content": "half"}}]}')
                    return None
                if mode in ("trickle-body", "trickle-headers"):
                    return self._trickle(mode)
                if mode in ("huge-announced", "huge-streamed", "huge-error"):
                    return self._huge(announced=mode != "huge-streamed", code=500 if mode == "huge-error" else 200)
                raise AssertionError(mode)

            def _trickle(self, mode):
                """A valid reply whose body or headers come one byte every 0.5 s (TRICKLE_BYTES: a minute)."""
                body = b'{"choices": [{"message": {"content": "a slow caption"}}]}'
                if mode == "trickle-body":
                    body = body.ljust(TRICKLE_BYTES)
                    fast = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                    slow, rest = body, b""
                else:
                    fast = b"HTTP/1.0 200 OK\r\n"
                    slow = b"X-Pad: " + b"p" * (TRICKLE_BYTES - 9) + b"\r\n"
                    rest = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                try:
                    self.wfile.write(fast)
                    for i in range(len(slow)):  # bounded: TRICKLE_BYTES steps
                        if fake.closing.wait(0.5):
                            return
                        self.wfile.write(slow[i : i + 1])
                        fake.sent += 1
                    self.wfile.write(rest)
                except OSError:  # the client hung up
                    pass
                finally:
                    fake.done.set()

            def _huge(self, announced, code):
                """A valid reply padded to HUGE_BYTES, announced by Content-Length or not (read until close)."""
                head = b'{"choices": [{"message": {"content": "a huge caption"}}], "pad": "'
                chunk, tail = b"x" * 65536, b'"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                if announced:
                    self.send_header("Content-Length", str(HUGE_BYTES))
                self.end_headers()
                try:
                    self.wfile.write(head)
                    fake.sent = len(head)
                    while fake.sent + len(chunk) + len(tail) <= HUGE_BYTES and not fake.closing.is_set():
                        self.wfile.write(chunk)
                        fake.sent += len(chunk)
                    pad = HUGE_BYTES - fake.sent - len(tail)
                    self.wfile.write(b"x" * pad + tail)
                    fake.sent += pad + len(tail)
                except OSError:  # the client hung up
                    pass
                finally:
                    fake.done.set()

            def _send(self, code, payload, content_type="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
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
        self.closing.set()
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


def test_cache_shared_by_two_editors(fake, tmp_path):
    path = tmp_path / "shared.jsonl"
    a = editor(fake, tmp_path, cache=path)
    b = editor(fake, tmp_path, cache=path)
    a.fuse("a train", "an owl")
    assert b.fuse("a train", "an owl") == "LLM<Caption 1: a train | Caption 2: an owl>" and b.request_count == 0


@pytest.mark.parametrize("url", ["http://exa mple.com/v1", "http://[::1/v1", "http://127.0.0.1:99999/v1", "https:///v1"])
def test_invalid_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="base_url"):
        LLMEditor(url, cache=None)


def test_invalid_url_at_request_time_is_a_config_error(fake, tmp_path, monkeypatch):
    import http.client
    import urllib.request

    def invalid(*args, **kwargs):
        raise http.client.InvalidURL("nonnumeric port: 'x'")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", invalid)
    e = editor(fake, tmp_path, fallback="template")
    with pytest.raises(ConfigError, match="not a usable URL.*base URL"):
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


def cached_captions(path) -> list[str]:
    """The captions a cache file holds (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line)["caption"] for line in path.read_text().splitlines()[1:] if line.strip()]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_is_refused_and_the_key_never_leaves_the_endpoint(fake, tmp_path, code):
    other = FakeOpenAI()  # another port: another origin
    try:
        fake.mode, fake.redirect_to = str(code), f"{other.url}/chat/completions"
        e = editor(fake, tmp_path, fallback="template")
        with pytest.raises(CaptionEngineError, match=f"HTTP {code} redirect to {other.url}/chat/completions") as info:
            e.class_caption("dog")
        assert info.value.transient is False and e.fallback_count == 0  # a configuration problem: not hidden
        assert other.headers == [] and other.requests == []  # the other origin got no request, so no key
        assert len(fake.requests) == 1 and fake.headers[0]["Authorization"] == "Bearer sk-test"
        assert cached_captions(tmp_path / "llm-cache.json") == []
    finally:
        other.stop()


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers"])
def test_timeout_bounds_the_whole_request_against_a_trickle(fake, tmp_path, mode):
    fake.mode = mode  # a valid reply, one byte every 0.5 s: a client bounded per read only waits a minute
    e = editor(fake, tmp_path, timeout=1, max_attempts=1)
    with pytest.raises(CaptionEngineError, match="within the timeout of 1 s"):
        e.class_caption("dog")
    assert fake.done.wait(10)  # the server notices the client has gone at its next byte
    assert fake.sent < TRICKLE_BYTES  # cut off before the end: no bound on time, one on bytes
    assert cached_captions(tmp_path / "llm-cache.json") == []


@pytest.mark.parametrize(("mode", "message"), [
    ("huge-announced", "reply of 67108864 bytes refused unread"),
    ("huge-streamed", "reply larger than 1048576 bytes refused"),
    ("huge-error", "HTTP 500: {\"choices"),  # an error body is read only for its first 2 kB
])
def test_oversized_reply_refused_without_reading_it_all(fake, tmp_path, mode, message):
    fake.mode = mode  # 64 MiB of valid JSON, with or without Content-Length
    e = editor(fake, tmp_path, max_attempts=1, max_reply_bytes=1 << 20)
    with pytest.raises(CaptionEngineError, match=re.escape(message)):
        e.class_caption("dog")
    assert fake.done.wait(10)
    assert fake.sent < HUGE_BYTES // 2  # the client hung up early (socket buffers hold a few MiB at most)
    assert cached_captions(tmp_path / "llm-cache.json") == []


@pytest.mark.parametrize(("mode", "message"), [
    ("html", r"not JSON \(text/html; .*'<html><body><h1>502 Bad Gateway"),
    ("not-utf8", "not JSON .*UnicodeDecodeError"),
    ("deep", "not JSON .*RecursionError"),
    ("list", "no choices"),
    ("string-choices", "no choices"),
    ("null-content", "content is NoneType, not text"),
    ("refusal", "the model refused: 'I cannot help with that'"),
    ("cut-short", "cut short by the token limit"),
    ("empty", "not JSON"),
    ("short-body", "reply cut short: 47 of 500 bytes"),
])
def test_unusable_replies_give_one_readable_error_and_nothing_cached(fake, tmp_path, mode, message):
    fake.mode = mode
    with pytest.raises(CaptionEngineError, match=message) as info:  # no other exception type: no traceback
        editor(fake, tmp_path, max_attempts=2).class_caption("dog")
    assert "after 2 attempt" in str(info.value) and "\n" not in str(info.value)
    assert len(fake.requests) == 2
    assert cached_captions(tmp_path / "llm-cache.json") == []


def test_error_hints_name_only_settings_that_exist(fake, tmp_path, monkeypatch):
    from seeingsounds.cli.main import build_parser

    fake.mode = "401"
    with pytest.raises(CaptionEngineError) as info:
        editor(fake, tmp_path).class_caption("dog")
    message = str(info.value)
    assert "OPENAI_API_KEY" in message and "--api-key" not in message
    fake.mode = "ok"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")  # the setting it names is the one the client reads
    LLMEditor(fake.url, cache=None, timeout=10).class_caption("dog")
    assert fake.headers[-1]["Authorization"] == "Bearer sk-from-env"
    parser = build_parser()
    for option in re.findall(r"--[a-z][a-z-]*", message):  # any option a hint names parses
        _, unknown = parser.parse_known_args(["captions", "init", "--labels", "l.txt", "-o", "c.json", option, "x"])
        assert option not in unknown
    with pytest.raises(SystemExit):  # and the key is not taken on the command line (ps, shell history)
        parser.parse_args(["captions", "init", "--labels", "l.txt", "-o", "c.json", "--api-key", "sk"])


def test_deadline_timer_never_outlives_the_attempt(fake, tmp_path):
    import threading as _threading

    before = _threading.active_count()
    e = editor(fake, tmp_path, timeout=30)
    for label in ("dog", "cat", "owl"):
        e.class_caption(label)
    assert e.request_count == 3
    deadline = time.monotonic() + 5
    while _threading.active_count() > before and time.monotonic() < deadline:  # cancelled timers end promptly
        time.sleep(0.01)
    assert _threading.active_count() <= before


def test_cli_refuses_a_cache_that_is_the_output_or_an_input_before_any_request(fake, tmp_path, monkeypatch, capsys):
    from seeingsounds.cli.main import main

    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    labels = work / "labels.txt"
    labels.write_text("dog\ncat\n")
    out = work / "captions.json"
    (work / "link.jsonl").symlink_to(out)  # a link to the output, dangling until it is written
    (work / "labels-link.txt").symlink_to(labels)
    monkeypatch.chdir(work / "sub")  # relative spellings from another folder
    init = ["captions", "init", "--labels", "../labels.txt", "-o", str(out), "--engine", "llm",
            "--base-url", fake.url, "--model", "fake", "--timeout", "10"]
    for cache in ("../captions.json", str(out), "./../sub/../captions.json", "../link.jsonl"):
        assert main([*init, "--cache", cache]) == 2
        err = capsys.readouterr().err
        assert "output file (-o)" in err and "also an input" in err and "captions.json" in err
        assert not out.exists()
    out.write_text('{"dog": ["a dog"]}')  # an existing output replaced with --force: kept as it was
    assert main([*init, "--force", "--cache", "../link.jsonl"]) == 2
    assert "output file (-o)" in capsys.readouterr().err and out.read_text() == '{"dog": ["a dog"]}'
    for cache in ("../labels.txt", "../labels-link.txt"):  # the cache is never one of the inputs either
        assert main([*init, "--force", "--cache", cache]) == 2
        assert "caption cache (--cache)" in capsys.readouterr().err and labels.read_text() == "dog\ncat\n"
    show = ["captions", "show", "../captions.json", "--descriptions", "low-volume", "--engine", "llm",
            "--base-url", fake.url, "--model", "fake", "--timeout", "10"]
    assert main([*show, "--cache", str(out)]) == 2
    assert "caption cache (--cache)" in capsys.readouterr().err
    assert main([*show, "-o", "../sub/../captions.json"]) == 2  # show's -o is never its captions file
    assert "output file (-o)" in capsys.readouterr().err
    assert fake.requests == [] and out.read_text() == '{"dog": ["a dog"]}'
    assert main([*init, "--force", "--cache", "llm.jsonl"]) == 0  # a distinct cache works
    assert len(fake.requests) == 2 and len(cached_captions(work / "sub" / "llm.jsonl")) == 2


def test_api_key_and_url_credentials_checked_without_repeating_them(fake, tmp_path, monkeypatch):
    for key in ("sk-secret\r\nX-Injected: 1", "sk-se cret", "sk-sécret"):
        with pytest.raises(ConfigError, match="API key") as info:
            editor(fake, tmp_path, api_key=key)
        assert "secret" not in str(info.value) and "cret" not in str(info.value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret\x1b[0m")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as info:
        LLMEditor(fake.url, cache=None)
    assert "secret" not in str(info.value)
    monkeypatch.setenv("OPENAI_API_KEY", "  sk-pasted\n")  # a pasted key's surrounding whitespace is dropped
    LLMEditor(fake.url, cache=None, timeout=10).class_caption("dog")
    assert fake.headers[-1]["Authorization"] == "Bearer sk-pasted"
    with pytest.raises(ConfigError, match=r"http://\*\*\*@127.0.0.1:\d+/v1 carries credentials") as info:
        LLMEditor(fake.url.replace("http://", "http://me:hunter2@"), cache=None)
    assert "hunter2" not in str(info.value) and "me:" not in str(info.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("name", "text"), [
    ("captions.yaml", "dog: a dog barking\n"),
    ("captions.json", '{"dog": ["a dog barking"]}'),
    ("edit.txt", "Rewrite the caption.\n"),
    ("old.llm-cache.json", '{"format": "seeingsounds-caption-cache/1", "entries": {}}'),  # the 0.x format before
    ("deep.jsonl", "[" * 100_000),  # too deep for json: not a cache either
])
def test_a_file_that_is_not_a_cache_is_refused_and_never_called_deletable(tmp_path, name, text):
    path = tmp_path / name  # e.g. the captions file given as the cache by mistake
    path.write_text(text)
    with pytest.raises(CaptionEngineError, match="is not a caption cache") as info:
        LLMEditor("http://127.0.0.1:9/v1", cache=path)
    assert "delete" not in str(info.value) and path.read_text() == text
