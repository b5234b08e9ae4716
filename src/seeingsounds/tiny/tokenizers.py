"""Tokenizers built offline: a byte-level CLIP vocabulary and a small T5 Unigram model."""

from __future__ import annotations

from pathlib import Path

from tokenizers import SentencePieceUnigramTokenizer
from transformers import CLIPTokenizer, T5TokenizerFast

#: words the tiny tokenizers learn from (captions of everyday sounds)
CORPUS = [
    "a dog barking in a backyard", "a distant dog barking", "a train passing by on the tracks",
    "a distant train", "a helicopter hovering overhead", "rain falling on a roof",
    "a bird singing in a forest", "a car engine starting", "a bell ringing in a church tower",
    "waves crashing on a beach", "a crowd cheering in a stadium", "a cat meowing indoors",
    "thunder rumbling in a storm", "a piano playing softly", "people talking in a cafe",
    "a drum beating loudly", "wind blowing through trees", "water dripping in a cave",
    "a sound echoing in a tunnel", "muffled, heard through a wall", "a quiet, faraway scene",
    "close up and loud", "a low pitched rumble", "a high pitched whistle", "and", "with", "the",
]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_clip_tokenizer(folder: Path, model_max_length: int = 77) -> CLIPTokenizer:
    """Byte-level CLIP BPE with no merges: 256 bytes, 256 word-final bytes, BOS, EOS (514 ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + 256 for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length, pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    return tok


def build_t5_tokenizer(folder: Path, vocab_size: int = 256, model_max_length: int = 512) -> T5TokenizerFast:
    """A SentencePiece-style Unigram tokenizer trained on :data:`CORPUS` in T5's layout."""
    folder.mkdir(parents=True, exist_ok=True)
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(
        CORPUS * 4, vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok = T5TokenizerFast(
        tokenizer_object=unigram._tokenizer,
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0, model_max_length=model_max_length,
    )
    tok.save_pretrained(folder)
    return tok
