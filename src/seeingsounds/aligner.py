"""The trainable part of SeeingSounds: adapters plus attention pooling (paper Eq. 2-5).

One *head* per conditioning tensor of the generator. A head maps the frozen audio encoder's
tokens ``f`` ([B, m, d_A]) to one conditioning tensor:

* ``adapter_first`` (the paper's order): ``w = A(f)`` per token ([B, m, D]), then attention
  pooling ``P_{m,q}`` with ``q`` learnable queries ([B, q, D]).
* ``pool_first``: attention pooling in the encoder's width first ([B, q, d_A]), then the adapter
  per pooled token. Same function class, far cheaper when ``D`` is 4096 and ``m`` is 1214.
* ``pooling="average"`` is the Table 4 ablation: adaptive average pooling (sequence head) and
  mean pooling (pooled head, q = 1) instead of attention pooling.

A pooled head (``q = 1``) returns [B, D]; a sequence head returns [B, q, D]. Conditioning tensors
that are not aligned (ablations "CLIP only" / "T5 only") have no head: the aligner feeds the
generator the embedding of the empty caption for them (``null_<name>`` buffers, set from the
generator's own text encoders when targets are computed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants
from torch import nn

from seeingsounds.checkpoint import is_aligner_folder
from seeingsounds.errors import ConfigError
from seeingsounds.paths import current_umask

ORDERS = ("adapter_first", "pool_first")
POOLINGS = ("attention", "average")


def _num_attention_heads(dim: int, wanted: int) -> int:
    """The largest head count <= ``wanted`` that divides ``dim``."""
    for heads in range(min(wanted, dim), 0, -1):
        if dim % heads == 0:
            return heads
    return 1


class Adapter(nn.Sequential):
    """Per-token MLP ``A`` (Eq. 2-3): Linear -> GELU -> Linear."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, dropout: float = 0.0):
        super().__init__(
            nn.Linear(input_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, output_dim),
        )


class AttentionPooling(nn.Module):
    """``P_{p,q,theta}``: q learnable queries cross-attend to p tokens (Eq. 4-5)."""

    def __init__(self, dim: int, num_queries: int, num_heads: int = 8):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * dim**-0.5)
        self.attention = nn.MultiheadAttention(dim, _num_attention_heads(dim, num_heads), batch_first=True)

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        pooled, _ = self.attention(queries, tokens, tokens, key_padding_mask=padding_mask, need_weights=False)
        return pooled


