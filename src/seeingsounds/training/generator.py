"""Train the ``offline`` preset's generator: a small FluxPipeline drawing captioned pictures from MiniLM targets.

Two stages, seeded, on one picture style (:mod:`seeingsounds.data.pictures`, Noto by default):

1. a small ``AutoencoderKL`` (32 px RGB <-> an 8x8x8 latent), trained to reconstruct the pictures
   (L1 + MSE + a small KL term); its ``shift_factor``/``scaling_factor`` are set from the latents'
   mean and spread so the transformer sees unit-scale latents, as FLUX's VAE does;
2. a small ``FluxTransformer2DModel`` (``joint_attention_dim = pooled_projection_dim = 384``, no
   guidance embedding) trained with FLUX's rectified-flow objective: ``z_t = (1 - t) z_0 + t
   noise``, predict ``noise - z_0``, so ``FlowMatchEulerDiscreteScheduler`` samples it in a few
   Euler steps. Conditioning is exactly what the ``minilm`` backend computes for a caption
   (token embeddings ``[32, 384]`` and the sentence embedding ``[384]``), with a random phrasing of
   the picture's concept each time. An aligner trained with MSE predicts blurred, shrunk versions
   of these targets, so the conditioning is also perturbed in training (:func:`perturb_conditioning`).

The result is a diffusers folder (``model_index.json``, ``transformer/``, ``vae/``, ``scheduler/``,
``text_model.json``) that :class:`seeingsounds.generators.minilm.MiniLMFluxBackend` loads like any
FLUX pipeline::

    python -m seeingsounds.training.generator -o OUT_DIR --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from PIL import Image
from torch.nn import functional as F

from seeingsounds.data.pictures import Picture, load_pictures
from seeingsounds.generators.minilm import MINILM_WHEEL, TEXT_MODEL_FILE, MiniLMTextEncoder
from seeingsounds.paths import atomic_write_json

log = logging.getLogger(__name__)
MINILM_DIM = 384


@dataclass(frozen=True)
class GeneratorTrainingConfig:
    """Sizes and schedule of :func:`train_offline_generator` (defaults: the committed weights)."""

    style: str = "noto"
    size: int = 32
    #: concept ids to train on (default: the whole vocabulary of seeingsounds.data.pictures)
    concepts: tuple[str, ...] | None = None
    max_sequence_length: int = 32
    seed: int = 0
    # VAE
    vae_channels: tuple[int, ...] = (16, 32, 64)
    latent_channels: int = 8
    vae_steps: int = 1000
    vae_batch: int = 16
    vae_lr: float = 2e-3
    vae_kl: float = 1e-6
    # transformer
    layers: int = 1
    single_layers: int = 2
    heads: int = 4
    head_dim: int = 32
    steps: int = 4500
    batch: int = 32
    lr: float = 1e-3
    # conditioning perturbation (see perturb_conditioning)
    shrink_probability: float = 0.7
    min_shrink: float = 0.3
    noise_scale: float = 0.5
    mean_sequence_probability: float = 0.3
    # sampling used to measure the result
    num_inference_steps: int = 8


@dataclass
class GeneratorTrainingReport:
    config: dict[str, Any]
    concepts: int
    captions: int
    vae_parameters: int
    transformer_parameters: int
    vae_seconds: float
    transformer_seconds: float
    vae_reconstruction_mse: float
    final_flow_loss: float
    torch_threads: int
    measures: dict[str, float] = field(default_factory=dict)


def picture_batch(pictures: Sequence[Picture]) -> torch.Tensor:
    """``[N, 3, H, W]`` float in [-1, 1] (the VAE's input range)."""
    stack = np.stack([p.image for p in pictures]).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()


def caption_targets(encoder: MiniLMTextEncoder, pictures: Sequence[Picture],
                    max_sequence_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MiniLM targets of every caption of every picture: ``(sequence [M, L, 384], pooled [M, 384],
    owner [M])`` where ``owner`` is the picture index of each caption (the ``minilm`` backend's targets)."""
    captions = [c for p in pictures for c in p.captions]
    owner = torch.tensor([i for i, p in enumerate(pictures) for _ in p.captions])
    sequence = torch.cat([encoder.token_embeddings(captions[i:i + 256], max_sequence_length)
                          for i in range(0, len(captions), 256)])
    pooled = torch.cat([encoder.sentence_embeddings(captions[i:i + 256]) for i in range(0, len(captions), 256)])
    return sequence.float(), pooled.float(), owner


def perturb_conditioning(sequence: torch.Tensor, pooled: torch.Tensor, mean_sequence: torch.Tensor,
                         mean_pooled: torch.Tensor, config: GeneratorTrainingConfig,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """What an MSE-trained aligner might predict instead of the exact targets.

    Per row, with probability ``shrink_probability``: both tensors are pulled toward the dataset
    mean by a factor ``s ~ U(min_shrink, 1)`` and get Gaussian noise of ``U(0, noise_scale)`` times
    the targets' per-dimension spread times ``s`` (relative noise). With probability
    ``mean_sequence_probability`` the sequence is replaced by its dataset mean, so the picture can
    be drawn from the pooled vector alone.
    """
    n = pooled.shape[0]
    active = torch.rand(n, generator=generator) < config.shrink_probability
    shrink = torch.where(active, config.min_shrink + (1 - config.min_shrink) * torch.rand(n, generator=generator),
                         torch.ones(n))
    noise = torch.where(active, config.noise_scale * torch.rand(n, generator=generator), torch.zeros(n))
    spread_p = (pooled - mean_pooled).std()
    spread_s = (sequence - mean_sequence).std()
    s1, n1 = shrink[:, None], (noise * shrink)[:, None]
    pooled = mean_pooled + s1 * (pooled - mean_pooled) + n1 * spread_p * torch.randn(pooled.shape, generator=generator)
    s2, n2 = s1[..., None], n1[..., None]
    sequence = (mean_sequence + s2 * (sequence - mean_sequence)
                + n2 * spread_s * torch.randn(sequence.shape, generator=generator))
    drop = (torch.rand(n, generator=generator) < config.mean_sequence_probability)[:, None, None]
    sequence = torch.where(drop, mean_sequence.expand_as(sequence), sequence)
    return sequence, pooled


def build_vae(config: GeneratorTrainingConfig) -> AutoencoderKL:
    n = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(config.vae_channels), layers_per_block=1,
        latent_channels=config.latent_channels, norm_num_groups=8, sample_size=config.size,
        mid_block_add_attention=False,
    )


def build_transformer(config: GeneratorTrainingConfig) -> FluxTransformer2DModel:
    rope = config.head_dim // 4
    return FluxTransformer2DModel(
        patch_size=1, in_channels=config.latent_channels * 4, num_layers=config.layers,
        num_single_layers=config.single_layers, attention_head_dim=config.head_dim,
        num_attention_heads=config.heads, joint_attention_dim=MINILM_DIM, pooled_projection_dim=MINILM_DIM,
        guidance_embeds=False, axes_dims_rope=(config.head_dim - 2 * rope, rope, rope),
    )


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 px (white fill) so the VAE does not memorise 144 exact grids."""
    out = torch.ones_like(images)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    h, w = images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def train_vae(images: torch.Tensor, config: GeneratorTrainingConfig) -> tuple[AutoencoderKL, float]:
    """Train the VAE; set its shift/scale from the latents. Returns ``(vae, reconstruction MSE)``."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    vae = build_vae(config).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.vae_lr, total_steps=config.vae_steps, pct_start=0.1)
    for step in range(config.vae_steps):
        idx = torch.randint(0, len(images), (config.vae_batch,), generator=gen)
        x = _augment(images[idx], gen)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + config.vae_kl * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == config.vae_steps - 1:
            log.info("vae step %d/%d loss %.4f", step, config.vae_steps, loss.item())
    vae.eval()
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mode()
        mse = float(F.mse_loss(vae.decode(latents).sample.clamp(-1, 1), images))
        shift = float(latents.mean())
        scale = float(1.0 / latents.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return vae, mse


def flow_matching_loss(transformer: FluxTransformer2DModel, latents: torch.Tensor, sequence: torch.Tensor,
                       pooled: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """FLUX's rectified-flow loss on packed latents ``[B, C, h, w]`` (unit-scale VAE latents)."""
    b, c, h, w = latents.shape
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.rand(b, generator=generator)
    noisy = (1 - t)[:, None, None, None] * latents + t[:, None, None, None] * noise
    packed = FluxPipeline._pack_latents(noisy, b, c, h, w)
    target = FluxPipeline._pack_latents(noise - latents, b, c, h, w)
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, latents.device, latents.dtype)
    txt_ids = torch.zeros(sequence.shape[1], 3)
    pred = transformer(hidden_states=packed, timestep=t, guidance=None, pooled_projections=pooled,
                       encoder_hidden_states=sequence, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
    return F.mse_loss(pred, target)


def train_transformer(latents: torch.Tensor, sequence: torch.Tensor, pooled: torch.Tensor, owner: torch.Tensor,
                      config: GeneratorTrainingConfig,
                      every: tuple[int, Callable[[int, FluxTransformer2DModel], None]] | None = None,
                      ) -> tuple[FluxTransformer2DModel, float]:
    """Train the transformer on ``latents [N, C, h, w]`` (unit scale) and caption targets owned by
    picture ``owner[m]``; ``every = (n, callback)`` calls ``callback(step, transformer)`` every ``n``
    steps (to measure progress). Returns ``(transformer, mean loss of the last 100 steps)``."""
    torch.manual_seed(config.seed + 1)
    gen = torch.Generator().manual_seed(config.seed + 1)
    transformer = build_transformer(config).train()
    mean_sequence, mean_pooled = sequence.mean(0), pooled.mean(0)
    opt = torch.optim.AdamW(transformer.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.05)
    recent: list[float] = []
    for step in range(config.steps):
        rows = torch.randint(0, len(owner), (config.batch,), generator=gen)
        seq, pool = perturb_conditioning(sequence[rows], pooled[rows], mean_sequence, mean_pooled, config, gen)
        loss = flow_matching_loss(transformer, latents[owner[rows]], seq, pool, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        opt.step()
        sched.step()
        recent = (recent + [loss.item()])[-100:]
        if step % 250 == 0 or step == config.steps - 1:
            log.info("flow step %d/%d loss %.4f (last 100: %.4f)", step, config.steps, recent[-1], np.mean(recent))
        if every is not None and (step + 1) % every[0] == 0:
            every[1](step + 1, transformer.eval())
            transformer.train()
    return transformer.eval(), float(np.mean(recent))


def save_pipeline(folder: Path, vae: AutoencoderKL, transformer: FluxTransformer2DModel, *,
                  dtype: torch.dtype = torch.float32) -> None:
    """Write the FluxPipeline (no text encoders) and ``text_model.json`` to ``folder``."""
    from diffusers.utils import logging as diffusers_logging

    if dtype != torch.float32:
        vae, transformer = vae.to(dtype), transformer.to(dtype)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False), vae=vae,
        transformer=transformer, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
    )
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # "None cannot be saved" is the point here
    try:
        pipe.save_pretrained(folder)
    finally:
        diffusers_logging.set_verbosity(level)
    if dtype != torch.float32:
        vae.float()
        transformer.float()
    atomic_write_json(Path(folder) / TEXT_MODEL_FILE, {
        "text_model_id": MINILM_WHEEL, "hidden_size": MINILM_DIM,
        "note": "targets: all-MiniLM-L6-v2 token embeddings (prompt_embeds) and normalised mean-pooled "
                "sentence embedding (pooled_prompt_embeds)"})


def nearest_pictures(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Index of the nearest reference picture (pixel L2) for each image; both ``[N, H, W, 3]``."""
    a = images.reshape(len(images), -1).astype(np.float32)
    b = references.reshape(len(references), -1).astype(np.float32)
    dist = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]
    return dist.argmin(1)


def measure_generator(vae: AutoencoderKL, transformer: FluxTransformer2DModel, sequence: torch.Tensor,
                      pooled: torch.Tensor, owner: torch.Tensor, references: np.ndarray, *,
                      num_inference_steps: int, caption_index: int = 2) -> tuple[dict[str, float], np.ndarray]:
    """Caption -> picture accuracy (nearest reference by pixel L2 is the caption's own) for the
    ``caption_index``-th phrasing of every picture ("the sound of a dog"): clean targets, targets
    shrunk halfway to their mean, and a shuffled batch. Returns the figures and a grid
    (references, clean, shrunk rows) as ``uint8 [H, W, 3]``."""
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False), vae=vae,
                        transformer=transformer, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe.set_progress_bar_config(disable=True)
    rows = torch.tensor([int((owner == i).nonzero()[min(caption_index, int((owner == i).sum()) - 1)])
                         for i in range(len(references))])
    seq, pool = sequence[rows], pooled[rows]
    mean_seq, mean_pool = sequence.mean(0), pooled.mean(0)
    truth = np.arange(len(references))
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))

    def draw(s: torch.Tensor, p: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            out = pipe(prompt_embeds=s, pooled_prompt_embeds=p, height=references.shape[1], width=references.shape[2],
                       num_inference_steps=num_inference_steps, output_type="np",
                       generator=[torch.Generator().manual_seed(i) for i in range(len(p))]).images
        return (out * 255).round().astype(np.uint8)

    clean = draw(seq, pool)
    shrunk = draw(mean_seq + 0.5 * (seq - mean_seq), mean_pool + 0.5 * (pool - mean_pool))
    shuffled = draw(seq[perm], pool[perm])
    figures = {
        "caption_to_picture": float((nearest_pictures(clean, references) == truth).mean()),
        "shrunk_half_to_mean": float((nearest_pictures(shrunk, references) == truth).mean()),
        "shuffled_batch": float((nearest_pictures(shuffled, references) == truth).mean()),
        "chance": 1.0 / len(references),
    }
    n = min(24, len(references))
    grid = np.concatenate([np.concatenate(list(block[:n]), axis=1) for block in (references, clean, shrunk)], axis=0)
    return figures, grid


def train_offline_generator(out_dir: str | Path, config: GeneratorTrainingConfig | None = None, *,
                            sample_every: int = 0) -> GeneratorTrainingReport:
    """Train the VAE and transformer on the pictures and save the pipeline to ``out_dir``.

    ``sample_every > 0`` measures (:func:`measure_generator`) every that many transformer steps,
    logging the figures and writing ``progress/step-N.png`` grids to ``out_dir``.
    """
    config = config or GeneratorTrainingConfig()
    out = Path(out_dir)
    pictures = load_pictures(config.style, size=config.size, concepts=config.concepts)  # fails early when missing
    images = picture_batch(pictures)
    encoder = MiniLMTextEncoder.from_pretrained(MINILM_WHEEL)
    sequence, pooled, owner = caption_targets(encoder, pictures, config.max_sequence_length)
    del encoder
    start = time.perf_counter()
    vae, vae_mse = train_vae(images, config)
    vae_seconds = time.perf_counter() - start
    with torch.no_grad():
        raw = vae.encode(images).latent_dist.mode()
        latents = (raw - vae.config.shift_factor) * vae.config.scaling_factor
    references = np.stack([p.image for p in pictures])

    def sample(step: int, model: FluxTransformer2DModel) -> None:
        figures, grid = measure_generator(vae, model, sequence, pooled, owner, references,
                                          num_inference_steps=config.num_inference_steps)
        log.info("step %d: %s", step, json.dumps({k: round(v, 3) for k, v in figures.items()}))
        (out / "progress").mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(out / "progress" / f"step-{step}.png")

    start = time.perf_counter()
    transformer, flow_loss = train_transformer(latents, sequence, pooled, owner, config,
                                               every=(sample_every, sample) if sample_every > 0 else None)
    transformer_seconds = time.perf_counter() - start
    save_pipeline(out, vae, transformer)
    measures, grid = measure_generator(vae, transformer, sequence, pooled, owner, references,
                                       num_inference_steps=config.num_inference_steps)
    Image.fromarray(grid).save(out / "samples.png")
    report = GeneratorTrainingReport(
        config=asdict(config), concepts=len(pictures), captions=len(owner),
        vae_parameters=sum(p.numel() for p in vae.parameters()),
        transformer_parameters=sum(p.numel() for p in transformer.parameters()),
        vae_seconds=round(vae_seconds, 1), transformer_seconds=round(transformer_seconds, 1),
        vae_reconstruction_mse=round(vae_mse, 5), final_flow_loss=round(flow_loss, 5),
        torch_threads=torch.get_num_threads(), measures={k: round(v, 4) for k, v in measures.items()},
    )
    atomic_write_json(out / "training.json", asdict(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seeingsounds.training.generator", description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", required=True, help="folder to write the diffusers pipeline to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=GeneratorTrainingConfig.steps, help="transformer steps")
    parser.add_argument("--vae-steps", type=int, default=GeneratorTrainingConfig.vae_steps)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--sample-every", type=int, default=0, help="measure and save a sample grid every N steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    config = GeneratorTrainingConfig(seed=args.seed, steps=args.steps, vae_steps=args.vae_steps)
    report = train_offline_generator(args.out, config, sample_every=args.sample_every)
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
