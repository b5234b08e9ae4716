"""Caption edits of paper section 3.1: f (edit by a transformation description), g (fuse two captions).

* :class:`CaptionEditor` — the interface every engine implements.
* :func:`get_editor` / :func:`available_editors` — registry of engines (``template``: offline and
  deterministic, the default; ``llm``: any OpenAI-compatible chat endpoint, cached).
* :func:`augmented_captions` — the extended caption set of Eq. 7 for a dataset: the class captions
  t_y, the edited captions f(t_y, d_j) and the fused captions g(t_u, t_v).
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seeingsounds.errors import ConfigError, DatasetError
from seeingsounds.paths import atomic_write_text

__all__ = [
    "CaptionEditor",
    "AugmentedCaptions",
    "augmented_captions",
    "all_pairs",
    "available_editors",
    "get_editor",
    "register_editor",
]


class CaptionEditor(ABC):
    """Text transformations of section 3.1 (f, g) plus writing a class caption t_y from a label."""

    #: registry name of the engine
    name: str = ""

    @abstractmethod
    def edit(self, caption: str, description: str) -> str:
        """f(t_y, d_j): ``caption`` rewritten for audio transformed as ``description`` says."""

    def edit_many(self, caption: str, descriptions: Sequence[str]) -> str:
        """Apply :meth:`edit` for each description in order (a chain of transformations)."""
        if isinstance(descriptions, str):
            descriptions = (descriptions,)
        for description in descriptions:
            caption = self.edit(caption, description)
        return caption

    @abstractmethod
    def fuse(self, caption_u: str, caption_v: str) -> str:
        """g(t_u, t_v): one caption of a scene holding both sources (for the mix a_i + a_j)."""

    @abstractmethod
    def class_caption(self, label: str) -> str:
        """t_y: a short visual caption written from a bare class label."""


#: built-in engines as ``name -> "module:Class"``, imported only when asked for (the engines import
#: this module for :class:`CaptionEditor`, so importing them here would be an import cycle)
BUILTIN_EDITORS: dict[str, str] = {
    "template": "seeingsounds.captions.templates:TemplateEditor",
    "llm": "seeingsounds.captions.llm:LLMEditor",
}
_REGISTRY: dict[str, Callable[..., CaptionEditor] | str] = dict(BUILTIN_EDITORS)


def register_editor(name: str, factory: Callable[..., CaptionEditor] | str) -> None:
    """Make ``factory`` (a callable, or ``"module:Class"`` imported on first use) available as
    ``get_editor(name, **kwargs)``."""
    _REGISTRY[name] = factory


def _resolve(name: str) -> Callable[..., CaptionEditor]:
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = factory
    return factory


def available_editors() -> list[str]:
    """Names accepted by :func:`get_editor`."""
    return sorted(_REGISTRY)


def get_editor(name: str = "template", *, cache_path: str | os.PathLike[str] | None = None,
               temperature: float | None = None, base_url: str | None = None, model: str | None = None,
               **options: Any) -> CaptionEditor:
    """Build the caption engine ``name`` (``template`` or ``llm``).

    Args:
        cache_path: file of produced captions (``llm``: JSON Lines, written incrementally). The
            template engine is deterministic and needs none: ignored there.
        temperature: sampling temperature (``llm``; None: its default, 0, for reproducible edits).
            Ignored by the template engine.
        base_url, model: the endpoint and chat model (``llm``; None: its defaults). An error for
            the template engine.
        options: further engine options (``llm``: ``timeout``, ``max_attempts``, ``fallback``,
            ``system_prompts``, ``api_key``, ``cache``, ...).
    """
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown caption engine {name!r}: choose one of {', '.join(available_editors())}"
        ) from None
    factory = _resolve(name)
    if name == "template":
        given = [k for k, v in {"base_url": base_url, "model": model}.items() if v is not None]
        if given:
            raise ConfigError(f"caption engine 'template' does not take {', '.join(given)}: those are llm options")
    else:
        named = {"cache_path": cache_path, "temperature": temperature, "base_url": base_url, "model": model}
        options.update({k: v for k, v in named.items() if v is not None})
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"caption engine {name!r} does not take these options: {exc}") from None


def all_pairs(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of distinct labels, in the order given: (l0, l1), (l0, l2), ..."""
    return list(itertools.combinations(list(dict.fromkeys(labels)), 2))


EditKey = tuple[str, tuple[str, ...]]
PairKey = tuple[str, str]