class AveragePooling(nn.Module):
    """Ablation: adaptive average pooling over tokens (mean pooling when q = 1). No parameters."""

    def __init__(self, num_queries: int):
        super().__init__()
        self.num_queries = num_queries

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if padding_mask is not None and self.num_queries == 1:
            keep = (~padding_mask).unsqueeze(-1).to(tokens.dtype)
            return (tokens * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
        return F.adaptive_avg_pool1d(tokens.transpose(1, 2), self.num_queries).transpose(1, 2)


class AlignmentHead(nn.Module):
    """Adapter + pooling for one conditioning tensor."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_queries: int,
        *,
        hidden_dim: int,
        order: str,
        pooling: str,
        attention_heads: int,
        dropout: float,
    ):
        super().__init__()
        self.order = order
        self.num_queries = num_queries
        self.adapter = Adapter(input_dim, hidden_dim, output_dim, dropout)
        pool_dim = output_dim if order == "adapter_first" else input_dim
        self.pooling = (
            AttentionPooling(pool_dim, num_queries, attention_heads)
            if pooling == "attention"
            else AveragePooling(num_queries)
        )

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.order == "adapter_first":
            return self.pooling(self.adapter(tokens), padding_mask)
        return self.adapter(self.pooling(tokens, padding_mask))


def _check_heads(heads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    checked = []
    for head in heads:
        missing = {"name", "shape"} - set(head)
        if missing:
            raise ConfigError(f"aligner head {dict(head)} lacks {sorted(missing)}")
        shape = [int(s) for s in head["shape"]]
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ConfigError(f"head {head['name']!r}: shape must be [L, D] or [D], got {shape}")
        checked.append({"name": str(head["name"]), "shape": shape, "aligned": bool(head.get("aligned", True))})
    if not any(h["aligned"] for h in checked):
        raise ConfigError("at least one conditioning tensor must be aligned (trained)")
    return checked


class SeeingSoundsAligner(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="seeingsounds",
    tags=["audio-to-image", "seeingsounds"],
    repo_url="https://github.com/seeingsounds/seeingsounds",
):
    """Maps audio-encoder tokens to a generator's conditioning tensors.

    Args:
        input_dim: width ``d_A`` of the audio encoder's tokens.
        heads: one entry per conditioning tensor, ``{"name", "shape", "aligned"}``; ``shape`` is
            per sample, ``[L, D]`` for a sequence or ``[D]`` for a pooled vector.
        order: ``"adapter_first"`` (paper) or ``"pool_first"``.
        pooling: ``"attention"`` (paper) or ``"average"`` (ablation without attention pooling).
        hidden_dim: adapter width; ``None`` means each head's output width.
        attention_heads: heads of each attention-pooling layer (reduced to a divisor of its width).
        dropout: adapter dropout.
        preset: the preset this aligner belongs to (encoder and generator ids), recorded so a
            checkpoint refuses to drive another generator.
    """

    def __init__(
        self,
        input_dim: int,
        heads: Sequence[Mapping[str, Any]],
        order: str = "adapter_first",
        pooling: str = "attention",
        hidden_dim: int | None = None,
        attention_heads: int = 8,
        dropout: float = 0.0,
        preset: dict[str, Any] | None = None,
    ):
        super().__init__()
        if order not in ORDERS:
            raise ConfigError(f"order must be one of {ORDERS}, got {order!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if input_dim < 1:
            raise ConfigError(f"input_dim must be positive, got {input_dim}")
        self.input_dim = int(input_dim)
        self.head_specs = _check_heads(heads)
        self.order, self.pooling, self.preset = order, pooling, dict(preset or {})
        self.heads = nn.ModuleDict()
        for spec in self.head_specs:
            shape = spec["shape"]
            if spec["aligned"]:
                self.heads[spec["name"]] = AlignmentHead(
                    self.input_dim,
                    shape[-1],
                    1 if len(shape) == 1 else shape[0],
                    hidden_dim=hidden_dim or shape[-1],
                    order=order,
                    pooling=pooling,
                    attention_heads=attention_heads,
                    dropout=dropout,
                )
            self.register_buffer(f"null_{spec['name']}", torch.zeros(shape))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: Any, force_download: bool,
                         local_files_only: bool, token: Any, map_location: str = "cpu", strict: bool = True,
                         **model_kwargs: Any) -> SeeingSoundsAligner:
        """Load ``model.safetensors`` from a folder or a hub repo, strictly: every weight must match."""
        from huggingface_hub import hf_hub_download

        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        else:
            model_file = hf_hub_download(repo_id=model_id, filename=constants.SAFETENSORS_SINGLE_FILE, revision=revision,
                                         cache_dir=cache_dir, force_download=force_download, token=token,
                                         local_files_only=local_files_only)
        if not os.path.isfile(model_file):
            raise ConfigError(f"{model_id} has no {constants.SAFETENSORS_SINGLE_FILE}: not a SeeingSounds checkpoint")
        return cls._load_as_safetensor(model, model_file, map_location, True)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> str | None:
        """The mixin's ``save_pretrained`` into a new folder, an aligner checkpoint (its files are replaced)
        or a folder holding neither a ``config.json`` nor a ``model.safetensors`` (its other files stay).
        Any other ``config.json`` / ``model.safetensors`` (a training run's, a project's) is refused
        before a write: the mixin would replace it."""
        folder = Path(save_directory).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file: save_pretrained writes a folder")
        theirs = [name for name in (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE) if (folder / name).exists()]
        if theirs and not is_aligner_folder(folder):
            raise ConfigError(f"{folder} holds a {' and a '.join(theirs)} that is not a SeeingSounds checkpoint's "
                              "(a training run's, another project's): save_pretrained would replace it; save to a "
                              "folder of its own")
        return super().save_pretrained(folder, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's ``model.safetensors``, with the permissions the umask gives (safetensors writes 0600)."""
        super()._save_pretrained(save_directory)
        os.chmod(Path(save_directory) / constants.SAFETENSORS_SINGLE_FILE, 0o666 & ~current_umask())

    @property
    def conditioning_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every conditioning tensor this aligner produces."""
        return {s["name"]: tuple(s["shape"]) for s in self.head_specs}

    @property
    def aligned_names(self) -> list[str]:
        return [s["name"] for s in self.head_specs if s["aligned"]]

    def null_conditioning(self, name: str) -> torch.Tensor:
        """The generator's embedding of the empty caption for ``name`` (per sample)."""
        return getattr(self, f"null_{name}")

    @torch.no_grad()
    def set_null_conditioning(self, embeddings: Mapping[str, torch.Tensor]) -> None:
        """Store the empty caption's embeddings (fed for unaligned tensors and as negatives)."""
        for name, value in embeddings.items():
            buffer = self.null_conditioning(name)
            value = value.reshape(buffer.shape) if value.numel() == buffer.numel() else value
            if tuple(value.shape) != tuple(buffer.shape):
                raise ConfigError(f"null embedding {name!r} has shape {tuple(value.shape)}, expected {tuple(buffer.shape)}")
            buffer.copy_(value)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.ndim != 3 or tokens.shape[-1] != self.input_dim:
            raise ConfigError(
                f"the aligner expects audio tokens [batch, tokens, {self.input_dim}], got {list(tokens.shape)}; "
                "was this checkpoint trained with another audio encoder?"
            )

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Predict every conditioning tensor: ``{name: [B, L, D] or [B, D]}``."""
        self.check_tokens(tokens)
        out: dict[str, torch.Tensor] = {}
        for spec in self.head_specs:
            name = spec["name"]
            if name in self.heads:
                pred = self.heads[name](tokens, padding_mask)
                out[name] = pred[:, 0] if len(spec["shape"]) == 1 else pred
            else:
                null = self.null_conditioning(name).to(tokens.dtype)
                out[name] = null.unsqueeze(0).expand(tokens.shape[0], *null.shape)
        return out

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
