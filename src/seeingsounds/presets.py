"""Named presets: which frozen audio encoder, which frozen generator, and the paper's defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from seeingsounds.errors import ConfigError

_PRESETS: dict[str, Preset] = {}

#: prefix of ``encoder_id`` / ``generator_id`` values that name a locally built tiny component
TINY_PREFIX = "tiny:"
#: the paper's judges (METRICS.md): AIC with CLIP ViT-L/14, R@k and AIS images with CLIP ViT-B/32
CLIP_L14 = "openai/clip-vit-large-patch14"
CLIP_B32 = "openai/clip-vit-base-patch32"
#: the judge trained in MiniLM's caption space that ships with the package (``seeingsounds.evaluation.offline_judge``)
OFFLINE_JUDGE = "offline-judge"
#: prefix of ids that name a trained model shipped inside the package (see :mod:`seeingsounds.assets`)
ASSETS_PREFIX = "assets:"


@dataclass(frozen=True)
class Preset:
    """Everything that fixes the shapes and defaults of one SeeingSounds setup.

    ``encoder_id`` and ``generator_id`` are hub ids or local folders; ``tiny:<name>`` means the
    component is built locally from configs (see :mod:`seeingsounds.tiny`), ``assets:<name>`` a
    trained model shipped inside the package (see :mod:`seeingsounds.assets`).
    """

    name: str
    description: str
    encoder: str
    encoder_id: str
    generator: str
    generator_id: str
    max_sequence_length: int | None = None
    # aligner
    order: str = "adapter_first"
    pooling: str = "attention"
    hidden_dim: int | None = None
    attention_heads: int = 8
    # training (paper section 4.1)
    lr_sequence: float = 1e-5
    lr_pooled: float = 1e-7
    # generation
    num_inference_steps: int = 10
    guidance_scale: float = 3.5
    height: int = 512
    width: int = 512
    #: video generators only: frames per clip and the frame rate they are meant to play at
    num_frames: int | None = None
    fps: int | None = None
    #: the generator LoRA this setup was meant for (file, folder or hub id), loaded when the user gives
    #: none; empty by default (the paper's "pretrained LoRA adapter" is not named)
    lora: str = ""
    #: keyword options of the encoder's ``from_pretrained`` (e.g. aisfx ``peak_normalize``)
    encoder_options: dict[str, Any] = field(default_factory=dict)
    #: the judges ``evaluate`` uses for this setup's images (model ids, ``--judge-aic`` / ``--judge-clip`` override):
    #: AIC, and R@k (also the image side of AIS, which must then live in Wav2CLIP's space)
    judge_aic: str = CLIP_L14
    judge_clip: str = CLIP_B32

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"preset has unknown fields {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> Preset:
        return dataclasses.replace(self, **changes)

    def resolve_encoder_id(self) -> str:
        return resolve_component(self.encoder_id)

    def resolve_generator_id(self) -> str:
        return resolve_component(self.generator_id)


def resolve_component(component_id: str) -> str:
    """A hub id or folder as is; ``tiny:<name>`` is built locally on first use; ``assets:<name>`` is the
    package's own folder."""
    if component_id.startswith(ASSETS_PREFIX):
        from seeingsounds.assets import model_folder

        return str(model_folder(component_id[len(ASSETS_PREFIX) :]))
    if component_id.startswith(TINY_PREFIX):
        from seeingsounds.tiny import tiny_path

        return str(tiny_path(component_id[len(TINY_PREFIX) :]))
    return component_id


def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    if preset.name in _PRESETS and not overwrite:
        raise ConfigError(f"preset {preset.name!r} already exists")
    _PRESETS[preset.name] = preset
    return preset


def available_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str | Preset | dict[str, Any]) -> Preset:
    """A registered preset by name (or a preset dict recorded in a checkpoint)."""
    if isinstance(name, Preset):
        return name
    if isinstance(name, dict):
        return Preset.from_dict(name)
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return _PRESETS[name]


AST_AUDIOSET = "MIT/ast-finetuned-audioset-10-10-0.4593"