@dataclass
class AugmentedCaptions:
    """The extended caption set of Eq. 7.

    ``original``: label -> t_y; ``edited``: (label, descriptions) -> f(...f(t_y, d_1)..., d_k);
    ``fused``: (label_u, label_v) -> g(t_u, t_v).
    """

    original: dict[str, str] = field(default_factory=dict)
    edited: dict[EditKey, str] = field(default_factory=dict)
    fused: dict[PairKey, str] = field(default_factory=dict)

    def all_captions(self) -> list[str]:
        """Every distinct caption: originals, then edited, then fused, each in insertion order."""
        seen = dict.fromkeys(itertools.chain(self.original.values(), self.edited.values(), self.fused.values()))
        return list(seen)

    def caption(self, label: str, descriptions: Sequence[str] = ()) -> str:
        """The caption for ``label`` after the transformations ``descriptions`` (none: t_y)."""
        if isinstance(descriptions, str):
            descriptions = (descriptions,)
        if not descriptions:
            if label not in self.original:
                raise KeyError(f"no caption for label {label!r}")
            return self.original[label]
        key = (label, tuple(descriptions))
        if key not in self.edited:
            raise KeyError(f"no edited caption for label {label!r} with {list(descriptions)}")
        return self.edited[key]

    def fused_caption(self, label_u: str, label_v: str) -> str:
        """The fused caption of a mix of ``label_u`` and ``label_v`` (either order)."""
        for key in ((label_u, label_v), (label_v, label_u)):
            if key in self.fused:
                return self.fused[key]
        raise KeyError(f"no fused caption for the pair ({label_u!r}, {label_v!r})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": dict(self.original),
            "edited": [
                {"label": label, "descriptions": list(descs), "caption": caption}
                for (label, descs), caption in self.edited.items()
            ],
            "fused": [{"labels": [u, v], "caption": caption} for (u, v), caption in self.fused.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentedCaptions:
        try:
            return cls(
                original={str(k): str(v) for k, v in data["original"].items()},
                edited={(e["label"], tuple(e["descriptions"])): e["caption"] for e in data.get("edited", [])},
                fused={(f["labels"][0], f["labels"][1]): f["caption"] for f in data.get("fused", [])},
            )
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise DatasetError(
                [f"not an augmented caption set ({type(exc).__name__}: {exc})"],
                header="cannot read the augmented captions",
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AugmentedCaptions:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError([f"not valid JSON: {exc}"], header="cannot read the augmented captions") from None
        if not isinstance(data, dict):
            raise DatasetError(["not a JSON object"], header="cannot read the augmented captions")
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AugmentedCaptions:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _chains(effect_descriptions: Sequence[Sequence[str] | str]) -> list[tuple[str, ...]]:
    chains: list[tuple[str, ...]] = []
    problems: list[str] = []
    for i, chain in enumerate(effect_descriptions):
        chain = (chain,) if isinstance(chain, str) else tuple(chain)
        if not chain:
            problems.append(f"entry {i + 1} has no descriptions: leave it out (the class caption covers it)")
        elif not all(isinstance(d, str) and d.strip() for d in chain):
            problems.append(f"entry {i + 1} {list(chain)!r}: every description must be a non-empty string")
        elif chain not in chains:
            chains.append(chain)
    if problems:
        raise DatasetError(problems, header="the effect descriptions have problems")
    return chains


def augmented_captions(
    class_captions: Mapping[str, Sequence[str] | str],
    effect_descriptions: Sequence[Sequence[str] | str],
    editor: CaptionEditor,
    mix_pairs: Sequence[tuple[str, str]] = (),
) -> AugmentedCaptions:
    """Build the caption set of Eq. 7 from class captions (as :func:`load_captions` returns them).

    The FIRST caption of each class is its t_y. Each entry of ``effect_descriptions`` is one
    transformation chain (a bare string counts as a chain of one), applied to every class in order;
    duplicate chains are kept once. ``mix_pairs`` names label pairs to fuse (see :func:`all_pairs`).
    The result is deterministic whenever the editor is (the template engine always is).
    """
    original: dict[str, str] = {}
    problems: list[str] = []
    for label, captions in class_captions.items():
        first = captions if isinstance(captions, str) else (captions[0] if len(captions) else None)
        if not isinstance(first, str) or not first.strip():
            problems.append(f"label {label!r} has no caption")
            continue
        original[label] = first
    for u, v in mix_pairs:
        for label in (u, v):
            if label not in class_captions:
                problems.append(f"mix pair ({u!r}, {v!r}): label {label!r} has no class caption")
    if problems:
        raise DatasetError(list(dict.fromkeys(problems)), header="cannot build the augmented captions")
    chains = _chains(effect_descriptions)
    result = AugmentedCaptions(original=original)
    for label, caption in original.items():
        for chain in chains:
            result.edited[(label, chain)] = editor.edit_many(caption, chain)
    for u, v in dict.fromkeys(tuple(p) for p in mix_pairs):
        result.fused[(u, v)] = editor.fuse(original[u], original[v])
    return result
