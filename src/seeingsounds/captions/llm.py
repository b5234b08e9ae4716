"""Caption engine backed by any OpenAI-compatible chat endpoint (the paper used GPT-4o).

``POST {base_url}/chat/completions`` with ``model``, ``messages`` (a system prompt per operation,
shipped in ``captions/prompts/*.txt``) and ``temperature``. The API key comes from ``api_key`` or
the ``OPENAI_API_KEY`` environment variable (no header when neither is set: local servers).

The default temperature is 0 (the most reproducible sampling an endpoint offers). Every caption
produced is appended to a JSON Lines cache file (key: operation, inputs, model, temperature,
SHA-256 of the system prompt; one line per caption, so the I/O grows linearly with the captions;
a torn line from an interruption is dropped and the file compacted atomically), so a rerun answers
from the file without any request and is reproducible offline.

Failures (connection refused, timeout, HTTP 408/429/5xx, a reply too large, cut short, not JSON,
without ``choices``/``content``, refused by the model, empty or multi-line) are retried
``max_attempts`` times in all with exponential backoff, then raise :class:`CaptionEngineError` —
or, only with ``fallback="template"``, log a warning, count it in :attr:`LLMEditor.fallback_count`
and return the template engine's caption (not cached, so a later run asks the endpoint again).
Configuration problems are never retried and never replaced by a fallback: HTTP 3xx (a redirect),
4xx other than 408/429 (bad key, unknown model) and TLS/SSL errors (certificate, http vs https)
raise a permanent :class:`CaptionEngineError`; a base URL that is not a URL (or carries
``user:password@``) and an API key that cannot go in a header raise
:class:`~seeingsounds.errors.ConfigError`, without repeating the secret.

Every request is bounded, whatever the server does:

* **No redirects.** A 3xx reply is a permanent error naming the ``Location``: the request (and its
  ``Authorization: Bearer`` key) is never sent on to another URL, so a redirect to another origin
  never receives the key and its reply is never cached. Point the base URL at the final address.
* **One deadline per attempt.** ``timeout`` bounds the whole attempt (connection, TLS handshake,
  headers, body), not only each socket read: when it passes, the connection is shut down, so a
  server trickling a byte at a time is cut off. (Host-name resolution is outside it.)
* **A size cap.** A reply larger than ``max_reply_bytes`` (announced by ``Content-Length`` or
  found while reading in chunks) is refused without reading the rest; an error body is read only
  up to 2 kB, for the message.

A reply that fails any check is never written to the cache.

The client is the standard library's ``urllib``, not the ``openai`` package: ``openai`` sends its
requests through an ``httpx`` client that follows redirects (``httpx`` drops the key on another
origin, but the other address's reply would still be taken and cached), whose timeouts apply per
connect/read/write operation (no total deadline: encode/httpx#1450), and which reads a whole reply
without a size limit; it would need the same wrapping, and is a dependency the rest does not need.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from seeingsounds.captions.edit import CaptionEditor
from seeingsounds.captions.store import atomic_write_text, normalise_text
from seeingsounds.errors import ConfigError, SeeingSoundsError
from seeingsounds.paths import disk_full_as_error

__all__ = ["LLMEditor", "CaptionEngineError", "default_system_prompt", "OPERATIONS", "DEFAULT_BASE_URL"]

logger = logging.getLogger(__name__)

OPERATIONS = ("edit", "fuse", "class_caption")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o"
#: HTTP codes worth another attempt besides 5xx: request timeout, rate limit
RETRIED_HTTP_CODES = (408, 429)
#: largest reply accepted (a one-line caption's reply is a few kB; more is refused unread)
DEFAULT_MAX_REPLY_BYTES = 1 << 20
#: bytes of an error reply read for the message
ERROR_DETAIL_BYTES = 2000
_READ_CHUNK = 64 * 1024
CACHE_FORMAT = "seeingsounds-caption-cache/2"
_QUOTES = "\"'`“”‘’"


class CaptionEngineError(SeeingSoundsError):
    """The caption engine could not produce a caption (the message names endpoint, operation, error).

    ``transient`` is False when the endpoint refused the request (HTTP 4xx other than 429): a
    configuration problem that retrying or falling back would only hide.
    """

    def __init__(self, message: str, transient: bool = True):
        super().__init__(message)
        self.transient = transient


class _Retryable(Exception):
    """A failure worth another attempt (network, 429/5xx, a bad reply)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


