"""One registry entry per effect and one control per effect: CLI flags, app sliders, caption descriptions and
the README table derive from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seeingsounds import controls as C
from seeingsounds.audio import effects as E

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def underwater():
    """A new effect, registered for one test: the effect in one place, its flag and slider in one more."""
    effect = E.register_effect(
        "underwater", lambda wave, sr, depth: wave * (1.0 - 0.5 * depth), lambda depth: "underwater", {"depth": 0.5},
        ranges={"depth": (0.0, 1.0)}, descriptions=("underwater",), order=55, display=45,
    )
    C.register_control("underwater", "depth", metavar="DEPTH", help="how deep under water, in [0, 1]", neutral=0.0,
                       slider=(0.0, 1.0, 0.1), label="Under water (0 = off)")
    yield effect
    C.unregister_control("underwater")
    E.unregister_effect("underwater")


def test_a_new_effect_appears_in_help_app_and_captions(underwater, capsys):
    from seeingsounds.app.service import controls_to_effects
    from seeingsounds.captions.templates import TemplateEditor, standard_descriptions
    from seeingsounds.cli.common import effects_from_args
    from seeingsounds.cli.main import build_parser

    parser = build_parser()
    for command in ("generate", "describe", "augment"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "--underwater DEPTH" in capsys.readouterr().out
    args = parser.parse_args(["describe", "--checkpoint", "x", "a.wav", "--underwater", "0.3", "--volume", "0.5"])
    # application order: reverb (50) < underwater (55) < volume (60)
    assert effects_from_args(args) == [("underwater", {"depth": 0.3}), ("volume", {"alpha": 0.5})]
    assert controls_to_effects(underwater=0.0) == []  # its neutral value applies nothing
    assert controls_to_effects(underwater=0.4, reverb=0.5) == [("reverb", {"room_size": 0.5}),
                                                               ("underwater", {"depth": 0.4})]
    assert [c.effect for c in C.slider_controls()] == ["volume", "reverb", "pitch", "lowpass", "underwater", "echo"]
    assert "underwater" in standard_descriptions()
    assert TemplateEditor().edit("a dog barking", "underwater") == "a dog barking, underwater"
    assert "| `underwater` | `--underwater DEPTH` | `depth` 0.5 in [0, 1] | `underwater` |" in C.effects_table()
    out, descriptions = E.apply_effects(np.ones(8, dtype=np.float32), 16000, effects_from_args(args))
    assert descriptions == ["underwater", "high-volume"] and np.allclose(out, 0.85 * 0.5, atol=1e-3)


def test_a_new_effect_gets_an_app_slider(underwater):
    from seeingsounds.app.service import WebService
    from seeingsounds.app.ui import build_app
    from seeingsounds.demo_checkpoint import demo_checkpoint
    from seeingsounds.assets import example_sounds

    service = WebService(demo_checkpoint() / "best")
    try:
        app = build_app(service.checkpoint, service=service)
        sliders = {c.elem_id: c for c in app.blocks.values() if type(c).__name__ == "Slider"}
        assert sliders["underwater"].label == "Under water (0 = off)"
        assert (sliders["underwater"].minimum, sliders["underwater"].maximum, sliders["underwater"].step) == (0, 1, 0.1)
        assert sliders["underwater"].value == 0.0
        result = service.run(str(example_sounds()["bell"]), underwater=0.5, steps=1, size=32)
        assert result.caption == "a bell ringing, underwater"
    finally:
        service.close()
    assert not service.output_dir.exists()


def test_builtin_entries_match_the_former_hand_copies():
    from seeingsounds.captions.templates import standard_descriptions
    from seeingsounds.cli.common import effect_order

    assert effect_order() == (("speed", "speed", "factor"), ("pitch", "pitch", "semitones"),
                            ("lowpass", "lowpass", "cutoff_hz"), ("echo", "echo", "delay_seconds"),
                            ("reverb", "reverb", "room_size"), ("volume", "volume", "alpha"))
    assert standard_descriptions() == ("low-volume", "medium-volume", "high-volume", "reverberant", "higher-pitched",
                                     "lower-pitched", "muffled", "echoing", "faster", "slower")
    assert {c.effect: c.neutral for c in C.slider_controls()} == {"volume": 1.0, "reverb": 0.0, "pitch": 0.0,
                                                                  "lowpass": 0.0, "echo": 0.0}


def test_an_effect_without_a_control_has_no_flag_and_no_slider(capsys):
    from seeingsounds.cli.main import build_parser

    E.register_effect("hum", lambda wave, sr, hz: wave, lambda hz: "humming", {"hz": 50.0}, descriptions=("humming",))
    try:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["generate", "--help"])
        assert "--hum" not in capsys.readouterr().out
        assert "hum" not in [c.effect for c in C.controls_in_order()]
        assert "| `hum` | — | `hz` 50 | `humming` | — |" in C.effects_table()
        assert E.apply_effects(np.ones(4, dtype=np.float32), 16000, [("hum", {})])[1] == ["humming"]
    finally:
        E.unregister_effect("hum")


def test_the_readme_table_is_the_registry_table():
    assert C.effects_table() in README.read_text(encoding="utf-8")


def test_registry_refuses_inconsistent_controls():
    from seeingsounds.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown effect 'nothing'"):
        C.register_control("nothing", "x")
    with pytest.raises(ConfigError, match="parameter 'y' is not one of"):
        C.register_control("volume", "y", replace=True)
    with pytest.raises(ConfigError, match="already has a control"):
        C.register_control("volume", "alpha")
    E.register_effect("bad", lambda w, sr, x: w, lambda x: "bad", {"x": 1.0})
    try:
        with pytest.raises(ConfigError, match="belongs to another effect"):
            C.register_control("bad", "x", flag="--volume")
        with pytest.raises(ConfigError, match="slider"):
            C.register_control("bad", "x", slider=(1, 0, 0.1))
        assert "bad" not in [c.effect for c in C.controls_in_order()]
    finally:
        E.unregister_effect("bad")
    assert "bad" not in E.available_effects()
    assert C.controls_in_order()[-1] == C.EffectControl("volume", "alpha", "--volume", "ALPHA",
                                                        "gain factor, e.g. 0.15 (low-volume)", 1.0,
                                                        (0.05, 1.0, 0.05), "Volume (gain; 1 = unchanged)")
