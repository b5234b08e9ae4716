"""``seeingsounds evaluate`` end to end on the tiny preset with tiny judges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine

from seeingsounds.cli.main import main

CLASSES = {"low hum": 220.0, "high whistle": 3000.0}
TINY_JUDGES = ["--judge-aic", "tiny:clip-judge", "--judge-clip", "tiny:clip-judge", "--judge-wav2clip", "tiny:wav2clip"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_preset, tiny_backend) -> Path:
    """A run folder as `seeingsounds train` leaves it: best/ aligner + captions.json + caption_targets."""
    from seeingsounds.model import create_aligner
    from seeingsounds.tiny.audio_encoder import TINY_AST
    from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
    from run_fixtures import save_caption_set

    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    aligner = create_aligner(tiny_preset, TINY_AST["hidden_size"], tiny_backend.conditioning_spec())
    aligner.set_null_conditioning({k: v[0] for k, v in tiny_backend.encode_captions([""]).items()})
    aligner.save_pretrained(run / "best")
    captions = CaptionSet()
    for name in CLASSES:
        captions.add(CaptionEntry(f"a photo of a {name}", "class", (name,)))
    save_caption_set(run, captions, tiny_backend.encode_captions(captions.texts))
    return run


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    lines = ["path,label"]
    for name, freq in CLASSES.items():
        for i in range(20):  # 90/10 -> 2 test clips per class
            path = root / name.replace(" ", "_") / f"{i:02d}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, sine(freq * (1 + 0.01 * i), 1.0, 16000), 16000)
            lines.append(f"{path.relative_to(root)},{name}")
    (root / "landscape.csv").write_text("\n".join(lines) + "\n")
    return root / "landscape.csv"


def _evaluate(run_folder, manifest, out, *extra):
    return main(["evaluate", "--checkpoint", str(run_folder), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(out), "--seeds", "0", "1", "--metrics", "AIC", "R@5", "AIS", *TINY_JUDGES, *extra])


def test_full_tiny_evaluation_writes_reports_grids_and_resumes(run_folder, manifest, tmp_path, capsys):
    out = tmp_path / "eval"
    assert _evaluate(run_folder, manifest, out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"clips": 4, "images": 8, "generated": 8, "reused": 0, "generated_by_process": [8]}
    assert report["seeds"] == [0, 1] and report["gallery"] == "classes"
    assert set(report["metrics"]) == {"AIC", "R@1", "R@5", "R@10", "AIS"}
    assert report["reference"] == {"AIC": 79.13, "AIS": 76.16}
    assert report["judges"]["wav2clip"]["sample_rate"] == 16000
    assert report["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    # 2 classes: R@5 (and R@10) over a 2-text gallery is trivially 100 — the report says which gallery
    assert report["metrics"]["R@5"] == 100.0
    for value in report["metrics"].values():
        assert 0.0 <= value <= 100.0
    images = sorted((out / "images").rglob("*.png"))
    assert len(images) == 8 and all("_seed" in p.name for p in images)
    assert sorted(report["grids"]) == ["grids/high-whistle.png", "grids/low-hum.png"]
    assert all((out / g).is_file() for g in report["grids"])
    md = (out / "report.md").read_text()
    assert "| SeeingSounds (paper, FLUX.1-dev) | 79.13 |" in md and "this run" in md
    assert "report.json" in capsys.readouterr().out

    # the reported AIC is what the judge says about the saved images
    from PIL import Image

    from seeingsounds.evaluation.judges import get_judge
    from seeingsounds.evaluation.metrics import aic

    judge = get_judge("aic", "tiny:clip-judge")
    classes = sorted(CLASSES)
    labels = [classes.index("high whistle" if "high-whistle" in str(p) else "low hum") for p in images]
    embeds = judge.embed_images([Image.open(p).convert("RGB") for p in images])
    assert report["metrics"]["AIC"] == pytest.approx(aic(embeds, judge.embed_texts(classes), labels))

    # a second run reuses every image: nothing regenerated, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in images}
    assert _evaluate(run_folder, manifest, out) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["counts"]["generated"] == 0 and again["counts"]["reused"] == 8
    assert again["metrics"] == report["metrics"]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())

    # an interrupted run (some images missing) regenerates exactly the missing ones, identically
    removed = images[:3]
    old_bytes = {p: np.asarray(Image.open(p)) for p in removed}
    for p in removed:
        p.unlink()
    assert _evaluate(run_folder, manifest, out) == 0
    resumed = json.loads((out / "report.json").read_text())
    assert resumed["counts"]["generated"] == 3 and resumed["counts"]["reused"] == 5
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p not in removed)
    for p in removed:
        np.testing.assert_array_equal(np.asarray(Image.open(p)), old_bytes[p])  # same seed, same image
    assert resumed["metrics"] == report["metrics"]


def test_resume_refuses_another_checkpoint(run_folder, manifest, tmp_path, tiny_preset, tiny_backend, capsys):
    from seeingsounds.model import create_aligner
    from seeingsounds.tiny.audio_encoder import TINY_AST

    out = tmp_path / "eval"
    assert _evaluate(run_folder, manifest, out, "--limit", "1", "--metrics", "AIC") == 0
    other = tmp_path / "other"
    torch.manual_seed(1)
    create_aligner(tiny_preset, TINY_AST["hidden_size"], tiny_backend.conditioning_spec()).save_pretrained(other)
    code = main(["evaluate", "--checkpoint", str(other), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(out), "--seeds", "0", "1", "--limit", "1", "--metrics", "AIC", *TINY_JUDGES])
    assert code == 2 and "another checkpoint" in capsys.readouterr().err


def test_no_images_caption_retrieval_matches_direct_computation(run_folder, manifest, tmp_path):
    from seeingsounds.data.protocols import get_protocol
    from seeingsounds.evaluation.metrics import caption_retrieval
    from seeingsounds.pipeline import SeeingSoundsPipeline
    from seeingsounds.runs import RunFolder

    out = tmp_path / "captions"
    assert main(["evaluate", "--checkpoint", str(run_folder), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(out), "--no-images"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "caption-retrieval" and report["counts"] == {"clips": 4, "images": 0}
    assert not (out / "images").exists()  # no generator ran
    rows = get_protocol("landscape").load(manifest).evaluation_rows()
    pipe = SeeingSoundsPipeline.from_pretrained(run_folder, device="cpu")
    pred = pipe.conditioner.predict_all([str(r.path) for r in rows])
    saved = RunFolder.find(run_folder)
    captions, targets = saved.caption_set(), saved.caption_targets(dtype=torch.float32)
    labels = [captions.texts.index(f"a photo of a {r.label}") for r in rows]
    expected = caption_retrieval({k: v.numpy() for k, v in pred.items()}, {k: v.numpy() for k, v in targets.items()},
                                 labels, k=5)
    assert report["metrics"]["caption_top1"] == pytest.approx(expected["top1"])
    assert report["metrics"]["caption_mean_cosine"] == pytest.approx(expected["mean_cosine"], abs=1e-4)
    assert report["metrics"]["caption_top5"] == 100.0  # 2 captions


def test_wrong_manifest_fails_with_every_problem(run_folder, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nmissing.wav,dog\nalso-missing.wav,cat\n")
    code = main(["evaluate", "--checkpoint", str(run_folder), "--protocol", "ravdess", "--data", str(bad),
                 "--out", str(tmp_path / "o"), "--no-images"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'cat' (1)" in err and "'dog' (1)" in err and "8 ravdess class(es) have no clip" in err


def test_seed_options_must_agree(run_folder, manifest, tmp_path, capsys):
    code = main(["evaluate", "--checkpoint", str(run_folder), "--protocol", "landscape", "--data", str(manifest),
                 "--out", str(tmp_path / "o"), "--seeds", "0", "1", "--images-per-clip", "3"])
    assert code == 2 and "disagrees" in capsys.readouterr().err


def test_frames_gallery_needs_frames_and_ranks_them(run_folder, manifest, tmp_path, capsys):
    from PIL import Image

    lines = manifest.read_text().splitlines()
    with_frames = ["path,label,frame"]
    for i, line in enumerate(lines[1:]):
        frame = tmp_path / f"frame{i}.png"
        Image.new("RGB", (32, 32), (i * 6 % 256, 80, 200 - i * 4)).save(frame)
        with_frames.append(f"{manifest.parent / line.split(',')[0]},{line.split(',')[1]},{frame}")
    framed = tmp_path / "framed.csv"
    framed.write_text("\n".join(with_frames) + "\n")
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(run_folder), "--protocol", "landscape", "--out", str(out),
            "--seeds", "0", "--limit", "3", "--metrics", "R@5", "--gallery", "frames", *TINY_JUDGES]
    assert main([*args, "--data", str(framed)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["gallery"] == "frames" and "AIC" not in report["metrics"]
    assert report["metrics"]["R@5"] == 100.0  # 3 frames in the gallery
    assert any(report["metrics"]["R@1"] == pytest.approx(v) for v in (0.0, 100 / 3, 200 / 3, 100.0))
    assert main([*args, "--data", str(manifest)]) == 2
    assert "needs an existing 'frame'" in capsys.readouterr().err


def test_aic_judge_sees_raw_class_names_and_metric_names_are_normalised(tmp_path):
    """METRICS.md: AIC's text side is sorted(set(labels)), raw, tokenised as is ('sea_waves' stays)."""
    from PIL import Image

    from seeingsounds.data.manifest import Clip
    from seeingsounds.data.protocols import ProtocolData, get_protocol
    from seeingsounds.evaluation.runner import Evaluation, EvaluationSettings

    def settings(**kw):
        return EvaluationSettings(checkpoint="unused", protocol="landscape", data="unused", out=str(tmp_path),
                                  seeds=[0], **kw)

    assert Evaluation(settings(metrics=["aic", "R@k"])).metric_names == ["AIC", "R@5"]
    ev = Evaluation(settings(metrics=["AIC"]))

    class Judge:
        texts: list[str] = []

        def embed_texts(self, texts):
            self.texts = list(texts)
            return np.eye(2, dtype=np.float32)

        def embed_images(self, images):
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(images), 1))

        def describe(self):
            return {"kind": "aic", "model_id": "fake"}

    judge = Judge()
    ev.judge = lambda kind: judge
    rows, paths = [], []
    for i, label in enumerate(["sea_waves", "dog"]):
        png = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8)).save(png)
        rows.append(Clip(tmp_path / f"{i}.wav", label, "test"))
        paths.append([png])
    data = ProtocolData(get_protocol("landscape"), ["dog", "sea_waves"], rows, tmp_path / "m.csv")
    result = ev.image_metrics(data, rows, paths)
    assert judge.texts == ["dog", "sea_waves"]
    assert result["metrics"]["AIC"] == 50.0  # every image is "dog"


