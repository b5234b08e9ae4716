"""The paper's real sizes on one GPU, in one short run: random weights at full size, no downloads.

    python benchmarks/gpu.py --out gpu-results                  # on a CUDA GPU (~5 min on an H200)
    python benchmarks/gpu.py --out tmp --tiny                   # every part at toy sizes on the CPU (the test)
    python benchmarks/gpu.py --out tmp --meta-check --parts none  # real-size shapes on the meta device only
    python benchmarks/gpu.py --out gpu-results --parts flux,ast --budget-s 200

Parts, in the order they run (the most valuable first; each has its own time limit, and the global
``--budget-s`` skips what no longer fits, saying so):

* ``flux``: FLUX.1-dev transformer (11.9 B, bf16) + VAE: seconds per image at 10 steps, 1024² and 512²,
  eager, through the project's pipeline (AST + aligner + generator), with peak memory;
* ``ast``: the AudioSet AST at full size (SDPA), clips/s at batch 1, 8, 32, fp32 and bf16 (model only);
* ``train``: the aligner's training step at real shapes (batch 32, AST tokens [1214, 768] -> T5 [512, 4096]
  + CLIP [768]), adapter-first (the paper) and pool-first, bf16 autocast, split into reading the features
  from the project's feature cache (pages evicted first), moving them to the device, gathering the targets
  from the run's target store, and compute (forward, loss, backward, both AdamW steps);
* ``live``: the live loop: 10.24 s of audio -> AST -> aligner -> SD-Turbo-size UNet, 1 step at 512², and
  FLUX.1-schnell-size, 4 steps; pictures per second, timed by stage through the conditioner and pipeline,
  and through live mode itself (``seeingsounds.live``, ``benchmarks/live.py``'s ``measure``: a stream
  read as fast as possible, eased conditioning, one seed);
* ``t5``: the T5-XXL encoder (bf16): captions encoded per second at 512 tokens (tokenising excluded);
* ``compile``: FLUX.1-dev at 1024², then 512², with ``torch.compile`` on the transformer (static shapes);
  each size's compile time apart;
* ``wan``: Wan 2.1 T2V 1.3B: seconds per clip (17 frames, 480x832, 10 steps, guidance 5).

Writes ``results.json`` and ``results.md`` into ``--out`` and the table to stdout. ``--tiny`` runs every
part at toy widths and sizes (on the CPU unless ``--device`` says otherwise; ``torch.compile`` then uses
the ``eager`` backend); ``--meta-check`` builds every part's real-size models on the meta device and runs
their forward at the real shapes first, so shape errors surface on any machine.

Writes are atomic and happen at the start and before and after every part (the part in flight shows as
``running``); SIGTERM (an outer time limit) stops the part in flight as ``stopped`` with the rows it
finished, marks the rest ``not run``, writes both files and exits with 143.

On the project's lent H200 (no package index; torch 2.11, transformers 5.17, huggingface_hub 1.33,
safetensors 0.8 and torchaudio are there, diffusers is not), one ``run`` call does it. The only wheel to
carry is ``diffusers-0.42.1-py3-none-any.whl`` (pure Python; everything it needs is there, and PyAV,
soundfile, soxr and pedalboard are not needed: the test runs ``--tiny`` without them). Here, in the root
of the checkout that the device call sends:

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1

then ``run`` with carry ``[".whl"]`` and timeout_s 570 (the 480 s budget, ~20 s to start, and room for a
part stopped at its limit; the output goes to a file, not a pipe, so a stop loses none of it):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 || exit; mkdir -p $OUT/gpu;
    python3 benchmarks/gpu.py --out $OUT/gpu --budget-s 480 >$OUT/gpu/log.txt 2>&1; rc=$?;
    cat $OUT/gpu/results.md; tail -n 30 $OUT/gpu/log.txt; exit $rc
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine reaches no hub; set before huggingface_hub loads

import numpy as np
import torch
from _common import (
    FLUX_VAE,
    SD_TURBO_SCHEDULER,
    SD_TURBO_UNET,
    SD_VAE,
    T5_XXL,
    TINY_AST,
    TINY_FLUX_TRANSFORMER,
    TINY_SD_UNET,
    TINY_SD_VAE,
    TINY_T5,
    WAN_1_3B,
    Stopwatch,
    build_random,
    machine_name,
    num_params,
    random_flux_pipeline,
    random_pipeline,
    sync,
    timed_vae_decode,
    write_configs,
)

#: figures to compare with (README "Measured on a GPU")
REFERENCES = {
    "paper_flux_s_per_image_h100_10_steps": 3.10,
    "published_flux_dev_h100_1024_10_steps_eager_s": 2.4,  # 6.7 s at 28 steps
    "published_flux_dev_h100_1024_10_steps_compiled_s": 1.5,  # 4.3 s at 28 steps
    "published_ast_a100_batch8_sdpa_clips_per_s": 570,
}
GOALS = {"flux_dev_1024_10_steps_compiled_s": 1.0, "live_pictures_per_s": 10.0}
#: threads of the parallel read of a batch of cached features (the train part)
READ_THREADS = 8
#: captions of a VGGSound-50 run with 3 volume edits and 256 mixes (README: 429 encoded)
VGGSOUND50_CAPTIONS = 429


@dataclass(frozen=True)
class Scale:
    """The shapes of every part: the paper's real ones, or toy ones for the CPU."""

    tiny: bool
    flux_sizes: tuple[int, ...]
    compile_sizes: tuple[int, ...]
    flux_steps: int
    images: int  # timed images per case (after one untimed)
    ast_batches: tuple[int, ...]
    min_repeats: int
    train_batch: int
    seq_len: int
    train_steps: int
    t5_batch: int
    t5_len: int
    live_size: int
    live_pictures: int
    wan_frames: int
    wan_height: int
    wan_width: int
    wan_steps: int


