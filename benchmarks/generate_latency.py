"""Per-image generation latency, split into audio loading, audio encoder, aligner, diffusion, VAE decoding.

    python benchmarks/generate_latency.py                       # tiny preset on this machine (CPU ok)
    python benchmarks/generate_latency.py --preset tiny-sdxl --images 5
    python benchmarks/generate_latency.py --checkpoint runs/vgg50 --device cuda
    python benchmarks/generate_latency.py --full-flux           # GPU: full-size FLUX.1-dev, random bf16 weights

``--full-flux`` builds the FLUX.1-dev architecture on the device with random weights (no download):
``FluxTransformer2DModel`` defaults with guidance embeddings (11.9 B parameters), the FLUX VAE (16
latent channels), a full-size random AST and a FLUX-dev-shaped aligner; 10 steps at 512x512 and
1024x1024, compared with the paper's 3.10 s per image on an H100. Random weights cost the same
FLOPs as the real ones, so the timings stand for the real model (the images are noise).

Prints a Markdown table (milliseconds per image, mean over ``--images`` after ``--warmup``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import Stopwatch, machine_name, random_flux_pipeline, timed_vae_decode

PAPER_SECONDS_PER_IMAGE = 3.10  # paper 4.1: FLUX + LoRA, 10 steps, mixed precision, one H100
STAGES = ("audio loading", "audio encoder", "aligner", "diffusion", "VAE decoding")


def measure(pipe: Any, audio: str, *, images: int, warmup: int, steps: int, height: int, width: int,
            guidance: float | None = None) -> dict[str, float]:
    """Mean seconds per image for each stage (one image per call, batch 1)."""
    settings = pipe.resolve_settings(steps, guidance, height, width, 1, 1)
    timer = Stopwatch(pipe.device, STAGES)
    restore = timed_vae_decode(pipe.generator.vae, timer)
    try:
        for i in range(warmup + images):
            with timer.stage("audio loading"):
                waves = [pipe.conditioner.render(audio)]
            with timer.stage("audio encoder"):
                tokens = pipe.encoder.encode(waves, batch_size=1)
            with torch.no_grad(), timer.stage("aligner"):
                cond = pipe.aligner(tokens.to(pipe.device, pipe.dtype))
            null = {n: pipe.aligner.null_conditioning(n) for n in cond}
            with timer.stage("diffusion"):  # the whole pipeline call; decoding is subtracted below
                pipe.generate_from_conditioning(cond, seeds=[i], negative=pipe.negative_conditioning(null, settings["guidance_scale"]),
                                                settings=settings, batch_size=1)
    finally:
        restore()
    times = {k: np.array(v[warmup:]) for k, v in timer.times.items()}
    times["diffusion"] = times["diffusion"] - times["VAE decoding"]
    return {k: float(v.mean()) for k, v in times.items()}


def table(columns: dict[str, dict[str, float]], *, title: str, machine: str, steps: int,
          paper: float | None = None) -> str:
    names = list(columns)
    lines = [f"### {title}", "", f"Machine: {machine}; {steps} diffusion steps; milliseconds per image (batch 1).", "",
             "| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(f"{columns[n][stage] * 1e3:.1f}" for n in names) + " |")
    totals = {n: sum(columns[n][s] for s in STAGES) for n in names}
    lines.append("| **total** | " + " | ".join(f"**{totals[n] * 1e3:.1f}**" for n in names) + " |")
    if steps:
        lines.append("| per diffusion step | " + " | ".join(f"{columns[n]['diffusion'] * 1e3 / steps:.1f}" for n in names) + " |")
    if paper is not None:
        lines.append("| paper: FLUX + LoRA, 10 steps, one H100 (size not stated) | " + " | ".join(f"{paper * 1e3:.0f}" for _ in names) + " |")
    return "\n".join(lines)


def write_test_audio(folder: Path, seconds: float = 10.0, sr: int = 44100) -> str:
    """A 10 s stereo 44.1 kHz file (so loading includes decoding, downmixing and resampling)."""
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    path = folder / "tone.wav"
    sf.write(path, wave.astype(np.float32), sr)
    return str(path)


# ---- preset mode ---------------------------------------------------------------------------------
def preset_pipeline(args: argparse.Namespace, folder: Path) -> Any:
    from seeingsounds.model import create_aligner, load_backend, load_encoder
    from seeingsounds.pipeline import SeeingSoundsPipeline
    from seeingsounds.presets import get_preset

    checkpoint = args.checkpoint
    if checkpoint is None:  # an untrained aligner costs the same as a trained one
        preset = get_preset(args.preset)
        backend = load_backend(preset)
        encoder = load_encoder(preset)
        torch.manual_seed(0)
        create_aligner(preset, encoder.hidden_size, backend.conditioning_spec()).save_pretrained(folder / "ckpt")
        checkpoint = folder / "ckpt"
    return SeeingSoundsPipeline.from_pretrained(checkpoint, device=args.device, dtype=args.dtype,
                                                cpu_offload=args.cpu_offload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", help="preset to time with an untrained aligner (default tiny)")
    parser.add_argument("--checkpoint", help="time this checkpoint instead of an untrained aligner")
    parser.add_argument("--full-flux", action="store_true", help="full-size random FLUX.1-dev in bf16 (GPU)")
    parser.add_argument("--smoke", action="store_true", help="with --full-flux: toy widths, to check the script on a CPU")
    parser.add_argument("--sizes", type=int, nargs="+", help="square image sizes (default: the preset's; 512 1024 for --full-flux)")
    parser.add_argument("--steps", type=int, help="diffusion steps (default: the preset's; 10 for --full-flux)")
    parser.add_argument("--images", type=int, default=3, help="timed images per size (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed images first (default 1)")
    parser.add_argument("--device", help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", help="fp32, fp16 or bf16 (default: bf16 on cuda, fp32 on cpu)")
    parser.add_argument("--cpu-offload", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeingsounds.cli.main import quiet_libraries
    from seeingsounds.devices import resolve_device, resolve_dtype

    quiet_libraries()
    device = torch.device(args.device) if args.device else resolve_device()
    dtype = resolve_dtype(args.dtype, device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.full_flux:
            if device.type != "cuda" and not args.smoke:
                print("--full-flux needs a CUDA GPU (about 30 GB); use --smoke to check the script here", file=sys.stderr)
                return 2
            pipe = random_flux_pipeline(device, dtype, folder / "flux-dev", tiny=args.smoke)
            n_params = sum(p.numel() for p in pipe.generator.transformer.parameters())
            print(f"random FLUX.1-dev transformer: {n_params / 1e9:.2f} B parameters in {dtype} on {device}", file=sys.stderr)
            sizes = args.sizes or ([64] if args.smoke else [512, 1024])
            steps = args.steps or 10
            title = f"SeeingSounds latency: FLUX.1-dev architecture, random {str(dtype).replace('torch.', '')} weights" + (
                " (SMOKE: toy widths)" if args.smoke else "")
            paper = PAPER_SECONDS_PER_IMAGE
        else:
            pipe = preset_pipeline(args, folder)
            sizes = args.sizes or [pipe.preset.height]
            steps = args.steps or pipe.preset.num_inference_steps
            title = f"SeeingSounds latency: preset {pipe.preset.name}"
            paper = None
        audio = write_test_audio(folder)
        columns = {}
        for size in sizes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)  # each size's own peak, not the running maximum
            columns[f"{size}x{size}"] = measure(pipe, audio, images=args.images, warmup=args.warmup, steps=steps,
                                                height=size, width=size)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                print(f"{size}x{size}: peak GPU memory {peak:.1f} GiB", file=sys.stderr)
    print(table(columns, title=title, machine=machine_name(device), steps=steps, paper=paper))
    return 0


if __name__ == "__main__":
    sys.exit(main())