def default_system_prompt(operation: str) -> str:
    """The shipped system prompt for ``operation`` (``edit``, ``fuse`` or ``class_caption``)."""
    if operation not in OPERATIONS:
        raise ConfigError(f"unknown caption operation {operation!r}: choose one of {', '.join(OPERATIONS)}")
    return resources.files("seeingsounds.captions").joinpath("prompts", f"{operation}.txt").read_text("utf-8")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Cache:
    """Produced captions in a JSON Lines file, appended one line per caption; ``path=None``: memory only.

    The first line is a header (``{"format": CACHE_FORMAT}``), each further line one record with
    its ``key``. A caption costs one appended line (no rewrite of the file: linear I/O for tens of
    thousands of fusions), written with a single ``write`` + ``fsync``, so an interruption loses at
    most the line being written; such a torn last line is ignored on read, and the file is then
    compacted atomically (temp file + rename). Lines another process appends meanwhile are picked
    up on a miss.
    """

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, dict[str, Any]] = {}
        self._offset = 0
        if self.path is not None:
            self._load()

    def _unreadable(self, exc: Exception) -> CaptionEngineError:
        return CaptionEngineError(f"caption cache {self.path} cannot be read ({exc}): "
                                  "fix its permissions or choose another cache file")

    def _not_a_cache(self) -> CaptionEngineError:
        # never "delete it": the file may be the user's captions, labels or prompts given by mistake
        return CaptionEngineError(
            f"{self.path} is not a caption cache ({CACHE_FORMAT}): choose another cache file, left as it is")

    def _load(self) -> None:
        assert self.path is not None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._unreadable(exc) from None
        if not raw.strip():
            self._compact()
            return
        first_line = raw.split(b"\n", 1)[0]
        try:
            header = json.loads(first_line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            header = None
        if not (isinstance(header, dict) and header.get("format") == CACHE_FORMAT):
            raise self._not_a_cache()
        if self._parse(raw, first=True):
            self._compact()

    def _parse(self, raw: bytes, *, first: bool) -> bool:
        """Read complete lines of ``raw`` (from :attr:`_offset`); True when a torn line was skipped."""
        end = raw.rfind(b"\n") + 1
        torn = raw[end:].strip() != b""
        lines = raw[:end].split(b"\n")
        if first:
            header, lines = (lines[0] if lines else b""), lines[1:]
            try:
                ok = json.loads(header.decode("utf-8")).get("format") == CACHE_FORMAT
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                ok = False
            if not ok:
                raise self._not_a_cache()
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                self.entries[str(record["key"])] = record
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                torn = True  # a damaged line: its caption is asked again, the rest is kept
        self._offset += end
        return torn

    def _compact(self) -> None:
        """Rewrite the file atomically with one line per entry (after a torn line)."""
        assert self.path is not None
        lines = [json.dumps({"format": CACHE_FORMAT}, ensure_ascii=False)]
        lines += [json.dumps({"key": k, **{f: v for f, v in r.items() if f != "key"}}, ensure_ascii=False)
                  for k, r in self.entries.items()]
        text = "\n".join(lines) + "\n"
        atomic_write_text(self.path, text)
        self._offset = len(text.encode("utf-8"))

    def _refresh(self) -> None:
        """Pick up lines appended by another process since we last read."""
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                tail = f.read()
        except FileNotFoundError:
            return
        if tail:
            self._parse(tail, first=False)

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        if entry is None and self.path is not None:
            self._refresh()
            entry = self.entries.get(key)
        return entry.get("caption") if isinstance(entry, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        if self.path is None:
            self.entries[key] = record
            return
        if not self.path.exists():
            self._compact()
        self._refresh()
        self.entries[key] = record
        line = (json.dumps({"key": key, **record}, ensure_ascii=False) + "\n").encode("utf-8")
        with disk_full_as_error(self.path.parent, writing=self.path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                # one write on an O_APPEND file: lines of several writers do not interleave
                written = os.write(fd, line)
                if written < len(line):  # the disk filled up: the next write says so (a torn line is ignored)
                    os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
        # _offset stays: the next refresh re-reads this line too (harmless), and so never lands
        # inside a line another process appended at the same moment


def _clean_reply(body: bytes, max_chars: int, content_type: str = "") -> str:
    """The caption in a chat-completions reply, or :class:`_Retryable` saying what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        kind = content_type.split(";")[0].strip() or "no Content-Type"
        start = normalise_text(body[:120].decode("utf-8", "replace"))
        raise _Retryable(f"reply is not JSON ({kind}; {type(exc).__name__}: {exc}); it starts {start!r}") from None
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content = message["content"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable(f"reply has no choices[0].message.content: {body[:200]!r}") from None
    refusal = message.get("refusal") if isinstance(message, dict) else None
    if content is None and isinstance(refusal, str) and refusal.strip():
        raise _Retryable(f"the model refused: {normalise_text(refusal)[:200]!r}")
    if isinstance(choice, dict) and choice.get("finish_reason") == "length":
        raise _Retryable(f"reply was cut short by the token limit: {str(content)[:200]!r}")
    if not isinstance(content, str):
        raise _Retryable(f"reply content is {type(content).__name__}, not text")
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    if not lines:
        raise _Retryable("reply caption is empty")
    if len(lines) > 1:
        raise _Retryable(f"reply has {len(lines)} lines instead of one caption: {content[:200]!r}")
    text = lines[0]
    if text.lower().startswith("caption:"):
        text = text[len("caption:") :]
    text = normalise_text(text).strip(_QUOTES).strip()
    if not text:
        raise _Retryable("reply caption is empty")
    if len(text) > max_chars:
        raise _Retryable(f"reply caption has {len(text)} characters (at most {max_chars}): {text[:80]!r}...")
    return text


class LLMEditor(CaptionEditor):
    """f, g and class captions written by an OpenAI-compatible chat model, cached to a JSON Lines file.

    ``system_prompts`` overrides the shipped prompts per operation (``edit``, ``fuse``,
    ``class_caption``). ``cache``: the JSON cache file (``None``: in memory only).
    ``fallback="template"``: on failure use :class:`TemplateEditor` and warn (see module docstring).
    ``timeout``: seconds for a whole attempt; ``max_reply_bytes``: the largest reply accepted.
    """

    name = "llm"

    def __init__(
        self,
        base_url: str | None = DEFAULT_BASE_URL,
        model: str | None = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        temperature: float = 0.0,
        timeout: float = 30.0,
        max_attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        system_prompts: Mapping[str, str] | None = None,
        cache: str | os.PathLike[str] | None = None,
        fallback: str | None = None,
        max_chars: int = 300,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        cache_path: str | os.PathLike[str] | None = None,
    ):
        problems = []
        if cache is not None and cache_path is not None and Path(cache) != Path(cache_path):
            problems.append(f"cache {cache} and cache_path {cache_path} name two files: give one")
        cache = cache if cache is not None else cache_path
        if base_url is None:
            base_url = DEFAULT_BASE_URL
        if model is None:
            model = DEFAULT_MODEL
        url_problem = _url_problem(base_url)
        if url_problem:
            problems.append(url_problem)
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY")
        api_key = api_key.strip() if isinstance(api_key, str) else api_key
        key_problem = _api_key_problem(api_key)
        if key_problem:
            problems.append(key_problem)
        if not isinstance(model, str) or not model.strip():
            problems.append("model must name the chat model (e.g. gpt-4o)")
        if not 0 <= float(temperature) <= 2:
            problems.append(f"temperature {temperature} must be between 0 and 2")
        if not float(timeout) > 0:
            problems.append(f"timeout {timeout} must be a positive number of seconds")
        if int(max_reply_bytes) < 1:
            problems.append(f"max_reply_bytes {max_reply_bytes} must be at least 1")
        if int(max_attempts) < 1:
            problems.append(f"max_attempts {max_attempts} must be at least 1")
        if float(backoff) < 0 or float(max_backoff) < 0:
            problems.append("backoff and max_backoff must be >= 0 seconds")
        if fallback not in (None, "template"):
            problems.append(f"fallback {fallback!r} must be None or 'template'")
        unknown = sorted(set(system_prompts or {}) - set(OPERATIONS))
        if unknown:
            problems.append(f"system_prompts has unknown operations {unknown}: use {', '.join(OPERATIONS)}")
        if problems:
            raise ConfigError("LLM caption engine: " + "; ".join(problems))
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key = api_key
        self.temperature = float(temperature)
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_chars = int(max_chars)
        self.max_reply_bytes = int(max_reply_bytes)
        self.fallback = fallback
        self.system_prompts = {op: (system_prompts or {}).get(op) or default_system_prompt(op) for op in OPERATIONS}
        self._cache = _Cache(cache)
        #: captions answered by the template engine because the endpoint failed
        self.fallback_count = 0
        #: HTTP requests sent (cache hits send none)
        self.request_count = 0

    @property
    def cache_path(self) -> Path | None:
        return self._cache.path

    # -- operations ------------------------------------------------------------------------------

    def edit(self, caption: str, description: str) -> str:
        caption, description = self._check("caption", caption), self._check("description", description)
        return self._caption("edit", (caption, description), f"Caption: {caption}\nTransformation: {description}")

    def fuse(self, caption_u: str, caption_v: str) -> str:
        u, v = self._check("first caption", caption_u), self._check("second caption", caption_v)
        return self._caption("fuse", (u, v), f"Caption 1: {u}\nCaption 2: {v}")

    def class_caption(self, label: str) -> str:
        label = self._check("class label", label)
        return self._caption("class_caption", (label,), f"Class label: {label}")

    # -- machinery -------------------------------------------------------------------------------

    @staticmethod
    def _check(what: str, value: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{what} {value!r} is empty: give some text")
        return normalise_text(value)

    def cache_key(self, operation: str, inputs: tuple[str, ...]) -> str:
        """Cache key of one caption: operation, inputs, model, temperature, system-prompt hash."""
        payload = {
            "operation": operation,
            "inputs": list(inputs),
            "model": self.model,
            "temperature": self.temperature,
            "system_prompt_sha256": _sha256(self.system_prompts[operation]),
        }
        return _sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False))

    def _caption(self, operation: str, inputs: tuple[str, ...], user: str) -> str:
        key = self.cache_key(operation, inputs)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            caption = self._request(operation, user)
        except CaptionEngineError as exc:
            if self.fallback != "template" or not exc.transient:
                raise
            from seeingsounds.captions.templates import TemplateEditor

            caption = getattr(TemplateEditor(), operation)(*inputs)
            self.fallback_count += 1
            logger.warning(
                "%s; using the template caption %r instead (fallback #%d)", exc, caption, self.fallback_count
            )
            return caption
        self._cache.put(
            key,
            {
                "operation": operation,
                "inputs": list(inputs),
                "model": self.model,
                "temperature": self.temperature,
                "system_prompt_sha256": _sha256(self.system_prompts[operation]),
                "caption": caption,
            },
        )
        return caption

    def _request(self, operation: str, user: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "temperature": self.temperature,
                "messages": [
                    {"role": "system", "content": self.system_prompts[operation]},
                    {"role": "user", "content": user},
                ],
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                return self._attempt(request, operation)
            except _Retryable as exc:
                last = str(exc)
                if attempt < self.max_attempts:
                    wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                    if exc.wait is not None:
                        wait = min(max(wait, exc.wait), self.max_backoff)
                    logger.info(
                        "caption %s attempt %d/%d failed (%s); retrying in %.1f s",
                        operation, attempt, self.max_attempts, last, wait,
                    )
                    time.sleep(wait)
        raise CaptionEngineError(
            f"caption engine {self.endpoint} failed for {operation} after {self.max_attempts} attempt(s): {last}"
        )

    def _attempt(self, request: urllib.request.Request, operation: str) -> str:
        self.request_count += 1
        with _Deadline(self.timeout) as deadline:
            try:
                with _opener(deadline).open(request, timeout=self.timeout) as response:
                    payload = _read_capped(response, self.max_reply_bytes)
                    content_type = response.headers.get("Content-Type", "")
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                if deadline.expired and not isinstance(exc, urllib.error.HTTPError):
                    raise self._too_late() from None
                raise self._failure(exc, operation) from None
        if deadline.expired:  # http.client may take a reply cut off by the deadline for a short one
            raise self._too_late()
        return _clean_reply(payload, self.max_chars, content_type)

    def _too_late(self) -> _Retryable:
        return _Retryable(f"no complete reply within the timeout of {self.timeout:g} s "
                          "(the whole request: connection, headers and body)")

    def _failure(self, exc: Exception, operation: str) -> Exception:
        """What a failed attempt raises: :class:`_Retryable`, a permanent error, or ``exc`` itself."""
        if isinstance(exc, (_Retryable, CaptionEngineError, ConfigError)):
            return exc
        if isinstance(exc, urllib.error.HTTPError):
            detail = _error_detail(exc)
            exc.close()  # the rest of its body is never read
            if 300 <= exc.code < 400:
                location = normalise_text(str(exc.headers.get("Location", "") if exc.headers else ""))[:300]
                return CaptionEngineError(
                    f"caption engine {self.endpoint} refused {operation}: HTTP {exc.code} redirect to "
                    f"{location or '(no Location)'}; redirects are not followed (the API key is never sent "
                    "on to another address): set the base URL to the final address", transient=False)
            if exc.code in RETRIED_HTTP_CODES or exc.code >= 500:
                return _Retryable(f"HTTP {exc.code}{detail}", wait=_retry_after(exc))
            hint = " (check the API key in the OPENAI_API_KEY environment variable)" if exc.code in (401, 403) else ""
            if exc.code == 404:
                hint = " (check the base URL, it usually ends in /v1, and the model name)"
            return CaptionEngineError(
                f"caption engine {self.endpoint} refused {operation}: HTTP {exc.code}{detail}{hint}", transient=False)
        if isinstance(exc, urllib.error.URLError):
            if isinstance(exc.reason, ssl.SSLError):
                return _ssl_failure(self.endpoint, operation, exc.reason)
            return _Retryable(f"cannot connect: {exc.reason}")
        if isinstance(exc, ssl.SSLError):  # during the reply, after the connection was made
            return _ssl_failure(self.endpoint, operation, exc)
        if isinstance(exc, http.client.InvalidURL):
            return ConfigError(f"caption engine: {self.endpoint} is not a usable URL ({exc}); "
                               "check the base URL (e.g. https://api.openai.com/v1)")
        if isinstance(exc, ValueError):  # urllib/http.client refusing the URL or a header (e.g. the API key)
            reason = str(exc).replace(self.api_key, "***") if self.api_key else str(exc)
            return ConfigError(f"caption engine: cannot send a request to {self.endpoint} ({reason}); "
                               "check the base URL and the API key")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return _Retryable(f"no reply within the timeout of {self.timeout:g} s")
        if isinstance(exc, (http.client.HTTPException, OSError)):
            return _Retryable(f"connection failed: {type(exc).__name__}: {exc}")
        return exc


class _Deadline:
    """Shuts down the sockets of one attempt when its time is up (a whole-request timeout).

    Each socket is watched through a duplicate descriptor (``shutdown`` acts on the connection,
    so this also ends a TLS handshake or read on the socket ``ssl`` wrapped); the duplicates are
    closed when the attempt ends, so a late timer never touches a reused descriptor.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._finished = False
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._finished = True
            for sock in self._watched:
                sock.close()
            self._watched.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._finished:
                return
            watched = sock.dup()
            self._watched.append(watched)
            if self.expired:  # the connection took the whole time
                _shutdown(watched)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._watched:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer
        pass


def _watched_connection(http_class: Any, deadline: _Deadline, *args: Any, **kwargs: Any) -> http.client.HTTPConnection:
    """``http_class(*args, **kwargs)`` whose sockets (also a proxy's) ``deadline`` watches."""
    connection = http_class(*args, **kwargs)
    create = connection._create_connection  # the hook http.client itself offers for the socket

    def create_watched(*a: Any, **kw: Any) -> socket.socket:
        sock = create(*a, **kw)
        deadline.watch(sock)
        return sock

    connection._create_connection = create_watched
    return connection


class _WatchedConnections:
    """urllib handler mixin: open connections through :func:`_watched_connection`."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
        return super().do_open(functools.partial(_watched_connection, http_class, self.deadline), req, **kwargs)


class _DeadlineHTTPHandler(_WatchedConnections, urllib.request.HTTPHandler):
    pass


class _DeadlineHTTPSHandler(_WatchedConnections, urllib.request.HTTPSHandler):
    pass


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: the 3xx reply surfaces as an :class:`urllib.error.HTTPError`."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_RefuseRedirects(), _DeadlineHTTPHandler(deadline),
                                       _DeadlineHTTPSHandler(deadline))


def _read_capped(response: http.client.HTTPResponse, limit: int) -> bytes:
    """The body of ``response``; :class:`_Retryable` as soon as it is known to exceed ``limit`` bytes."""
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise _Retryable(f"reply of {int(announced)} bytes refused unread (at most {limit} bytes: "
                         "a caption reply is a few kB)")
    chunks, size = [], 0
    while chunk := response.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _Retryable(f"reply larger than {limit} bytes refused after reading {size} bytes "
                             "(a caption reply is a few kB)")
        chunks.append(chunk)
    if (announced is not None and announced.strip().isdigit() and size < int(announced)
            and not getattr(response, "chunked", False)):  # http.client returns a short body silently
        raise _Retryable(f"reply cut short: {size} of {int(announced)} bytes")
    return b"".join(chunks)


def _url_problem(base_url: Any) -> str | None:
    """What is wrong with ``base_url`` as an endpoint URL, or None."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        return f"base_url {base_url!r} must start with http:// or https://"
    if any(c.isspace() or ord(c) < 32 for c in base_url):
        return f"base_url {base_url!r} contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"base_url {base_url!r} is not a valid URL ({exc})"
    if not parts.hostname:
        return f"base_url {base_url!r} names no host (e.g. https://api.openai.com/v1)"
    if parts.username is not None or parts.password is not None:
        shown = parts._replace(netloc=f"***@{parts.netloc.rpartition('@')[2]}").geturl()
        return (f"base_url {shown} carries credentials (user:password@): remove them and give the key "
                "in OPENAI_API_KEY")
    return None


def _api_key_problem(api_key: Any) -> str | None:
    """What makes ``api_key`` unusable in an HTTP header, without repeating the key."""
    if api_key is None or api_key == "":
        return None
    if not isinstance(api_key, str):
        return f"the API key must be text, not {type(api_key).__name__}"
    if any(c.isspace() or not c.isprintable() or ord(c) > 126 for c in api_key):
        return ("the API key (api_key or OPENAI_API_KEY) contains spaces, control characters or non-ASCII "
                "letters: copy it again")
    return None


def _ssl_failure(endpoint: str, operation: str, exc: BaseException) -> CaptionEngineError:
    """A TLS failure (certificate, protocol): permanent, retrying or falling back would only hide it."""
    return CaptionEngineError(
        f"caption engine {endpoint} failed for {operation}: TLS/SSL error ({exc}); check the certificate "
        "(a private CA: set SSL_CERT_FILE) or whether the server speaks http:// rather than https://",
        transient=False,
    )


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read(ERROR_DETAIL_BYTES).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only decoration for the message
        return ""
    try:
        message = json.loads(raw)["error"]["message"]
    except Exception:  # noqa: BLE001
        message = raw
    message = normalise_text(str(message))[:200]
    return f": {message}" if message else ""


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
