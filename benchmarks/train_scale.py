"""Extended training (Eq. 7) at the paper's scale, no weights needed: memory, disk and step time vs classes.

Random audio-encoder features of AST's real shape [1214, 768] and random caption targets of
``flux-dev``'s shapes (T5 ``prompt_embeds`` [512, 4096] + CLIP ``pooled_prompt_embeds`` [768])
go through the real code: the feature cache, the run's target store, the mix pool, the trainer
and the flux-dev aligner with its two AdamW optimisers. Only the frozen models are stand-ins
(random tensors seeded by the input, so each clip and caption has its own).

Per class count (VGGSound-50 and full VGGSound by default): ``--clips`` train clips per class, 3
volume edits (low/medium/high-volume: 3 edited captions per class), ``--mix-pairs 256``, batch 32,
``--steps`` optimiser steps. Each class count runs in its own subprocess, so its peak RSS
(``ru_maxrss``) is its own. Prints a Markdown table::

    python benchmarks/train_scale.py                       # 50 and 309 classes, pool_first
    python benchmarks/train_scale.py --order adapter_first # the paper's order
    python benchmarks/train_scale.py --quick               # 8 and 24 classes, short sequences, 2 steps
    python benchmarks/train_scale.py --json out.json       # also the figures as JSON
    python benchmarks/train_scale.py --tiny-mixing 300     # tiny preset: --mix-pairs 16 vs none, 300 classes

JSON: one object per class count with ``classes``, ``peak_rss_bytes``, ``captions_encoded``,
``step_s``, ``target_s`` (and the other columns of the table).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: AST (AudioSet) tokens and width; FLUX.1-dev's T5 length and width, CLIP pooled width
TOKENS, WIDTH, SEQ_LEN, T5_DIM, CLIP_DIM = 1214, 768, 512, 4096, 768
VOLUMES = (0.1, 0.35, 1.5)  # low-, medium-, high-volume: three edited captions per class


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


class RandomEncoder:
    """The audio encoder's interface with AST's output shape; tokens are random, seeded by the waveform."""

    name, model_id, sample_rate = "random-ast", "random/ast", 16000

    def __init__(self, tokens: int, width: int):
        self.num_tokens, self.hidden_size = tokens, width
        self.window_samples = 1600

    def identity(self) -> str:
        return f"random-ast-{self.num_tokens}x{self.hidden_size}"

    def to(self, device):
        return self

    def encode(self, waves, batch_size: int = 16):
        import numpy as np
        import torch

        out = torch.empty(len(waves), self.num_tokens, self.hidden_size)
        for i, w in enumerate(waves):
            seed = _seed(np.asarray(w, dtype=np.float32).tobytes().hex()[:4096])
            out[i] = torch.randn(self.num_tokens, self.hidden_size, generator=torch.Generator().manual_seed(seed))
        return out


class RandomFluxBackend:
    """The generator backend's target interface with FLUX.1-dev's conditioning spec; random targets."""

    name, model_id, revision, text_model_id = "random-flux", "random/flux-dev", None, None

    def __init__(self, seq_len: int):
        self.max_sequence_length = seq_len

    def conditioning_spec(self):
        from seeingsounds.generators.flux import flux_conditioning_spec

        return flux_conditioning_spec({"joint_attention_dim": T5_DIM, "pooled_projection_dim": CLIP_DIM},
                                      self.max_sequence_length)

    def load_text_pipeline(self, *, device=None, dtype=None):
        return "random text pipeline"

    def encode_captions(self, captions, *, pipe=None, batch_size=16, device=None, dtype=None, out_dtype=None,
                        progress=False):
        import torch

        spec = self.conditioning_spec()
        out = {n: torch.empty(len(captions), *s.shape, dtype=out_dtype or torch.float32) for n, s in spec.items()}
        for i, text in enumerate(captions):
            g = torch.Generator().manual_seed(_seed(text))
            for n, s in spec.items():
                out[n][i] = torch.randn(*s.shape, generator=g)
        return out


def _dataset(root: Path, classes: int, clips: int) -> tuple[Path, Path]:
    import numpy as np
    import soundfile as sf

    rows, captions = ["path,label,split"], {}
    rng = np.random.default_rng(0)
    for c in range(classes):
        label = f"class {c:03d}"
        captions[label] = f"a photo of sound source number {c}"
        for k in range(clips):
            path = root / "audio" / f"{c:03d}_{k}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, (0.1 * rng.standard_normal(1600)).astype("float32"), 16000)
            rows.append(f"{path},{label},train")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "captions.json").write_text(json.dumps(captions))
    return root / "manifest.csv", root / "captions.json"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def one(args: argparse.Namespace) -> dict:
    """One class count, in this process."""
    import torch

    from seeingsounds.presets import get_preset
    from seeingsounds.training import TrainConfig, Trainer

    torch.set_num_threads(max(1, args.threads))
    root = Path(tempfile.mkdtemp(prefix="train-scale-", dir=args.workdir))
    try:
        manifest, captions = _dataset(root / "data", args.classes, args.clips)
        cfg = TrainConfig(preset=get_preset("flux-dev").to_dict(), data=manifest, captions=captions, out=root / "run",
                          epochs=1, batch_size=args.batch_size, cache_dir=root / "cache", progress=False,
                          order=args.order, max_steps=args.steps, val_fraction=0.0, mix_pairs=args.mix_pairs,
                          augment=[[["volume", {"alpha": a}]] for a in VOLUMES], encode_batch_size=32)
        trainer = Trainer(cfg, encoder=RandomEncoder(args.tokens, WIDTH), backend=RandomFluxBackend(args.seq_len),
                          log=lambda m: None)
        start = time.perf_counter()
        trainer.setup()
        setup_s = time.perf_counter() - start
        trainer.fit()
        timing = trainer.timing
        steps = max(1, int(timing["steps"]))
        return {
            "classes": args.classes,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "target_bytes": (root / "run" / "caption_targets.safetensors").stat().st_size,
            "cache_bytes": _size(root / "cache"),
            "setup_s": round(setup_s, 2),
            "captions": trainer.counts["captions"],
            "captions_encoded": trainer.counts["targets_encoded"],
            "fused": trainer.counts["fused"],
            "steps": steps,
            "step_s": round((timing["data"] + timing["targets"] + timing["aligner"]) / steps, 4),
            "data_s": round(timing["data"] / steps, 4),
            "target_s": round(timing["targets"] / steps, 4),
            "aligner_s": round(timing["aligner"] / steps, 4),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def tiny_mixing(classes: int, mix_pairs: int, workdir: str | None) -> dict:
    """The issue's check: a 1-epoch ``tiny`` run with a volume edit, with and without ``--mix-pairs``,
    each with a cold feature cache (4 clips per class: no validation clip, as in the issue's measurement)."""
    import numpy as np
    import soundfile as sf

    from seeingsounds.training import TrainConfig, Trainer

    root = Path(tempfile.mkdtemp(prefix="train-mixing-", dir=workdir))
    try:
        rows, captions = ["path,label"], {}
        for c in range(classes):
            label = f"tone {c:03d}"
            captions[label] = f"a tone number {c}"
            for k in range(4):
                path = root / "data" / f"{c:03d}_{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                t = np.arange(8000) / 16000
                sf.write(path, (0.3 * np.sin(2 * np.pi * (100 + 13 * c + k) * t)).astype("float32"), 16000)
                rows.append(f"{path},{label}")
        (root / "manifest.csv").write_text("\n".join(rows) + "\n")
        (root / "captions.json").write_text(json.dumps(captions))
        out = {"classes": classes}
        for name, mixes in (("no_mixing", 0), ("mixing", mix_pairs)):
            cfg = TrainConfig(preset="tiny", data=root / "manifest.csv", captions=root / "captions.json",
                              out=root / name, epochs=1, cache_dir=root / f"cache-{name}", progress=False,
                              augment=[[["volume", {"alpha": 0.1}]]], mix_pairs=mixes)
            start = time.perf_counter()
            trainer = Trainer(cfg, log=lambda m: None)
            trainer.fit()
            out[f"{name}_s"] = round(time.perf_counter() - start, 2)
            out[f"{name}_fused"] = trainer.counts["fused"]
            out[f"{name}_class_pairs_drawn"] = trainer.counts["class_pairs_drawn"]
        out["ratio"] = round(out["mixing_s"] / out["no_mixing_s"], 3)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[50, 309])
    p.add_argument("--clips", type=int, default=1, help="train clips per class")
    p.add_argument("--mix-pairs", type=int, default=256)
    p.add_argument("--order", default="pool_first", choices=("pool_first", "adapter_first"))
    p.add_argument("--steps", type=int, default=4, help="optimiser steps timed (after setup)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=SEQ_LEN, help="T5 length of the targets (FLUX.1-dev: 512)")
    p.add_argument("--tokens", type=int, default=TOKENS, help="audio tokens per clip (AST: 1214)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count())
    p.add_argument("--workdir", default=None, help="where the temporary dataset, cache and run go (default: $TMPDIR)")
    p.add_argument("--quick", action="store_true", help="8 and 24 classes, 64-token targets, 16 mixes, 2 steps")
    p.add_argument("--json", type=Path, help="also write the figures as JSON (one object per class count)")
    p.add_argument("--tiny-mixing", type=int, metavar="CLASSES",
                   help="instead: time a 1-epoch tiny run (volume edit) with --mix-pairs 16 vs none at CLASSES classes")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny_mixing:
        r = tiny_mixing(args.tiny_mixing, 16, args.workdir)
        print(f"1-epoch tiny run, {r['classes']} classes x 4 clips, volume edit, cold cache: no mixing "
              f"{r['no_mixing_s']:.1f} s; --mix-pairs 16 {r['mixing_s']:.1f} s (x{r['ratio']:.2f}); fused captions "
              f"encoded {r['mixing_fused']} = class pairs drawn {r['mixing_class_pairs_drawn']}")
        if args.json:
            args.json.write_text(json.dumps(r, indent=2) + "\n")
        return 0
    if args.one:
        args.classes = args.classes[0]
        print(json.dumps(one(args)))
        return 0
    if args.quick:
        args.classes, args.seq_len, args.mix_pairs, args.steps, args.tokens = [8, 24], 64, 16, 2, 128
    results = []
    for classes in args.classes:
        cmd = [sys.executable, __file__, "--one", "--classes", str(classes), "--clips", str(args.clips),
               "--mix-pairs", str(args.mix_pairs), "--order", args.order, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--tokens", str(args.tokens),
               "--threads", str(args.threads)] + (["--workdir", args.workdir] if args.workdir else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Eq. 7 at scale: {args.clips} clip(s)/class, 3 volume edits, --mix-pairs {args.mix_pairs}, order "
          f"{args.order}, batch {args.batch_size}, targets [{args.seq_len}, {T5_DIM}] + [{CLIP_DIM}], tokens "
          f"[{args.tokens}, {WIDTH}], {args.threads} thread(s)\n")
    print("| classes | peak RSS | targets on disk | cache on disk | setup | captions encoded (fused) | step | data | "
          "targets | aligner |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['classes']} | {r['peak_rss_bytes'] / 2**30:.2f} GiB | {r['target_bytes'] / 2**30:.2f} GiB | "
              f"{r['cache_bytes'] / 2**30:.2f} GiB | {r['setup_s']:.1f} s | {r['captions_encoded']} ({r['fused']}) | "
              f"{r['step_s']:.3f} s | {r['data_s']:.3f} s | {r['target_s']:.3f} s | {r['aligner_s']:.3f} s |")
    if len(results) > 1:
        print(f"\npeak RSS ratio {results[-1]['classes']}/{results[0]['classes']} classes: "
              f"{results[-1]['peak_rss_bytes'] / results[0]['peak_rss_bytes']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
