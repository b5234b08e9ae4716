"""Class captions t_y and their edits f (transformation descriptions) and g (fusion), paper section 3.1.

* :mod:`~seeingsounds.captions.store` — the captions file (label -> captions), JSON or YAML.
* :mod:`~seeingsounds.captions.edit` — the :class:`CaptionEditor` interface, the engine registry and
  the augmented caption set of Eq. 7.
* :mod:`~seeingsounds.captions.templates` — offline deterministic engine (default).
* :mod:`~seeingsounds.captions.llm` — OpenAI-compatible chat engine with a reproducible cache.
"""

from seeingsounds.captions.edit import (
    AugmentedCaptions,
    CaptionEditor,
    all_pairs,
    augmented_captions,
    available_editors,
    get_editor,
    register_editor,
)
from seeingsounds.captions.llm import CaptionEngineError, LLMEditor
from seeingsounds.captions.store import load_captions, missing_labels, save_captions
from seeingsounds.captions.templates import STANDARD_DESCRIPTIONS, TemplateEditor

__all__ = [
    "AugmentedCaptions",
    "CaptionEditor",
    "CaptionEngineError",
    "LLMEditor",
    "STANDARD_DESCRIPTIONS",
    "TemplateEditor",
    "all_pairs",
    "augmented_captions",
    "available_editors",
    "get_editor",
    "load_captions",
    "missing_labels",
    "register_editor",
    "save_captions",
]