def test_resume_refuses_a_checkpoint_whose_config_changed(run_folder, manifest, tmp_path, capsys):
    """Same weights, edited preset (e.g. diffusion steps): old images must not be mixed with new ones."""
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(Path(run_folder) / "best", ckpt)
    out = tmp_path / "eval"
    assert _evaluate(ckpt, manifest, out, "--limit", "1", "--metrics", "AIC") == 0
    config = json.loads((ckpt / "config.json").read_text())
    config["preset"]["num_inference_steps"] += 1
    (ckpt / "config.json").write_text(json.dumps(config))
    assert _evaluate(ckpt, manifest, out, "--limit", "1", "--metrics", "AIC") == 2
    assert "another checkpoint or settings" in capsys.readouterr().err


def make_tiny_lora(folder: Path, model_id: str) -> Path:
    """A strong random LoRA for the tiny FLUX transformer (B scaled up so its effect shows in 2-step pixels)."""
    pytest.importorskip("peft")
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = FluxTransformer2DModel.from_pretrained(model_id, subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    state = {k: v * (30.0 if "lora_B" in k else 1.0) for k, v in get_peft_model_state_dict(transformer).items()}
    FluxPipeline.save_lora_weights(folder, transformer_lora_layers=state)
    return folder


def test_lora_changes_the_images_and_is_recorded(run_folder, manifest, tmp_path, tiny_backend, capsys):
    from PIL import Image

    from seeingsounds.imaging import read_provenance

    lora = make_tiny_lora(tmp_path / "lora", tiny_backend.model_id)
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert _evaluate(run_folder, manifest, base, "--limit", "1", "--metrics", "AIC") == 0
    assert _evaluate(run_folder, manifest, tuned, "--limit", "1", "--metrics", "AIC", "--lora", str(lora)) == 0
    report = json.loads((tuned / "report.json").read_text())
    assert report["lora"] == str(lora) and report["config"]["lora"] == str(lora)
    assert json.loads((base / "report.json").read_text())["lora"] is None
    assert json.loads((tuned / "images" / "generation.json").read_text())["lora"] == str(lora)
    a, b = sorted(base.rglob("*.png")), sorted(tuned.rglob("*.png"))
    images = [p for p in b if "grids" not in p.parts]
    assert len(images) == 2 and read_provenance(images[0])["lora"] == str(lora)
    pixels = [np.asarray(Image.open(p), dtype=np.float64) for p in (a[0], b[0])]
    assert np.abs(pixels[0] - pixels[1]).mean() > 1.0  # the LoRA changed the images
    # resuming with another LoRA would mix images: refused
    capsys.readouterr()
    assert _evaluate(run_folder, manifest, tuned, "--limit", "1", "--metrics", "AIC") == 2
    assert "another checkpoint or settings" in capsys.readouterr().err


def test_an_evaluation_image_carries_the_common_provenance(run_folder, manifest, tmp_path):
    """Evaluation images are written through the one writer: the keys every output carries, plus the
    clip's class and the protocol."""
    from seeingsounds import __version__
    from seeingsounds.data.protocols import get_protocol
    from seeingsounds.evaluation.runner import image_path
    from seeingsounds.imaging import SOFTWARE_KEY, read_provenance
    from seeingsounds.paths import file_sha256

    out = tmp_path / "eval"
    assert _evaluate(run_folder, manifest, out, "--limit", "1", "--metrics", "AIC") == 0
    row = get_protocol("landscape").load(manifest).evaluation_rows(1)[0]
    meta = read_provenance(image_path(out, row, 1))
    assert {k: meta.get(k) for k in (SOFTWARE_KEY, "checkpoint", "preset", "generator", "steps", "size", "seed",
                                      "source", "source_sha256", "label", "protocol")} == {
        SOFTWARE_KEY: f"seeingsounds {__version__}", "checkpoint": str(run_folder), "preset": "tiny",
        "generator": "flux:tiny:flux", "steps": 2, "size": "32x32", "seed": 1, "source": str(row.path),
        "source_sha256": file_sha256(row.path), "label": row.label, "protocol": "landscape"}
    assert "settings" not in meta  # the settings are the common keys (steps, guidance, size), not a dict of their own


def test_two_processes_share_the_images_and_report_the_same_numbers(run_folder, manifest, tmp_path):
    """`torchrun --nproc_per_node 2` (what `accelerate launch` runs): each process generates half of the
    clip x seed pairs, each image is written once, and report.json has the numbers of one process."""
    import socket
    import subprocess
    import sys

    args = ["--checkpoint", str(run_folder), "--protocol", "landscape", "--data", str(manifest), "--seeds", "0", "1",
            "--metrics", "AIC", "R@5", "AIS", "--batch-size", "1", "--device", "cpu", *TINY_JUDGES]
    one = tmp_path / "one"
    assert main(["evaluate", *args, "--out", str(one)]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "seeingsounds.cli.main", "evaluate", *args, "--out", str(two)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stdout.count("report: ") == 1  # only the main process reports
    first, second = (json.loads((d / "report.json").read_text()) for d in (one, two))
    assert second["counts"] == {"clips": 4, "images": 8, "generated": 8, "reused": 0, "generated_by_process": [4, 4]}
    assert second["processes"] == 2
    assert second["metrics"] == first["metrics"] and second["per_class"] == first["per_class"]
    names = sorted(p.relative_to(two) for p in (two / "images").rglob("*.png"))
    assert names == sorted(p.relative_to(one) for p in (one / "images").rglob("*.png")) and len(names) == 8
    for name in names:  # the same seeds give the same pixels, whichever process painted them
        assert (two / name).read_bytes() == (one / name).read_bytes()


def test_share_deals_every_item_to_exactly_one_process():
    from seeingsounds.evaluation.runner import share

    items = list(range(11))
    shares = [share(items, rank, 3) for rank in range(3)]
    assert sorted(x for s in shares for x in s) == items
    assert [len(s) for s in shares] == [4, 4, 3]


def test_cpu_offload_reaches_the_pipeline(run_folder, manifest, tmp_path, capsys):
    code = _evaluate(run_folder, manifest, tmp_path / "eval", "--limit", "1", "--metrics", "AIC", "--cpu-offload",
                     "--device", "cpu")
    assert code == 2 and "offload" in capsys.readouterr().err.lower()  # offloading needs an accelerator
