"""Find the aligner inside what a user calls a checkpoint (a run folder, an aligner folder, a hub id)."""

from __future__ import annotations

from pathlib import Path

from seeingsounds.errors import ConfigError

#: sub-folders of a training run, in order of preference
RUN_CHECKPOINTS = ("best", "last")


def resolve_checkpoint(checkpoint: str | Path) -> str:
    """The aligner folder (``config.json`` + ``model.safetensors``) for ``checkpoint``.

    Accepts an aligner folder, a training run folder (its ``best/``, else ``last/``), or a model
    hub repo id (returned unchanged; downloaded by ``from_pretrained``).
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
    looks_local = str(checkpoint).startswith((".", "/", "~")) or str(checkpoint).count("/") != 1
    if looks_local:
        raise ConfigError(f"checkpoint {checkpoint} does not exist")
    return str(checkpoint)
