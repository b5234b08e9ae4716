"""Training throughput at the paper's real dimensions, on this machine's CPU (or a GPU with --device).

Aligner for flux-dev: AST tokens [1214, 768] -> T5 ``prompt_embeds`` [L, 4096] (L = 512 for
FLUX.1-dev; DESIGN.md measured L = 77) + CLIP ``pooled_prompt_embeds`` [768], batch 32, two AdamW
optimisers, MSE (Eq. 6). Four configurations:

* ``cached``: the encoder's tokens come from the feature cache (random tensors stand in for the
  read; the fp16 -> fp32 cast is included);
* ``live``: every step runs a real-size AST (``ASTModel(ASTConfig())``, random weights — the cost
  does not depend on them) on 10.24 s waveforms, feature extraction included;
* ``adapter_first`` (the paper's order) vs ``pool_first`` (pooling in the encoder's width first).

Each configuration runs in its own subprocess so that peak memory (``ru_maxrss``) is its own.
Prints a Markdown table. Example::

    python benchmarks/train_throughput.py --steps 3 --live-steps 1
    python benchmarks/train_throughput.py --seq-len 77 --only cached
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from seeingsounds.generators.flux import flux_conditioning_spec
    from seeingsounds.model import create_aligner
    from seeingsounds.training.objective import per_sample_loss

    torch.manual_seed(0)
    device = torch.device(args.device)
    spec = flux_conditioning_spec({"joint_attention_dim": 4096, "pooled_projection_dim": 768}, args.seq_len)
    aligner = create_aligner("flux-dev", 768, spec, order=args.order).to(device).train()
    groups = {"seq": [p for n, p in aligner.named_parameters() if n.startswith("heads.prompt_embeds.")],
              "pool": [p for n, p in aligner.named_parameters() if n.startswith("heads.pooled_prompt_embeds.")]}
    opts = [torch.optim.AdamW(groups["seq"], lr=1e-5), torch.optim.AdamW(groups["pool"], lr=1e-7)]
    b = args.batch_size
    targets = {"prompt_embeds": torch.randn(b, args.seq_len, 4096, device=device),
               "pooled_prompt_embeds": torch.randn(b, 768, device=device)}
    names = list(spec)
    encoder = extractor = None
    if args.mode == "live":
        from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

        encoder = ASTModel(ASTConfig()).to(device).eval()
        extractor = ASTFeatureExtractor()
        waves = [np.random.default_rng(i).standard_normal(163840).astype(np.float32) * 0.1 for i in range(b)]
    else:
        cached = torch.randn(b, args.tokens, 768).half()

    def step() -> float:
        t0 = time.perf_counter()
        if encoder is not None:
            with torch.no_grad():
                feats = extractor(waves, sampling_rate=16000, return_tensors="pt").input_values.to(device)
                tokens = encoder(input_values=feats).last_hidden_state
        else:
            tokens = cached.to(device).float()
        pred = aligner(tokens)
        loss = per_sample_loss(pred, targets, names).mean()
        loss.backward()
        for o in opts:
            o.step()
            o.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step()  # warm-up
    steps = args.live_steps if args.mode == "live" else args.steps
    times = [step() for _ in range(steps)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"mode": args.mode, "order": args.order, "seconds_per_step": sum(times) / len(times),
            "steps": steps, "peak_mb": peak_mb, "params": aligner.num_parameters(),
            "tokens": args.tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per cached configuration (after 1 warm-up)")
    parser.add_argument("--live-steps", type=int, default=1, help="timed steps per live configuration")
    parser.add_argument("--seq-len", type=int, default=512, help="T5 sequence length L (FLUX.1-dev 512, schnell 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=1214, help="AST tokens per clip (cached mode)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=("cached", "live"), help="run one mode only")
    parser.add_argument("--orders", default="pool_first,adapter_first")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--order", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # child process: one configuration
        print(json.dumps(one(args)))
        return
    import torch

    rows = []
    for mode in ([args.only] if args.only else ["cached", "live"]):
        for order in args.orders.split(","):
            cmd = [sys.executable, __file__, "--mode", mode, "--order", order, "--steps", str(args.steps),
                   "--live-steps", str(args.live_steps), "--seq-len", str(args.seq_len), "--batch-size",
                   str(args.batch_size), "--tokens", str(args.tokens), "--device", args.device]
            print(f"running {mode} / {order} ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
            if done.returncode != 0:
                rows.append({"mode": mode, "order": order, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"\nbatch {args.batch_size}, AST [{args.tokens}, 768] -> T5 [{args.seq_len}, 4096] + CLIP [768]; "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs\n")
    print("| features | order | s / step | steps / s | clips / s | peak memory (MB) | trainable params |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['mode']} | {r['order']} | error: {r['error']} | | | | |")
            continue
        s = r["seconds_per_step"]
        print(f"| {r['mode']} | {r['order']} | {s:.2f} | {1 / s:.3f} | {args.batch_size / s:.1f} | "
              f"{r['peak_mb']:.0f} | {r['params'] / 1e6:.1f} M |")


if __name__ == "__main__":
    main()