register_preset(Preset(
    name="flux-dev",
    description="The paper's setup: AST (AudioSet) -> FLUX.1-dev, T5-XXL sequence (512) + CLIP-L pooled.",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="flux", generator_id="black-forest-labs/FLUX.1-dev", max_sequence_length=512,
    hidden_dim=1024, num_inference_steps=10, guidance_scale=3.5, height=512, width=512,
))
register_preset(Preset(
    name="flux-schnell",
    description="AST (AudioSet) -> FLUX.1-schnell (4 steps, no guidance), T5 sequence padded to 256.",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="flux", generator_id="black-forest-labs/FLUX.1-schnell", max_sequence_length=256,
    hidden_dim=1024, num_inference_steps=4, guidance_scale=0.0, height=512, width=512,
))
register_preset(Preset(
    name="tiny",
    description="Tiny random AST -> tiny random FLUX, built locally in seconds (tests, CI, offline demo).",
    encoder="ast", encoder_id="tiny:ast",
    generator="flux", generator_id="tiny:flux", max_sequence_length=16,
    hidden_dim=64, attention_heads=4, lr_sequence=1e-3, lr_pooled=1e-3,
    num_inference_steps=2, guidance_scale=3.5, height=32, width=32,
))
register_preset(Preset(
    name="offline",
    description="Real weights, nothing downloaded: aisfx sound-effects CNN from its PyPI wheel (level-aware: no "
    "peak normalisation) -> MiniLM token/sentence targets, driving a small FLUX pipeline trained here on "
    "captioned emoji pictures (32 px, shipped in the package).",
    encoder="aisfx", encoder_id="aisfx", encoder_options={"peak_normalize": False},
    generator="minilm", generator_id="assets:offline-generator", max_sequence_length=32,
    order="pool_first", hidden_dim=512, attention_heads=8, lr_sequence=1e-3, lr_pooled=1e-3,
    # the shipped transformer has no guidance embedding: guidance_scale is not used
    num_inference_steps=4, guidance_scale=0.0, height=32, width=32,
    judge_aic=OFFLINE_JUDGE, judge_clip=OFFLINE_JUDGE,
))

# ---- Stable Diffusion family (issue 4: generation backends) ------------------------------------
register_preset(Preset(
    name="sd3",
    description="AST (AudioSet) -> Stable Diffusion 3 medium: CLIP-L/G + T5 sequence [77+256, 4096] + pooled [2048].",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="sd3", generator_id="stabilityai/stable-diffusion-3-medium-diffusers", max_sequence_length=256,
    hidden_dim=1024, num_inference_steps=28, guidance_scale=7.0, height=1024, width=1024,
))
register_preset(Preset(
    name="sdxl",
    description="AST (AudioSet) -> Stable Diffusion XL base 1.0: CLIP-L/G sequence [77, 2048] + CLIP-G pooled [1280].",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="sdxl", generator_id="stabilityai/stable-diffusion-xl-base-1.0",
    hidden_dim=1024, num_inference_steps=30, guidance_scale=5.0, height=1024, width=1024,
))
register_preset(Preset(
    name="sd15",
    description="AST (AudioSet) -> Stable Diffusion 1.5: CLIP-L sequence [77, 768] (one head).",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="sd", generator_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
    hidden_dim=768, num_inference_steps=30, guidance_scale=7.5, height=512, width=512,
))
register_preset(Preset(
    name="sd-turbo",
    description="AST (AudioSet) -> SD-Turbo, 1 step without guidance: OpenCLIP-H sequence [77, 1024] (one head).",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="sd", generator_id="stabilityai/sd-turbo",
    hidden_dim=1024, num_inference_steps=1, guidance_scale=0.0, height=512, width=512,
))
for _name, _generator, _length, _steps, _guidance in (
    ("sd3", "sd3", 16, 2, 7.0), ("sdxl", "sdxl", None, 2, 5.0), ("sd", "sd", None, 2, 7.5), ("sd-turbo", "sd", None, 1, 0.0),
):
    register_preset(Preset(
        name=f"tiny-{_name}",
        description=f"Tiny random AST -> tiny random {_name} pipeline, built locally (tests, offline).",
        encoder="ast", encoder_id="tiny:ast",
        generator=_generator, generator_id=f"tiny:{_name}", max_sequence_length=_length,
        hidden_dim=64, attention_heads=4, lr_sequence=1e-3, lr_pooled=1e-3,
        num_inference_steps=_steps, guidance_scale=_guidance, height=32, width=32,
    ))

# ---- video (issue 13): Wan 2.1 text-to-video, umT5-XXL prompt_embeds [512, 4096] only --------------
register_preset(Preset(
    name="wan-1.3b",
    description="AST (AudioSet) -> Wan 2.1 T2V 1.3B (480p video, ~8 GB): umT5-XXL sequence [512, 4096], no pooled.",
    encoder="ast", encoder_id=AST_AUDIOSET,
    generator="wan", generator_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", max_sequence_length=512,
    hidden_dim=1024, num_inference_steps=50, guidance_scale=5.0, height=480, width=832, num_frames=81, fps=16,
))
register_preset(Preset(
    name="tiny-wan",
    description="Tiny random AST -> tiny random Wan 2.1 video pipeline, built locally (tests, offline).",
    encoder="ast", encoder_id="tiny:ast",
    generator="wan", generator_id="tiny:wan", max_sequence_length=16,
    hidden_dim=64, attention_heads=4, lr_sequence=1e-3, lr_pooled=1e-3,
    num_inference_steps=2, guidance_scale=5.0, height=32, width=32, num_frames=5, fps=8,
))
