"""Caption engine backed by any OpenAI-compatible chat endpoint (the paper used GPT-4o).

``POST {base_url}/chat/completions`` with ``model``, ``messages`` (a system prompt per operation,
shipped in ``captions/prompts/*.txt``) and ``temperature``. The API key comes from ``api_key`` or
the ``OPENAI_API_KEY`` environment variable (no header when neither is set: local servers).

Every caption produced is stored in a JSON cache file (key: operation, inputs, model,
temperature, SHA-256 of the system prompt), written atomically, so a rerun answers from the file
without any request and is reproducible offline.

Failures (connection refused, timeout, HTTP 429/5xx, malformed JSON, no ``choices``/``content``,
an empty or multi-line answer) are retried ``max_attempts`` times in all with exponential backoff,
then raise :class:`CaptionEngineError` — or, only with ``fallback="template"``, log a warning,
count it in :attr:`LLMEditor.fallback_count` and return the template engine's caption (not cached,
so a later run asks the endpoint again). HTTP 4xx other than 429 (bad key, unknown model) is a
configuration problem: never retried and never replaced by a fallback.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from seeingsounds.captions.edit import CaptionEditor
from seeingsounds.captions.store import atomic_write_text, normalise_text
from seeingsounds.errors import ConfigError, SeeingSoundsError

__all__ = ["LLMEditor", "CaptionEngineError", "default_system_prompt", "OPERATIONS", "DEFAULT_BASE_URL"]

logger = logging.getLogger(__name__)

OPERATIONS = ("edit", "fuse", "class_caption")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o"
CACHE_FORMAT = "seeingsounds-caption-cache/1"
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
    """JSON file of produced captions; ``path=None`` keeps them in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, dict[str, Any]] = self._read() if self.path else {}

    def _read(self) -> dict[str, dict[str, Any]]:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CaptionEngineError(
                f"caption cache {self.path} is unreadable ({exc}): "
                "fix or delete it (its captions will be requested again)"
            ) from None
        if isinstance(data, dict) and data.get("format") == CACHE_FORMAT and isinstance(data.get("entries"), dict):
            return data["entries"]
        raise CaptionEngineError(
            f"{self.path} is not a caption cache ({CACHE_FORMAT}): pass another --cache file or delete it"
        )

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry.get("caption") if isinstance(entry, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.entries[key] = record
        if self.path is None:
            return
        merged = {**self._read(), **self.entries}  # keep what another run added meanwhile
        self.entries = merged
        atomic_write_text(
            self.path, json.dumps({"format": CACHE_FORMAT, "entries": merged}, indent=1, ensure_ascii=False) + "\n"
        )


def _clean_reply(body: bytes, max_chars: int) -> str:
    """The caption in a chat-completions reply, or :class:`_Retryable` saying what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Retryable(f"reply is not JSON ({exc})") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable(f"reply has no choices[0].message.content: {body[:200]!r}") from None
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
    """f, g and class captions written by an OpenAI-compatible chat model, cached to a JSON file.

    ``system_prompts`` overrides the shipped prompts per operation (``edit``, ``fuse``,
    ``class_caption``). ``cache``: the JSON cache file (``None``: in memory only).
    ``fallback="template"``: on failure use :class:`TemplateEditor` and warn (see module docstring).
    """

    name = "llm"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        temperature: float = 0.7,
        timeout: float = 30.0,
        max_attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        system_prompts: Mapping[str, str] | None = None,
        cache: str | os.PathLike[str] | None = None,
        fallback: str | None = None,
        max_chars: int = 300,
    ):
        problems = []
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            problems.append(f"base_url {base_url!r} must start with http:// or https://")
        if not isinstance(model, str) or not model.strip():
            problems.append("model must name the chat model (e.g. gpt-4o)")
        if not 0 <= float(temperature) <= 2:
            problems.append(f"temperature {temperature} must be between 0 and 2")
        if not float(timeout) > 0:
            problems.append(f"timeout {timeout} must be a positive number of seconds")
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
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.temperature = float(temperature)
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_chars = int(max_chars)
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
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - user URL
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}{detail}", wait=_retry_after(exc)) from None
            hint = " (check the API key: --api-key or OPENAI_API_KEY)" if exc.code in (401, 403) else ""
            if exc.code == 404:
                hint = " (check --base-url, it usually ends in /v1, and --model)"
            raise CaptionEngineError(
                f"caption engine {self.endpoint} refused {operation}: HTTP {exc.code}{detail}{hint}", transient=False
            ) from None
        except urllib.error.URLError as exc:
            raise _Retryable(f"cannot connect: {exc.reason}") from None
        except (TimeoutError, socket.timeout):
            raise _Retryable(f"no reply within the timeout of {self.timeout:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise _Retryable(f"connection failed: {type(exc).__name__}: {exc}") from None
        return _clean_reply(payload, self.max_chars)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()[:2000].decode("utf-8", "replace")
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
