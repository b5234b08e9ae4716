"""Find the aligner inside what a user calls a checkpoint (a run folder, an aligner folder, a hub id)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from seeingsounds.errors import ConfigError

#: sub-folders of a training run, in order of preference
RUN_CHECKPOINTS = ("best", "last")

#: a model hub repo id: ``owner/name`` of letters, digits, ``-``, ``_`` and ``.``
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` whose ``owner`` is not a local folder (``runs/demo`` with a ``runs/`` here is local)."""
    if not HUB_ID.fullmatch(text) or text.endswith((".", "-")) or ".." in text:
        return False
    return not Path(text.split("/", 1)[0]).exists()


def is_aligner_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds an aligner saved with ``save_pretrained``: ``model.safetensors`` and a
    ``config.json`` naming the aligner's heads."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("heads"), list) and (folder / "model.safetensors").is_file()


def resolve_checkpoint(checkpoint: str | Path) -> str:
    """The aligner folder (``config.json`` + ``model.safetensors``) for ``checkpoint``.

    Accepts an aligner folder, a training run folder (its ``best/``, else ``last/``), or a model
    hub repo id ``owner/name`` (returned unchanged; downloaded by ``from_pretrained``). A path that
    does not exist fails here at once, with no network access.
    """
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        # a run folder also holds a config.json (the training config): the weights decide
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return str(path)
        for name in RUN_CHECKPOINTS:
            if (path / name / "config.json").is_file():
                return str(path / name)
        raise ConfigError(
            f"{path} holds no SeeingSounds checkpoint (no config.json, best/ or last/): "
            "point to a training run folder or an aligner saved with save_pretrained"
        )
    if path.exists():
        raise ConfigError(f"{path} is a file; a checkpoint is a folder or a model hub repo id")
    if not looks_like_hub_id(str(checkpoint)):
        raise ConfigError(f"checkpoint {checkpoint} does not exist (no such folder, and not a hub id owner/name)")
    return str(checkpoint)
