"""benchmarks/gpu.py cannot rot: every part runs at toy sizes on the CPU, the real sizes build on the meta
device, and one part failing, running late or not fitting the budget leaves the others measured."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu.py"
PARTS = ["flux", "ast", "train", "live", "t5", "compile", "wan"]
MAIN = {"flux": "s_per_image", "ast": "clips_per_s", "train": "steps_per_s", "live": "pictures_per_s",
        "t5": "captions_per_s", "compile": "s_per_image", "wan": "s_per_clip"}


#: the project's dependencies that the lent GPU machine lacks (it reaches no index; only the wheels named in
#: the script's docstring travel): the benchmark must run without them
NOT_ON_THE_GPU_MACHINE = ("av", "soundfile", "soxr", "pedalboard", "sounddevice", "gradio")


def run_without(modules, args, **kwargs):
    """``python SCRIPT args`` with ``modules`` unimportable (``import av`` raises ModuleNotFoundError)."""
    code = (f"import runpy, sys; sys.modules.update(dict.fromkeys({list(modules)!r})); "
            f"sys.path.insert(0, {str(SCRIPT.parent)!r}); sys.argv[0] = {str(SCRIPT)!r}; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One ``--tiny --meta-check`` run, from another working directory with a relative ``--out``, without
    the packages the GPU machine lacks."""
    base = tmp_path_factory.mktemp("gpu")
    cwd = base / "work"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = run_without(NOT_ON_THE_GPU_MACHINE, ["--tiny", "--meta-check", "--out", "../out"], cwd=cwd, env=env,
                       timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((base / "out" / "results.json").read_text())
    return result, (base / "out" / "results.md").read_text(), done.stdout


def _numbers(row):
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def test_every_part_measures_positive_numbers(tiny_run):
    result, _, _ = tiny_run
    assert list(result["parts"]) == PARTS
    for name, part in result["parts"].items():
        assert part["status"] == "ok", (name, part.get("reason"))
        assert part["main"] == MAIN[name] and part["rows"], name
        for row in part["rows"]:
            values = _numbers(row)
            assert row[MAIN[name]] > 0, (name, row)
            assert all(math.isfinite(v) and v >= 0 for v in values.values()), (name, row)
    env = result["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["diffusers"] and env["date"][:4].isdigit()
    assert result["tiny"] is True and 0 < result["total_s"] <= result["budget_s"]


def test_tiny_shapes_are_recorded(tiny_run):
    parts = tiny_run[0]["parts"]
    flux = parts["flux"]
    assert [(r["height"], r["steps"]) for r in flux["rows"]] == [(64, 2), (32, 2)]
    assert flux["conditioning"] == {"prompt_embeds": [16, 64], "pooled_prompt_embeds": [32]}
    for r in flux["rows"]:  # the split adds up to the image
        assert r["conditioning_s"] + r["denoising_s"] + r["vae_decode_s"] == pytest.approx(r["s_per_image"], rel=1e-6)
    assert [(r["batch"], r["dtype"]) for r in parts["ast"]["rows"]] == [
        (b, d) for d in ("bf16", "fp32") for b in (1, 2, 4)]
    assert all(r["tokens_shape"] == [r["batch"], 1214, 32] for r in parts["ast"]["rows"])
    assert parts["ast"]["attention"] == "sdpa"
    train = parts["train"]
    assert train["features_shape"] == [4, 1214, 32]
    assert train["targets_shapes"] == {"prompt_embeds": [4, 16, 64], "pooled_prompt_embeds": [4, 32]}
    assert [r["order"] for r in train["rows"]] == ["adapter_first", "pool_first"]
    for r in train["rows"]:
        split = r["read_features_s"] + r["move_features_s"] + r["gather_targets_s"] + r["compute_s"]
        assert split == pytest.approx(r["step_s"]) and r["steps_per_s"] == pytest.approx(1 / r["step_s"])
        assert r["bound_by"] in ("reading features", "compute")
    assert train["rows"][0]["params_m"] > train["rows"][1]["params_m"]  # pooling first is the smaller aligner
    assert train["read_features_8_threads_s"] > 0
    live = parts["live"]["rows"]
    assert [(r["generator"], r["steps"], r["height"]) for r in live] == [("sd-turbo", 1, 64), ("flux-schnell", 4, 64)]
    assert live[0]["conditioning"] == {"prompt_embeds": [77, 24]}
    assert parts["t5"]["rows"][0]["targets_shape"] == [4, 16, 32]
    compiled = parts["compile"]
    assert compiled["compile_mode"] == "regional" and compiled["compile_backend"] == "eager"
    assert compiled["rows"][0]["compile_s"] > 0 and compiled["rows"][0]["height"] == 64
    assert parts["wan"]["rows"][0]["video_shape"] == [5, 32, 32, 3]


def test_real_sizes_build_on_the_meta_device(tiny_run):
    meta = tiny_run[0]["meta_check"]
    assert meta["ast"]["tokens_shape"] == [32, 1214, 768]
    assert meta["flux-dev"]["params_b"] == pytest.approx(11.90, abs=0.01)
    assert meta["flux-dev"]["sample_shape"] == [1, 4096, 64] and meta["flux-dev"]["image_shape"] == [1, 3, 1024, 1024]
    assert meta["flux-dev"]["conditioning"] == {"prompt_embeds": [1, 512, 4096], "pooled_prompt_embeds": [1, 768]}
    assert meta["flux-schnell"]["conditioning"]["prompt_embeds"] == [1, 256, 4096]
    for order, millions in (("adapter_first", 78.1), ("pool_first", 11.7)):
        train = meta["train"][order]
        assert train["params_m"] == pytest.approx(millions, abs=0.1) and train["loss_shape"] == [32]
        assert train["pred_shapes"] == {"prompt_embeds": [32, 512, 4096], "pooled_prompt_embeds": [32, 768]}
    assert meta["t5"] == {"params_b": pytest.approx(4.76, abs=0.01), "targets_shape": [32, 512, 4096]}
    assert meta["sd-turbo"]["unet_params_b"] == pytest.approx(0.866, abs=0.001)
    assert meta["sd-turbo"]["conditioning"] == [1, 77, 1024] and meta["sd-turbo"]["image_shape"] == [1, 3, 512, 512]
    assert meta["wan"]["params_b"] == pytest.approx(1.42, abs=0.01)
    assert meta["wan"]["sample_shape"] == [1, 16, 5, 60, 104] and meta["wan"]["video_shape"] == [1, 3, 17, 480, 832]


def test_the_table_is_printed_and_written(tiny_run):
    _, table, stdout = tiny_run
    assert stdout.strip() == table.strip()
    for name in PARTS:
        assert f"## {name}: " in table
    assert "| adapter_first | adapter_first | 4 |" in table and "## meta check" in table


@pytest.fixture
def gpu_module(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("gpu_benchmark_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_failing_or_late_part_leaves_the_others_measured(gpu_module, monkeypatch, tmp_path):
    def boom(ctx, record):
        record["rows"].append({"case": "half", "x": 1.0})
        raise RuntimeError("CUDA out of memory (pretend)")

    def late(ctx, record):
        record["rows"].append({"case": "first", "x": 2.0})
        time.sleep(30)

    def fine(ctx, record):
        record["rows"].append({"case": "all", "x": 3.0})

    Part = gpu_module.Part
    monkeypatch.setattr(gpu_module, "PARTS", (Part("boom", "fails", boom, 60, 1, "x"), Part("late", "sleeps", late, 0.5, 1, "x"),
                                              Part("fine", "works", fine, 60, 1, "x"),
                                              Part("big", "does not fit", fine, 60, 1000, "x")))
    start = time.perf_counter()
    assert gpu_module.main(["--out", str(tmp_path), "--device", "cpu", "--budget-s", "100"]) == 0
    assert time.perf_counter() - start < 25  # the late part was stopped at its limit, not slept out
    parts = json.loads((tmp_path / "results.json").read_text())["parts"]
    assert parts["boom"]["status"] == "error" and "out of memory" in parts["boom"]["reason"]
    assert parts["boom"]["rows"] == [{"case": "half", "x": 1.0}]  # what it measured before failing is kept
    assert parts["late"]["status"] == "timed out" and parts["late"]["rows"][0]["x"] == 2.0
    assert parts["fine"]["status"] == "ok" and parts["fine"]["rows"] == [{"case": "all", "x": 3.0}]
    assert parts["big"]["status"] == "skipped" and "budget" in parts["big"]["reason"] and "1000 s" in parts["big"]["reason"]
    assert "## big: does not fit — skipped (budget:" in (tmp_path / "results.md").read_text()


STOPPED_RUN = """
import importlib.util, json, os, signal, sys, time
sys.path.insert(0, {folder!r})
spec = importlib.util.spec_from_file_location("gpu_benchmark_under_test", {script!r})
gpu = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = gpu
spec.loader.exec_module(gpu)
out = sys.argv[1]

def first(ctx, record):  # what the results on disk say while a part runs
    on_disk = json.load(open(os.path.join(out, "results.json")))["parts"]
    record["rows"].append({{"case": "seen", "x": 1.0, "on_disk": on_disk["first"]["status"]}})

def killed(ctx, record):
    record["rows"].append({{"case": "before the kill", "x": 2.0}})
    os.kill(os.getpid(), signal.SIGTERM)  # what `timeout` sends at the run's outer limit
    time.sleep(30)

gpu.PARTS = (gpu.Part("first", "one", first, 60, 1, "x"), gpu.Part("killed", "two", killed, 60, 1, "x"),
             gpu.Part("after", "three", first, 60, 1, "x"))
sys.exit(gpu.main(["--out", out, "--device", "cpu", "--budget-s", "100"]))
"""


def test_a_run_stopped_by_sigterm_keeps_what_it_measured(tmp_path):
    code = STOPPED_RUN.format(folder=str(SCRIPT.parent), script=str(SCRIPT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 128 + 15, done.stderr[-3000:]
    assert time.perf_counter() - start < 25  # stopped at the signal, not slept out
    parts = json.loads((tmp_path / "results.json").read_text())["parts"]
    assert parts["first"]["status"] == "ok" and parts["first"]["rows"][0]["on_disk"] == "running"
    assert parts["killed"]["status"] == "stopped" and "SIGTERM" in parts["killed"]["reason"]
    assert parts["killed"]["rows"] == [{"case": "before the kill", "x": 2.0}]  # the part in flight keeps its rows
    assert parts["after"]["status"] == "not run" and "SIGTERM" in parts["after"]["reason"]
    assert "## killed: two — stopped (stopped by SIGTERM" in (tmp_path / "results.md").read_text()
    assert "## after: three — not run" in done.stdout


def test_unknown_part_is_refused_before_anything_runs(gpu_module, tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_module.main(["--out", str(tmp_path / "o"), "--tiny", "--parts", "flux,nope"])
    assert "unknown parts ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_real_size_models_are_built_where_they_run_in_bf16(gpu_module):
    """The 11.9 B FLUX.1 and 4.8 B T5-XXL are made directly on the device (meta here) in bf16: no host copy
    and no fp32 pass, which at full size would take the GPU machine's minutes and host memory."""
    from diffusers import FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    import _common

    torch = _common.torch
    meta = torch.device("meta")

    def where(factory):  # checked before the module is made (made on the CPU, it would fill the host's memory)
        def made():
            assert (torch.empty(0).device.type, torch.get_default_dtype()) == ("meta", torch.bfloat16)
            return factory()
        return made

    for factory in (lambda: FluxTransformer2DModel(guidance_embeds=True), lambda: T5EncoderModel(T5Config(**_common.T5_XXL))):
        model = _common.build_random(where(factory), meta, torch.bfloat16)
        assert {t.device.type for t in list(model.parameters()) + list(model.buffers())} == {"meta"}
        assert {t.dtype for t in model.parameters()} == {torch.bfloat16}
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.get_default_dtype() == torch.float32  # restored
