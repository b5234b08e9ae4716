"""``seeingsounds train``: train an aligner (paper Eq. 6; Eq. 7 with --augment / --mix-pairs)."""

from __future__ import annotations

import argparse

COMMAND = "train"
HELP = "train an aligner on labelled audio + class captions (Eq. 6; Eq. 7 with --augment/--mix-pairs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="preset name (see `seeingsounds presets`)")
    parser.add_argument("--data", required=True, help="manifest (.csv/.jsonl: path,label[,split]) or class-per-folder directory")
    parser.add_argument("--captions", required=True, help="class captions file (.json/.yaml: label -> caption(s))")
    parser.add_argument("--out", required=True, help="run folder (best/, last/, config.json, metrics.jsonl)")
    t = parser.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr-sequence", type=float, help="learning rate of the sequence head(s) (default: the preset's)")
    t.add_argument("--lr-pooled", type=float, help="learning rate of the pooled head(s) (default: the preset's)")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--patience", type=int, default=5, help="early stopping: epochs without val-loss improvement")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.1, help="val share per class when the manifest has no split")
    t.add_argument("--max-steps", type=int, help="stop after this many steps (continue later with --resume)")
    t.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    t.add_argument("--skip-bad", action="store_true", help="skip unreadable audio files (listed) instead of failing")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="where the aligner trains and the text encoders compute the caption targets "
                   "(auto: the accelerator when there is one)")
    t.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                   help="the text encoders' dtype for caption targets (auto: bf16 where supported, fp16 on other "
                   "accelerators, fp32 on the CPU)")
    t.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    c = parser.add_argument_group("feature cache")
    c.add_argument("--no-cache", action="store_true", help="run the frozen encoder live every step")
    c.add_argument("--cache-dir", help="feature cache folder (default: $SEEINGSOUNDS_HOME/features)")
    c.add_argument("--cache-dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    a = parser.add_argument_group("ablations (paper Table 4)")
    a.add_argument("--align", default="all", choices=("all", "sequence", "pooled"),
                   help="train both heads, only the sequence (T5) or only the pooled (CLIP) head")
    a.add_argument("--pooling", choices=("attention", "average"), help="attention pooling (paper) or average pooling")
    a.add_argument("--order", choices=("adapter_first", "pool_first"), help="adapter before pooling (paper) or after")
    a.add_argument("--hidden-dim", type=int, help="adapter width")
    a.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   help="loss weight of one conditioning tensor, e.g. pooled_prompt_embeds=0.5 (default 1)")
    e = parser.add_argument_group("extended training (paper Eq. 7)")
    e.add_argument("--augment", action="append", default=[], metavar="EFFECT[:k=v,...][+EFFECT...]",
                   help="one transformation T_j per option, e.g. --augment volume:alpha=0.1 --augment reverb "
                   "--augment volume:alpha=0.35+reverb:room_size=0.8 (a chain)")
    e.add_argument("--mix-pairs", type=int, default=0, help="mixed pairs (a_i + a_j, fused caption): one seeded pool, reused every epoch")
    e.add_argument("--mix-ratio", type=float, default=0.5, help="share of the second clip in a mix")
    e.add_argument("--augment-weight", type=float, default=1.0, help="weight of the transformed-pairs term")
    e.add_argument("--mix-weight", type=float, default=1.0, help="weight of the mixed-pairs term")
    e.add_argument("--caption-engine", default="template", choices=("template", "llm"), help="f and g: templates or an LLM "
                   "(llm: its API key in the OPENAI_API_KEY environment variable)")
    e.add_argument("--llm-base-url", help="llm: endpoint base URL (default https://api.openai.com/v1)")
    e.add_argument("--llm-model", help="llm: chat model (default gpt-4o, as in the paper)")
    e.add_argument("--llm-temperature", type=float, default=0.0,
                   help="llm: sampling temperature (default 0: the same captions every run)")
    e.add_argument("--llm-cache", help="llm: JSON cache of produced captions shared across runs (the run's own "
                   "edits are always kept in <out>/caption_edits.jsonl and reused by --resume)")
    e.add_argument("--augment-live", action="store_true",
                   help="encode transformed/mixed audio live every epoch instead of caching it")
    t.add_argument("--target-memory-gb", type=float,
                   help="accelerator memory for class/edited caption targets (default: a quarter of the device's); "
                   "what does not fit is read per batch")


def config_from_args(args: argparse.Namespace) -> "TrainConfig":  # noqa: F821
    from seeingsounds.errors import ConfigError
    from seeingsounds.training.config import TrainConfig, parse_augment

    weights = {}
    for item in args.weight:
        name, eq, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq:
            raise ConfigError(f"--weight {item!r}: write NAME=W, e.g. pooled_prompt_embeds=0.5")
    return TrainConfig(
        preset=args.preset, data=args.data, captions=args.captions, out=args.out, epochs=args.epochs,
        batch_size=args.batch_size, lr_sequence=args.lr_sequence, lr_pooled=args.lr_pooled,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed, val_fraction=args.val_fraction,
        skip_bad=args.skip_bad, use_cache=not args.no_cache, cache_dir=args.cache_dir, cache_dtype=args.cache_dtype,
        resume=args.resume, align=args.align, pooling=args.pooling, order=args.order, hidden_dim=args.hidden_dim,
        target_weights=weights, device=args.device, dtype=args.dtype, num_workers=args.num_workers, max_steps=args.max_steps,
        progress=not args.no_progress, augment=[parse_augment(s) for s in args.augment], mix_pairs=args.mix_pairs,
        mix_ratio=args.mix_ratio, augment_weight=args.augment_weight, mix_weight=args.mix_weight,
        caption_engine=args.caption_engine, cache_augmented=not args.augment_live, llm_base_url=args.llm_base_url,
        llm_model=args.llm_model, llm_temperature=args.llm_temperature, llm_cache=args.llm_cache,
        target_memory_gb=args.target_memory_gb,
    )


def run(args: argparse.Namespace) -> int:
    from seeingsounds.training import Trainer

    trainer = Trainer(config_from_args(args))
    result = trainer.fit()
    reason = {"epochs": "finished", "early_stopping": "stopped early", "max_steps": "paused at --max-steps"}
    if result.best_val_loss is None:
        best = "; no epoch completed yet"
    elif result.validated:
        best = f"; best val loss {result.best_val_loss:.5g} (epoch {result.best_epoch})"
    else:
        best = f"; no validation clips: best/ holds epoch {result.best_epoch} (training loss {result.best_val_loss:.5g})"
    if trainer.accelerator.is_main_process:  # one line, also under torchrun / accelerate launch
        print(f"{result.out}: {reason.get(result.stopped, result.stopped)} after {result.epochs_completed} epochs, "
              f"{result.global_step} steps{best}")
    return 0
