"""The caption edits f(t_y, d_j) and fusions g(t_u, t_v) of one run, kept in its folder.

``<run>/caption_edits.jsonl`` records every edit and fusion the run's caption engine produced, one
JSON line each, appended (and flushed) as they are made; a line cut short by an interruption is
ignored. ``--resume`` answers from this file, so it never asks the engine (an LLM) again and
trains on exactly the captions of the interrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from seeingsounds.audio.effects import describe_effect
from seeingsounds.captions.edit import CaptionEditor, get_editor
from seeingsounds.paths import disk_full_as_error
from seeingsounds.runs import EDITS_FILE, RunFolder
from seeingsounds.training.config import TrainConfig
from seeingsounds.training.pairs import RunCaptions


def augment_descriptions(augment: Sequence[Sequence[Any]]) -> list[tuple[str, ...]]:
    """The descriptions d_j of each effect chain T_j (one per effect), as the caption engine reads them."""
    return [tuple(describe_effect(name, **params) for name, params in chain) for chain in augment]


def engine_options(config: TrainConfig) -> dict[str, Any]:
    """The caption engine's options of a run (the LLM defaults to temperature 0: reproducible)."""
    if config.caption_engine != "llm":
        return {}
    options: dict[str, Any] = {"temperature": config.llm_temperature}
    if config.llm_base_url is not None:
        options["base_url"] = config.llm_base_url
    if config.llm_model is not None:
        options["model"] = config.llm_model
    if config.llm_cache is not None:
        options["cache"] = config.llm_cache
    return options


class RunCaptionEdits(CaptionEditor):
    """A caption engine answering from (and recording to) the run's ``caption_edits.jsonl``.

    The engine itself is built only when an answer is missing. ``write=False`` (processes other
    than the main one) reads the file and never writes it.
    """

    name = "run"

    def __init__(self, path: str | Path, engine: str, options: Mapping[str, Any] | None = None, *,
                 write: bool = True):
        self.path = Path(path)
        self.engine_name, self.options = engine, dict(options or {})
        self.write = write
        self._inner: CaptionEditor | None = None
        self._file: IO[str] | None = None
        self.answers: dict[tuple[str, ...], str] = {}
        #: edits and fusions asked of the engine (not found in the file)
        self.computed = 0
        #: the file ends in a line cut short (a kill, a full disk): the next record starts a new line
        self._cut_short = False
        if self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._cut_short = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                    key = (str(record["op"]), *map(str, record["inputs"]))
                    self.answers[key] = str(record["output"])
                except (ValueError, TypeError, KeyError):
                    continue  # a line cut short by an interruption

    @property
    def engine(self) -> CaptionEditor:
        if self._inner is None:
            self._inner = get_editor(self.engine_name, **self.options)
        return self._inner

    def _answer(self, op: str, inputs: tuple[str, ...], compute: Any) -> str:
        key = (op, *inputs)
        found = self.answers.get(key)
        if found is not None:
            return found
        out = compute()
        self.computed += 1
        self.answers[key] = out
        if self.write:
            with disk_full_as_error(self.path.parent, writing=self.path):  # a line cut short is ignored
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.path, "a", encoding="utf-8")
                    if self._cut_short:
                        self._file.write("\n")
                self._file.write(json.dumps({"op": op, "inputs": list(inputs), "output": out,
                                             "engine": self.engine_name}, ensure_ascii=False) + "\n")
                self._file.flush()
        return out

    def edit(self, caption: str, description: str) -> str:
        return self._answer("edit", (caption, description), lambda: self.engine.edit(caption, description))

    def fuse(self, caption_u: str, caption_v: str) -> str:
        return self._answer("fuse", (caption_u, caption_v), lambda: self.engine.fuse(caption_u, caption_v))

    def class_caption(self, label: str) -> str:
        return self.engine.class_caption(label)

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with disk_full_as_error(self.path.parent, writing=self.path):  # what a full disk left unflushed
                file.close()


def build_run_captions(config: TrainConfig, run: RunFolder, dataset: Any, descriptions: Sequence[tuple[str, ...]],
                       label_pairs: Sequence[tuple[str, str]], *, write: bool) -> tuple[RunCaptions, int]:
    """The run's caption set (class, edited, fused for ``label_pairs``), the edits and fusions
    answered from ``<run>/caption_edits.jsonl`` (recorded there when ``write``); returns
    ``(captions, edits asked of the engine)``."""
    if not config.extended:
        return RunCaptions.build(dataset, descriptions, None, label_pairs), 0
    editor = RunCaptionEdits(run / EDITS_FILE, config.caption_engine, engine_options(config), write=write)
    try:
        return RunCaptions.build(dataset, descriptions, editor, label_pairs), editor.computed
    finally:
        editor.close()
