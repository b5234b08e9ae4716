"""Peak memory and time of ``evaluate --no-images`` at scale: conditioner + caption index + metrics.

The path of :meth:`seeingsounds.evaluation.runner.Evaluation.caption_metrics`
(:func:`~seeingsounds.evaluation.runner.stream_similarity` then
:func:`~seeingsounds.evaluation.metrics.retrieval_scores`) with a ``flux-dev``-shaped aligner (AST tokens
[1214, 768] -> T5 sequence [512, 4096] + CLIP pooled [768], hidden 1024, attention pooling), random weights,
random audio features of AST's shape (no weights, no audio decoding) and 50 random class-caption targets.
Each run (clips x order) is its own process, so its peak RSS is its own.

    python benchmarks/evaluate_scale.py                 # 200 and 2,000 clips, both orders
    python benchmarks/evaluate_scale.py --quick         # 4 and 40 clips (a smoke run, a few minutes on a laptop CPU)
    python benchmarks/evaluate_scale.py --json out.json # one object per run: clips, order, peak_rss_bytes, s_per_clip
    python benchmarks/evaluate_scale.py --no-release    # without the per-batch release of freed host memory
                                                        # (adapter first: 2.02x at 2,000 clips here, see README)

Memory is bounded when the peak RSS at 10x the clips is at most 1.2x the peak at 1x.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seeingsounds import conditioner as conditioner_module
from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.encoders.base import AudioEncoder
from seeingsounds.evaluation.metrics import retrieval_scores
from seeingsounds.evaluation.runner import stream_similarity
from seeingsounds.presets import get_preset
from seeingsounds.retrieval import CaptionIndex

#: AST (AudioSet checkpoint): 1214 tokens of width 768; FLUX.1-dev conditioning
AST_TOKENS, AST_WIDTH = 1214, 768
FLUX_DEV_HEADS = [{"name": "prompt_embeds", "shape": [512, 4096]}, {"name": "pooled_prompt_embeds", "shape": [768]}]
ORDERS = ("adapter_first", "pool_first")
CLASSES = 50
FULL, QUICK = (200, 2000), (4, 40)


class RandomFeatures(AudioEncoder):
    """Stands in for AST: random tokens of its shape for every clip (seeded per batch), no weights."""

    sample_rate = 16000
    window_samples = 1600
    hidden_size = AST_WIDTH
    num_tokens = AST_TOKENS
    model_id = "random"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))
        self.calls = 0

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs) -> RandomFeatures:  # noqa: ARG003
        return cls()

    def _encode_batch(self, waveforms: np.ndarray) -> torch.Tensor:
        self.calls += 1
        g = torch.Generator().manual_seed(self.calls)
        return torch.randn(len(waveforms), AST_TOKENS, AST_WIDTH, generator=g)

    def config_dict(self) -> dict:
        return {"model_id": self.model_id}


def run_once(clips: int, order: str, batch_size: int) -> dict:
    """One measured run in this process: ``{clips, order, peak_rss_bytes, s_per_clip, top1}``."""
    torch.manual_seed(0)
    preset = get_preset("flux-dev")
    aligner = SeeingSoundsAligner(AST_WIDTH, FLUX_DEV_HEADS, order=order, pooling=preset.pooling,
                                  hidden_dim=preset.hidden_dim, attention_heads=preset.attention_heads)
    conditioner = AudioConditioner(RandomFeatures(), aligner, device="cpu", dtype="fp32")
    targets = {h["name"]: torch.randn(CLASSES, *h["shape"]) for h in FLUX_DEV_HEADS}
    index = CaptionIndex(targets, conditioner.names, device="cpu", dtype="fp32")
    del targets
    labels = np.arange(clips) % CLASSES
    silence = np.zeros(RandomFeatures.window_samples, dtype=np.float32)
    sources = ((RandomFeatures.sample_rate, silence) for _ in range(clips))  # nothing held per clip up front
    start = time.perf_counter()
    scores = retrieval_scores(stream_similarity(conditioner, index, sources, batch_size=batch_size), labels, k=5)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"clips": clips, "order": order, "peak_rss_bytes": int(peak), "s_per_clip": seconds / clips,
            "top1": scores["top1"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} and {QUICK[1]} clips instead of {FULL}")
    parser.add_argument("--clips", type=int, nargs="+", default=None, help="clip counts (default: 200 2000)")
    parser.add_argument("--orders", nargs="+", default=list(ORDERS), choices=ORDERS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", metavar="PATH", help="write the runs as a JSON list")
    parser.add_argument("--no-release", action="store_true",
                        help="skip devices.release_host_memory after each batch (to see what it saves)")
    parser.add_argument("--child", nargs=2, metavar=("CLIPS", "ORDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.no_release:
            conditioner_module.release_host_memory = lambda: False
        torch.set_num_threads(max(1, torch.get_num_threads()))
        print(json.dumps(run_once(int(args.child[0]), args.child[1], args.batch_size)))
        return 0
    counts = args.clips or (QUICK if args.quick else FULL)
    runs = []
    print("| clips | order | peak RSS (MiB) | s / clip |\n|---|---|---|---|", flush=True)
    for order in args.orders:
        for clips in counts:
            child = [sys.executable, __file__, "--child", str(clips), order, "--batch-size", str(args.batch_size)]
            child += ["--no-release"] if args.no_release else []
            proc = subprocess.run(child, capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"| {clips} | {order} | {run['peak_rss_bytes'] / 2**20:.0f} | {run['s_per_clip']:.3f} |", flush=True)
    for order in args.orders:
        peaks = [r["peak_rss_bytes"] for r in runs if r["order"] == order]
        if len(peaks) > 1:
            print(f"{order}: peak RSS at {max(counts)} clips = {peaks[-1] / peaks[0]:.2f}x the peak at {min(counts)}")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: r[k] for k in ("clips", "order", "peak_rss_bytes", "s_per_clip")}
                                               for r in runs], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