REAL = Scale(tiny=False, flux_sizes=(1024, 512), compile_sizes=(1024, 512), flux_steps=10, images=2, ast_batches=(1, 8, 32), min_repeats=5,
             train_batch=32, seq_len=512, train_steps=4, t5_batch=32, t5_len=512, live_size=512, live_pictures=10,
             wan_frames=17, wan_height=480, wan_width=832, wan_steps=10)
TINY = Scale(tiny=True, flux_sizes=(64, 32), compile_sizes=(64,), flux_steps=2, images=1, ast_batches=(1, 2, 4), min_repeats=1,
             train_batch=4, seq_len=16, train_steps=1, t5_batch=4, t5_len=16, live_size=64, live_pictures=2,
             wan_frames=5, wan_height=32, wan_width=32, wan_steps=2)


@dataclass
class Context:
    device: torch.device
    dtype: torch.dtype
    scale: Scale
    workdir: Path
    compile_backend: str
    compile_mode: str  # "regional": the repeated blocks (diffusers' compile_repeated_blocks); "full": the whole transformer


class PartTimeout(BaseException):
    """A part ran past its limit (a BaseException, so no ``except Exception`` inside a library swallows it)."""


class Stopped(BaseException):
    """The run was told to stop (SIGTERM: an outer time limit such as ``timeout``'s, or Ctrl-C)."""

    def __init__(self, reason: str, exit_code: int):
        super().__init__(reason)
        self.exit_code = exit_code


def stop_on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Stopped("stopped by SIGTERM (an outer time limit?)", 128 + signum)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise PartTimeout(f"ran past its {seconds:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset; on the CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def repeat(fn: Callable[[], Any], device: torch.device, *, repeats: int, min_s: float = 0.0) -> tuple[float, int]:
    """Mean seconds of ``fn`` after one untimed call: at least ``repeats`` calls and ``min_s`` seconds."""
    fn()
    sync(device)
    n, start = 0, time.perf_counter()
    while n < repeats or time.perf_counter() - start < min_s:
        fn()
        n += 1
        if n >= 1000:
            break
    sync(device)
    return (time.perf_counter() - start) / n, n


def noise_waves(sample_rate: int, samples: int, n: int = 1) -> list[np.ndarray]:
    """Seeded noise at the encoder's rate and window (what a microphone chunk would be)."""
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(samples)).astype(np.float32) for _ in range(n)]


def time_images(pipe: Any, ctx: Context, *, size: int, steps: int, guidance: float, images: int) -> dict[str, Any]:
    """Seconds per image through the pipeline (batch 1): audio -> conditioning (feature extraction, AST,
    aligner), denoising (with the conversion to a picture), VAE decoding. FLUX takes no negatives."""
    watch = Stopwatch(ctx.device)
    settings = pipe.resolve_settings(steps, guidance, size, size, 1, 1)
    waves = noise_waves(pipe.conditioner.sample_rate, pipe.conditioner.window_samples)
    restore = timed_vae_decode(pipe.generator.vae, watch)
    peak_memory_reset(ctx.device)
    try:
        for i in range(1 + images):
            with watch.stage("total"):
                with watch.stage("conditioning"):
                    cond = pipe.conditioner.predict_waves(waves)
                pipe.generate_from_conditioning(cond, seeds=[i], negative=None, settings=settings, batch_size=1)
    finally:
        restore()
    total, decode, conditioning = (watch.mean(k, skip=1) for k in ("total", "VAE decoding", "conditioning"))
    return {"height": size, "width": size, "steps": steps, "s_per_image": total, "first_image_s": watch.times["total"][0],
            "conditioning_s": conditioning, "denoising_s": total - decode - conditioning, "vae_decode_s": decode,
            "images_timed": images, "peak_memory_gib": peak_memory_gib(ctx.device)}


