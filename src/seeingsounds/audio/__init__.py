"""Audio input (load/validate/resample/save) and effects T_j with their descriptions d_j (paper 3.1)."""

from seeingsounds.audio.effects import (
    apply_effect,
    apply_effects,
    available_effects,
    describe_effect,
    mix,
    register_effect,
)
from seeingsounds.audio.io import audio_fingerprint, load_audio, read_audio, save_audio

__all__ = [
    "apply_effect",
    "apply_effects",
    "audio_fingerprint",
    "available_effects",
    "describe_effect",
    "load_audio",
    "mix",
    "read_audio",
    "register_effect",
    "save_audio",
]
