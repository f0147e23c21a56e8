"""A tiny random BERT (2 layers, hidden 64) with a small WordPiece vocabulary: milliseconds.

Used by the test suite and `model.backbone=tiny` smoke runs. Deterministic for a seed.
"""

from __future__ import annotations

import string
from pathlib import Path

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = [
    "i",
    "me",
    "my",
    "you",
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "not",
    "never",
    "no",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "is",
    "am",
    "are",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "can",
    "can't",
    "cannot",
    "don't",
    "won't",
    "just",
    "so",
    "very",
    "all",
    "every",
    "day",
    "days",
    "night",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "feel",
    "feeling",
    "felt",
    "sad",
    "empty",
    "hopeless",
    "down",
    "low",
    "cry",
    "numb",
    "enjoy",
    "fun",
    "pleasure",
    "hobbies",
    "interest",
    "eat",
    "eating",
    "appetite",
    "food",
    "weight",
    "meals",
    "sleep",
    "sleeping",
    "awake",
    "insomnia",
    "tired",
    "exhausted",
    "energy",
    "drained",
    "slow",
    "restless",
    "pacing",
    "worthless",
    "failure",
    "guilt",
    "blame",
    "hate",
    "burden",
    "concentrate",
    "focus",
    "decisions",
    "foggy",
    "forget",
    "thoughts",
    "death",
    "die",
    "dying",
    "life",
    "end",
    "kill",
    "suicide",
    "grief",
    "died",
    "passed",
    "mood",
    "work",
    "job",
    "friends",
    "family",
    "doctor",
    "person",
    "has",
    "trouble",
    "thinking",
]


def build_tiny_bert(target: Path, *, seed: int = 0) -> Path:
    """Write config, random safetensors weights and a tokenizer to `target`; return it."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel, BertTokenizer

    from cea.model.hf import quiet_transformers

    quiet_transformers()

    target.mkdir(parents=True, exist_ok=True)
    if (target / "model.safetensors").is_file() and (target / "vocab.txt").is_file():
        return target
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = (
        _SPECIAL
        + sorted(set(_WORDS))
        + chars
        + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    )
    ordered = list(dict.fromkeys(vocab))
    tokenizer = BertTokenizer(
        vocab={tok: i for i, tok in enumerate(ordered)},
        do_lower_case=True,
        model_max_length=512,  # = max_position_embeddings (the default is 1e30: no truncation)
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=True)  # a bare backbone, like the packaged MiniLM
    # written directly, not with save_pretrained: under torchrun, transformers saves on rank 0
    # only, and every rank builds its own (identical, seeded) tiny backbone
    config.architectures = ["BertModel"]
    config.to_json_file(str(target / "config.json"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(target)
    return target