# ---- parts -------------------------------------------------------------------------------------------
def part_flux(ctx: Context, record: dict[str, Any], *, compiled: bool = False) -> None:
    s = ctx.scale
    pipe = random_flux_pipeline(ctx.device, ctx.dtype, ctx.workdir / "flux-dev", tiny=s.tiny,
                                max_sequence_length=s.seq_len)
    transformer = pipe.generator.transformer
    record["transformer_params_b"] = num_params(transformer) / 1e9
    record["conditioning"] = {n: list(v) for n, v in pipe.aligner.conditioning_shapes.items()}
    sizes = s.compile_sizes if compiled else s.flux_sizes
    if compiled:  # static shapes: each size gets its own graph, its compile paid by its first image
        if ctx.compile_mode == "regional":  # one graph per block type, reused by the 57 blocks: a short compile
            transformer.compile_repeated_blocks(backend=ctx.compile_backend, dynamic=False)
        else:
            transformer.compile(backend=ctx.compile_backend, dynamic=False)
        record["compile_backend"], record["compile_mode"] = ctx.compile_backend, ctx.compile_mode
    for size in sizes:
        row = time_images(pipe, ctx, size=size, steps=s.flux_steps, guidance=3.5, images=s.images)
        row["case"] = f"{size}x{size}, {s.flux_steps} steps, " + ("compiled" if compiled else "eager")
        if compiled:  # the first image pays for tracing and code generation
            row["compile_s"] = row["first_image_s"] - row["s_per_image"]
        record["rows"].append(row)


def part_compile(ctx: Context, record: dict[str, Any]) -> None:
    try:
        part_flux(ctx, record, compiled=True)
    finally:
        torch._dynamo.reset()


def part_ast(ctx: Context, record: dict[str, Any]) -> None:
    from transformers import ASTConfig, ASTModel

    s = ctx.scale
    config = ASTConfig(**(TINY_AST if s.tiny else {}), attn_implementation="sdpa")
    record["attention"] = config._attn_implementation
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model = build_random(lambda: ASTModel(config), ctx.device, dtype)
        record["params_m"] = num_params(model) / 1e6
        for batch in s.ast_batches:
            x = torch.randn(batch, config.max_length, config.num_mel_bins, device=ctx.device, dtype=dtype)
            shape: list[int] = []

            def forward() -> None:
                with torch.no_grad():
                    shape[:] = model(input_values=x).last_hidden_state.shape

            peak_memory_reset(ctx.device)
            seconds, n = repeat(forward, ctx.device, repeats=s.min_repeats, min_s=0 if s.tiny else 0.5)
            record["rows"].append({"case": f"batch {batch}, {name}", "batch": batch, "dtype": name,
                                   "clips_per_s": batch / seconds, "s_per_batch": seconds, "repeats": n,
                                   "tokens_shape": list(shape), "peak_memory_gib": peak_memory_gib(ctx.device)})
        del model


def _evict(paths: list[Path]) -> bool:
    """Drop the files' pages from the OS cache (``posix_fadvise``), so reads come from the disk."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:  # a sandboxed kernel may not offer it: the reads then come from the page cache
            return False
        finally:
            os.close(fd)
    return True


def _cached_only(waves: list[np.ndarray]) -> torch.Tensor:
    raise AssertionError("the train part feeds cached features only, never waveforms")


def _train_spec(scale: Scale) -> dict[str, Any]:
    from diffusers import FluxTransformer2DModel

    from seeingsounds.generators.flux import flux_conditioning_spec

    defaults = {k: p.default for k, p in inspect.signature(FluxTransformer2DModel.__init__).parameters.items()}
    return flux_conditioning_spec({**defaults, **(TINY_FLUX_TRANSFORMER if scale.tiny else {})}, scale.seq_len)


def part_train(ctx: Context, record: dict[str, Any]) -> None:
    from transformers import ASTConfig

    from seeingsounds.cache import FeatureCache, read_tokens
    from seeingsounds.devices import mixed_precision
    from seeingsounds.model import create_aligner
    from seeingsounds.training.objective import branch_optimizers, per_sample_loss
    from seeingsounds.training.pairs import encode_batch
    from seeingsounds.training.targets import open_store, write_store

    s, device = ctx.scale, ctx.device
    ast = ASTConfig(**(TINY_AST if s.tiny else {}))
    tokens = ((ast.num_mel_bins - ast.patch_size) // ast.frequency_stride + 1) * (
        (ast.max_length - ast.patch_size) // ast.time_stride + 1) + 2
    width, batch = ast.hidden_size, s.train_batch
    spec = _train_spec(s)
    names = list(spec)
    record["features_shape"] = [batch, tokens, width]
    record["targets_shapes"] = {n: [batch, *sp.shape] for n, sp in spec.items()}
    # two batches of feature-cache entries (fp16, as the cache stores them) and a target store of one batch of captions
    cache = FeatureCache(ctx.workdir / "features")
    paths = []
    for i in range(2 * batch):
        path = cache.root / f"clip{i:04d}.safetensors"
        cache.write(path, path.stem, {"clip": i}, {"tokens": torch.randn(tokens, width)})
        paths.append(path)
    texts = [f"caption {i}" for i in range(batch)]
    store_path = write_store(ctx.workdir / "targets.safetensors", texts, {n: sp.shape for n, sp in spec.items()},
                             lambda chunk: {n: torch.randn(len(chunk), *sp.shape) for n, sp in spec.items()})
    store = open_store(store_path, names, device, resident=range(len(texts)), budget_gb=None,
                       mixed_precision=mixed_precision(device))
    record["targets_resident_rows"] = store.resident_rows
    record["feature_bytes_per_batch"] = sum(p.stat().st_size for p in paths[:batch])
    try:
        for order in ("adapter_first", "pool_first"):
            preset_options = {"hidden_dim": 64, "attention_heads": 4} if s.tiny else {}
            with torch.device(device):
                aligner = create_aligner("flux-dev", width, spec, order=order, **preset_options).train()
            _, optimizers = branch_optimizers(aligner, spec, names, {"sequence": 1e-5, "pooled": 1e-7}, 0.01)
            watch = Stopwatch(device)
            evicted = False
            peak_memory_reset(device)
            for step in range(1 + s.train_steps):
                chunk = paths[(step % 2) * batch:(step % 2 + 1) * batch]
                evicted = _evict(chunk)
                with watch.stage("read features"):
                    xs = [read_tokens(p) for p in chunk]
                with watch.stage("move features"):
                    x = encode_batch(xs, _cached_only, device)
                with watch.stage("gather targets"):
                    target = store.gather(torch.arange(batch))
                with watch.stage("compute"):
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        pred = aligner(x)
                    loss = per_sample_loss(pred, target, names).mean()
                    loss.backward()
                    for opt in optimizers:
                        opt.step()
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
            split = {k: watch.mean(k, skip=1) for k in ("read features", "move features", "gather targets", "compute")}
            step_s = sum(split.values())
            data_s = split["read features"] + split["move features"]
            record["rows"].append({
                "case": order, "order": order, "batch": batch, "params_m": aligner.num_parameters() / 1e6,
                "steps_per_s": 1 / step_s, "step_s": step_s, "compute_steps_per_s": 1 / split["compute"],
                "read_features_s": split["read features"], "move_features_s": split["move features"],
                "gather_targets_s": split["gather targets"], "compute_s": split["compute"],
                "read_mb_per_s": record["feature_bytes_per_batch"] / 2**20 / max(split["read features"], 1e-9),
                "bound_by": "reading features" if data_s > split["compute"] else "compute",
                "pages_evicted": evicted, "steps_timed": s.train_steps, "peak_memory_gib": peak_memory_gib(device)})
            del aligner, optimizers, pred, loss
        # the trainer reads in its main process by default (--num-workers 0); what parallel reads could give:
        times = []
        with ThreadPoolExecutor(READ_THREADS) as pool:
            for step in range(1 + s.train_steps):
                chunk = paths[(step % 2) * batch:(step % 2 + 1) * batch]
                _evict(chunk)
                start = time.perf_counter()
                list(pool.map(read_tokens, chunk))
                times.append(time.perf_counter() - start)
        record[f"read_features_{READ_THREADS}_threads_s"] = sum(times[1:]) / len(times[1:])
    finally:
        store.close()


def part_t5(ctx: Context, record: dict[str, Any]) -> None:
    from transformers import T5Config, T5EncoderModel

    s = ctx.scale
    config = T5Config(**(TINY_T5 if s.tiny else T5_XXL))
    model = build_random(lambda: T5EncoderModel(config), ctx.device, torch.bfloat16)
    record["params_b"] = num_params(model) / 1e9
    ids = torch.randint(0, config.vocab_size, (s.t5_batch, s.t5_len), device=ctx.device)
    shape: list[int] = []

    def forward() -> None:
        with torch.no_grad():
            shape[:] = model(input_ids=ids).last_hidden_state.shape

    peak_memory_reset(ctx.device)
    seconds, n = repeat(forward, ctx.device, repeats=s.min_repeats // 2 or 1, min_s=0 if s.tiny else 0.5)
    rate = s.t5_batch / seconds
    record["rows"].append({"case": f"batch {s.t5_batch} x {s.t5_len} tokens, bf16", "batch": s.t5_batch,
                           "tokens": s.t5_len, "captions_per_s": rate, "s_per_batch": seconds, "repeats": n,
                           "targets_shape": list(shape), "vggsound50_captions_s": VGGSOUND50_CAPTIONS / rate,
                           "peak_memory_gib": peak_memory_gib(ctx.device)})


def sd_turbo_pipeline(ctx: Context) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from seeingsounds.generators.sd import SDBackend

    tiny = ctx.scale.tiny
    unet = build_random(lambda: UNet2DConditionModel(**{**SD_TURBO_UNET, **(TINY_SD_UNET if tiny else {})}),
                        ctx.device, ctx.dtype)
    vae = build_random(lambda: AutoencoderKL(**{**SD_VAE, **(TINY_SD_VAE if tiny else {})}), ctx.device, ctx.dtype)
    scheduler = EulerDiscreteScheduler(**SD_TURBO_SCHEDULER)
    generator = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                                        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder = write_configs(ctx.workdir / "sd-turbo", {"unet": unet, "vae": vae, "scheduler": scheduler},
                           tokenizer_max_length=77)
    return random_pipeline("sd-turbo", generator, SDBackend(folder), ctx.device, ctx.dtype, tiny)


def time_live(pipe: Any, ctx: Context, *, steps: int, guidance: float) -> dict[str, Any]:
    """Pictures per second of the live loop: a 10.24 s chunk -> conditioner -> one picture, repeated."""
    s = ctx.scale
    watch = Stopwatch(ctx.device)
    settings = {"num_inference_steps": steps, "guidance_scale": guidance, "height": s.live_size, "width": s.live_size}
    waves = noise_waves(pipe.conditioner.sample_rate, pipe.conditioner.window_samples)
    peak_memory_reset(ctx.device)
    for i in range(1 + s.live_pictures):
        with watch.stage("total"):
            with watch.stage("audio -> conditioning"):
                cond = pipe.conditioner.predict_waves(waves)
            with watch.stage("picture"):
                pipe.generate_from_conditioning(cond, seeds=[i], negative=None, settings=settings, batch_size=1)
    total = watch.mean("total", skip=1)
    return {"height": s.live_size, "width": s.live_size, "steps": steps, "pictures_per_s": 1 / total,
            "s_per_picture": total, "conditioning_s": watch.mean("audio -> conditioning", skip=1),
            "picture_s": watch.mean("picture", skip=1), "pictures_timed": s.live_pictures,
            "peak_memory_gib": peak_memory_gib(ctx.device)}


def time_live_mode(pipe: Any, ctx: Context, *, steps: int, guidance: float) -> dict[str, Any]:
    """The same generator through live mode (``benchmarks/live.py``'s ``measure``): noise streamed as fast as
    possible, a picture per 0.5 s hop of the encoder's window."""
    from live import measure

    from seeingsounds.engine import Engine
    from seeingsounds.request import Settings

    s, rate, hop = ctx.scale, pipe.conditioner.sample_rate, 0.5
    wave = noise_waves(rate, int(rate * hop * (1 + s.live_pictures)))[0]
    row = measure(Engine(pipe), wave, rate, hop=hop, window=None, realtime=False,
                  settings=Settings(steps=steps, guidance=guidance, width=s.live_size, height=s.live_size))
    return {"live_mode_pictures_per_s": row["pictures_per_s"], "live_mode_latency_s": row["latency_mean_s"]}


def part_live(ctx: Context, record: dict[str, Any]) -> None:
    record["note"] = ("the loop timed by stage through the project's AudioConditioner and SeeingSoundsPipeline "
                      "(feature extraction on the CPU included), and through live mode (live_mode_*)")
    pipe = sd_turbo_pipeline(ctx)
    record["sd_turbo_unet_params_b"] = num_params(pipe.generator.unet) / 1e9
    row = time_live(pipe, ctx, steps=1, guidance=0.0)
    row.update(time_live_mode(pipe, ctx, steps=1, guidance=0.0))
    record["rows"].append({"case": f"SD-Turbo size, 1 step, {row['height']}x{row['width']}", "generator": "sd-turbo",
                           "conditioning": {n: list(v) for n, v in pipe.aligner.conditioning_shapes.items()}, **row})
    del pipe, row
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    pipe = random_flux_pipeline(ctx.device, ctx.dtype, ctx.workdir / "flux-schnell", preset="flux-schnell",
                                tiny=ctx.scale.tiny, max_sequence_length=ctx.scale.seq_len // 2)
    record["flux_schnell_params_b"] = num_params(pipe.generator.transformer) / 1e9
    row = time_live(pipe, ctx, steps=4, guidance=0.0)
    row.update(time_live_mode(pipe, ctx, steps=4, guidance=0.0))
    record["rows"].append({"case": f"FLUX.1-schnell size, 4 steps, {row['height']}x{row['width']}",
                           "generator": "flux-schnell",
                           "conditioning": {n: list(v) for n, v in pipe.aligner.conditioning_shapes.items()}, **row})


def part_wan(ctx: Context, record: dict[str, Any]) -> None:
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    from seeingsounds.generators.wan import WanBackend
    from seeingsounds.tiny.wan import tiny_wan_models

    s = ctx.scale
    if s.tiny:
        transformer, vae = (build_random(lambda i=i: tiny_wan_models()[i], ctx.device, ctx.dtype) for i in (0, 1))
    else:
        transformer = build_random(lambda: WanTransformer3DModel(**WAN_1_3B), ctx.device, ctx.dtype)
        vae = build_random(lambda: AutoencoderKLWan(), ctx.device, ctx.dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    generator = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer, scheduler=scheduler)
    folder = write_configs(ctx.workdir / "wan", {"transformer": transformer, "vae": vae, "scheduler": scheduler})
    backend = WanBackend(folder, max_sequence_length=s.seq_len)
    pipe = random_pipeline("wan-1.3b", generator, backend, ctx.device, ctx.dtype, s.tiny)
    record["transformer_params_b"] = num_params(transformer) / 1e9
    watch = Stopwatch(ctx.device)
    settings = pipe.resolve_settings(s.wan_steps, 5.0, s.wan_height, s.wan_width, num_frames=s.wan_frames)
    waves = noise_waves(pipe.conditioner.sample_rate, pipe.conditioner.window_samples)
    negative = pipe.negative_conditioning(pipe.conditioner.null_conditioning(), settings["guidance_scale"])
    restore = timed_vae_decode(vae, watch)
    peak_memory_reset(ctx.device)
    try:
        for i in range(2):
            with watch.stage("total"):
                videos = pipe.generate_from_conditioning(pipe.conditioner.predict_waves(waves), seeds=[i],
                                                         negative=negative, settings=settings, batch_size=1)
    finally:
        restore()
    total = watch.mean("total", skip=1)
    record["rows"].append({"case": f"{s.wan_frames} frames, {s.wan_height}x{s.wan_width}, {s.wan_steps} steps, guidance 5",
                           "frames": s.wan_frames, "height": s.wan_height, "width": s.wan_width, "steps": s.wan_steps,
                           "s_per_clip": total, "vae_decode_s": watch.mean("VAE decoding", skip=1),
                           "first_clip_s": watch.times["total"][0], "video_shape": list(videos[0].shape),
                           "peak_memory_gib": peak_memory_gib(ctx.device)})


# ---- real sizes on the meta device -------------------------------------------------------------------
def meta_check() -> dict[str, Any]:
    """Every part's real-size models built on ``meta`` and run at the real shapes: shapes and parameter counts."""
    from diffusers import (AutoencoderKL, AutoencoderKLWan, FluxTransformer2DModel, UNet2DConditionModel,
                           WanTransformer3DModel)
    from transformers import ASTConfig, ASTModel, T5Config, T5EncoderModel

    from seeingsounds.generators.base import TensorSpec
    from seeingsounds.generators.flux import flux_conditioning_spec
    from seeingsounds.generators.wan import wan_conditioning_spec
    from seeingsounds.model import create_aligner
    from seeingsounds.training.objective import per_sample_loss

    def empty(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.empty(*shape, device="meta", dtype=dtype)

    def on_meta(factory: Callable[[], Any]) -> Any:
        # modules are built inside the meta context; forwards run outside it on meta inputs (faster)
        with torch.device("meta"):
            return factory()

    out: dict[str, Any] = {}
    torch.set_grad_enabled(False)
    try:
        ast = on_meta(lambda: ASTModel(ASTConfig()))
        tokens = ast(input_values=empty(32, 1024, 128)).last_hidden_state
        out["ast"] = {"params_m": num_params(ast) / 1e6, "tokens_shape": list(tokens.shape)}

        transformer = on_meta(lambda: FluxTransformer2DModel(guidance_embeds=True))
        spec = flux_conditioning_spec(transformer.config, 512)
        pred = on_meta(lambda: create_aligner("flux-dev", 768, spec))(tokens[:1])
        sample = transformer(hidden_states=empty(1, 4096, 64), timestep=empty(1), guidance=empty(1),
                             encoder_hidden_states=pred["prompt_embeds"], pooled_projections=pred["pooled_prompt_embeds"],
                             img_ids=empty(4096, 3), txt_ids=empty(512, 3)).sample  # 1024x1024: 64x64 packed latents
        image = on_meta(lambda: AutoencoderKL(**FLUX_VAE)).decode(empty(1, 16, 128, 128)).sample
        out["flux-dev"] = {"params_b": num_params(transformer) / 1e9, "size": 1024, "sample_shape": list(sample.shape),
                           "conditioning": {k: list(v.shape) for k, v in pred.items()}, "image_shape": list(image.shape)}
        del transformer
        schnell = on_meta(lambda: FluxTransformer2DModel(guidance_embeds=False))
        out["flux-schnell"] = {"params_b": num_params(schnell) / 1e9, "conditioning": {
            k: [1, *v.shape] for k, v in flux_conditioning_spec(schnell.config, 256).items()}}
        del schnell

        spec = flux_conditioning_spec({"joint_attention_dim": 4096, "pooled_projection_dim": 768}, 512)
        targets = {"prompt_embeds": empty(32, 512, 4096), "pooled_prompt_embeds": empty(32, 768)}
        out["train"] = {}
        for order in ("adapter_first", "pool_first"):
            aligner = on_meta(lambda: create_aligner("flux-dev", 768, spec, order=order))
            pred = aligner(tokens)
            loss = per_sample_loss(pred, targets, list(spec))
            out["train"][order] = {"params_m": aligner.num_parameters() / 1e6, "loss_shape": list(loss.shape),
                                   "pred_shapes": {k: list(v.shape) for k, v in pred.items()}}

        t5 = on_meta(lambda: T5EncoderModel(T5Config(**T5_XXL)))
        targets = t5(input_ids=empty(32, 512, dtype=torch.long)).last_hidden_state
        out["t5"] = {"params_b": num_params(t5) / 1e9, "targets_shape": list(targets.shape)}
        del t5

        unet = on_meta(lambda: UNet2DConditionModel(**SD_TURBO_UNET))
        spec = {"prompt_embeds": TensorSpec("prompt_embeds", (77, SD_TURBO_UNET["cross_attention_dim"]))}
        pred = on_meta(lambda: create_aligner("sd-turbo", 768, spec))(tokens[:1])
        sample = unet(empty(1, 4, 64, 64), empty(1), encoder_hidden_states=pred["prompt_embeds"]).sample
        image = on_meta(lambda: AutoencoderKL(**SD_VAE)).decode(sample).sample
        out["sd-turbo"] = {"unet_params_b": num_params(unet) / 1e9, "conditioning": list(pred["prompt_embeds"].shape),
                           "sample_shape": list(sample.shape), "image_shape": list(image.shape)}

        wan = on_meta(lambda: WanTransformer3DModel(**WAN_1_3B))
        pred = on_meta(lambda: create_aligner("wan-1.3b", 768, wan_conditioning_spec(wan.config, 512)))(tokens[:1])
        latents = empty(1, 16, 5, 60, 104)  # 17 frames at 480x832: 1 + 16/4 latent frames, 8x smaller
        sample = wan(hidden_states=latents, timestep=empty(1), encoder_hidden_states=pred["prompt_embeds"]).sample
        out["wan"] = {"params_b": num_params(wan) / 1e9, "conditioning": list(pred["prompt_embeds"].shape),
                      "sample_shape": list(sample.shape)}
        try:
            out["wan"]["video_shape"] = list(on_meta(lambda: AutoencoderKLWan()).decode(sample).sample.shape)
        except Exception as exc:  # noqa: BLE001 - the causal VAE's caching may not run on meta; say so
            out["wan"]["video_shape"] = f"not checkable on meta: {type(exc).__name__}"
    finally:
        torch.set_grad_enabled(True)
    return out


# ---- running, budget, output -------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    name: str
    title: str
    run: Callable[[Context, dict[str, Any]], None]
    limit_s: float  # on the GPU
    estimate_s: float  # expected on an H200, for the budget
    main: str  # the headline number of each row


PARTS = (
    Part("flux", "FLUX.1-dev (11.9 B, bf16) + VAE, 10 steps, eager", part_flux, 120, 40, "s_per_image"),
    Part("ast", "AST (AudioSet, full size, SDPA), model only", part_ast, 60, 15, "clips_per_s"),
    Part("train", "aligner training step at real shapes, bf16 autocast", part_train, 90, 25, "steps_per_s"),
    Part("live", "live loop: audio -> AST -> aligner -> generator, batch 1", part_live, 90, 35, "pictures_per_s"),
    Part("t5", "T5-XXL encoder (bf16), 512 tokens", part_t5, 60, 15, "captions_per_s"),
    Part("compile", "FLUX.1-dev, 10 steps, torch.compile", part_compile, 240, 150, "s_per_image"),
    Part("wan", "Wan 2.1 T2V 1.3B, bf16", part_wan, 90, 30, "s_per_clip"),
)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def new_record(part: Part, limit_s: float) -> dict[str, Any]:
    return {"title": part.title, "status": "running", "main": part.main, "limit_s": round(limit_s, 1), "rows": []}


def run_part(part: Part, ctx: Context, record: dict[str, Any]) -> None:
    """Run ``part`` into ``record`` (already in the results, so whatever it measured is kept however it ends)."""
    limit_s = record["limit_s"]
    print(f"[gpu.py] {part.name}: {part.title} (limit {limit_s:.0f} s)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        with time_limit(limit_s):
            part.run(ctx, record)
        record["status"] = "ok"
    except PartTimeout as exc:
        record.update(status="timed out", reason=str(exc))
    except (Stopped, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, Stopped) else Stopped("interrupted (Ctrl-C)", 130)
        record.update(status="stopped", reason=str(stop))
        raise stop from None
    except Exception as exc:  # noqa: BLE001 - one part failing (OOM, compile error) must not stop the others
        record.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:600])
        traceback.print_exc(file=sys.stderr)
    finally:
        record["seconds"] = round(time.perf_counter() - start, 2)
    release(ctx.device)
    print(f"[gpu.py] {part.name}: {record['status']} in {record['seconds']:.1f} s"
          + (f" ({record['reason']})" if "reason" in record else ""), file=sys.stderr, flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, dict):
        return "; ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"# benchmarks/gpu.py{' --tiny' if result['tiny'] else ''}", "",
             f"{env['device_name']}; torch {env['torch']}, diffusers {env['diffusers']}, transformers "
             f"{env['transformers']}; {env['date']}; {result['total_s']:.0f} s of {result['budget_s']:.0f} s budget", ""]
    for name, part in result["parts"].items():
        lines.append(f"## {name}: {part['title']} — {part['status']}"
                     + (f" ({part['reason']})" if part.get("reason") else "") + f", {part.get('seconds', 0):.1f} s")
        details = {k: v for k, v in part.items() if k not in ("title", "status", "main", "limit_s", "rows", "seconds", "reason")}
        if details:
            lines += ["", "; ".join(f"{k}: {_fmt(v)}" for k, v in details.items())]
        rows = part.get("rows", [])
        if rows:
            keys = [k for k in rows[0] if k != "case"]
            lines += ["", "| case | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
            lines += ["| " + " | ".join([str(r.get("case", ""))] + [_fmt(r.get(k, "")) for k in keys]) + " |" for r in rows]
        lines.append("")
    if result.get("goals_met"):
        lines += ["## goals", ""] + [f"- {k}: {v}" for k, v in result["goals_met"].items()] + [""]
    if result.get("meta_check"):
        lines += ["## meta check: real sizes on the meta device", "", "| model | shapes and sizes |", "|---|---|"]
        lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in result["meta_check"].items()] + [""]
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    import diffusers
    import transformers

    return {"device_name": machine_name(device), "device": str(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "python": sys.version.split()[0], "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gpu_memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else None}


@contextmanager
def environ_defaults(**values: str) -> Iterator[None]:
    """Set the environment variables that are unset, for the block only."""
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def main(argv: list[str] | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        # compile caches (made as soon as diffusers is imported) go into the run's own folder: compile
        # time is measured cold, and nothing is left behind
        with environ_defaults(TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor"), TRITON_CACHE_DIR=str(Path(tmp) / "triton")):
            return run(argv, Path(tmp))


def run(argv: list[str] | None, workdir: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json and results.md")
    parser.add_argument("--tiny", action="store_true", help="every part at toy sizes (CPU by default)")
    parser.add_argument("--meta-check", action="store_true", help="first build the real sizes on the meta device")
    parser.add_argument("--parts", default=",".join(p.name for p in PARTS),
                        help=f"comma-separated, run in this order: {','.join(p.name for p in PARTS)} (or 'none')")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip parts once this is spent (default 480)")
    parser.add_argument("--compile-mode", choices=("regional", "full"), default="regional",
                        help="compile FLUX's repeated blocks (default; compiles in a fraction of the time) or the whole transformer")
    parser.add_argument("--device", help="default: cuda (cpu with --tiny)")
    args = parser.parse_args(argv)
    from seeingsounds.cli.main import quiet_libraries

    quiet_libraries()
    by_name = {p.name: p for p in PARTS}
    wanted = [] if args.parts == "none" else [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(by_name)}")
    device = torch.device(args.device or ("cpu" if args.tiny or not wanted else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --tiny to check the script on the CPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {"tiny": args.tiny, "budget_s": args.budget_s, "environment": environment(device),
                              "references": REFERENCES, "goals": GOALS, "parts": {}}
    if args.meta_check:
        result["meta_check"] = meta_check()
    ctx = Context(device=device, dtype=torch.bfloat16, scale=TINY if args.tiny else REAL, workdir=workdir,
                  compile_backend="inductor" if device.type == "cuda" else "eager", compile_mode=args.compile_mode)
    stopped: Stopped | None = None
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        write_results(args.out, result)  # at once, and before and after every part: a run killed anywhere keeps
        for name in wanted:              # what it measured, and says which part was running
            part = by_name[name]
            left = args.budget_s - (time.perf_counter() - started)
            need = 0.0 if args.tiny else part.estimate_s
            if left <= max(need, 1.0):
                result["parts"][name] = {"title": part.title, "status": "skipped", "main": part.main, "rows": [],
                                         "reason": f"budget: {max(left, 0):.0f} s left of {args.budget_s:.0f}, "
                                                   f"this part needs ~{need:.0f} s"}
                print(f"[gpu.py] {name}: skipped ({result['parts'][name]['reason']})", file=sys.stderr, flush=True)
                continue
            record = result["parts"][name] = new_record(part, min(part.limit_s, left))
            write_results(args.out, result)
            run_part(part, ctx, record)
            result["total_s"] = time.perf_counter() - started
            write_results(args.out, result)
    except Stopped as exc:
        stopped = exc
    except KeyboardInterrupt:  # between two parts
        stopped = Stopped("interrupted (Ctrl-C)", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped is not None:
        for name in wanted:
            part = by_name[name]
            result["parts"].setdefault(name, {"title": part.title, "status": "not run", "main": part.main,
                                              "rows": [], "reason": str(stopped)})
    result["total_s"] = time.perf_counter() - started
    result["goals_met"] = goals_met(result["parts"])
    table = write_results(args.out, result)  # before printing: a stopped run's pipe (`| tee`) may be gone
    if stopped is not None:
        print(f"[gpu.py] {stopped}: what was measured is in {args.out}", file=sys.stderr, flush=True)
    print(table)
    return 0 if stopped is None else stopped.exit_code


def goals_met(parts: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, each ``True``/``False``, or ``None`` where its part did not run."""
    def rows(name: str) -> list[dict[str, Any]]:  # a part stopped late keeps the rows it finished
        return parts.get(name, {}).get("rows", [])

    compiled = rows("compile")[:1]  # its first size is the goal's, 1024x1024
    train = [r for r in rows("train") if r["order"] == "adapter_first"]
    live = [r for r in rows("live") if r["generator"] == "sd-turbo"]
    return {
        "flux_dev_1024_10_steps_compiled_le_1s": compiled[0]["s_per_image"] <= GOALS["flux_dev_1024_10_steps_compiled_s"]
        if compiled else None,
        "training_step_bound_by_reading_features": train[0]["bound_by"] == "reading features" if train else None,
        "live_ge_10_pictures_per_s": live[0]["pictures_per_s"] >= GOALS["live_pictures_per_s"] if live else None,
    }


def write_results(folder: Path, result: dict[str, Any]) -> str:
    from seeingsounds.paths import atomic_write_text

    result.setdefault("total_s", 0.0)
    table = markdown(result)
    # each file replaced whole (a SIGTERM in between leaves the previous one; the stopped run writes both again)
    atomic_write_text(folder / "results.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic_write_text(folder / "results.md", table + "\n")
    return table


if __name__ == "__main__":
    sys.exit(main())
