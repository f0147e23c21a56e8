"""Contextual replacement with a masked language model from a local folder (never a hub).

Each chosen word is masked in turn and replaced by one of the model's top-k predictions for the
mask (whole words only, not the original). Weights load as safetensors only; the folder is
given by the user (`augment.mlm_path`), nothing is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from cea.augment.base import Tokens, bare
from cea.augment.builtin import STOPWORDS


class MaskedLMAugmenter:
    name = "contextual_mlm"
    kind = "model"

    def __init__(self, folder: Path, *, top_k: int = 10, max_length: int = 128) -> None:
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from cea.model.hf import quiet_transformers

        quiet_transformers()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)  # nosec B615 - a local folder, local_files_only
        self.model: Any = AutoModelForMaskedLM.from_pretrained(  # nosec B615 - a local folder, local_files_only
            str(folder), local_files_only=True, use_safetensors=True
        )
        self.model.eval()
        self.top_k = top_k
        self.max_length = max_length
        self._torch = torch
        if self.tokenizer.mask_token is None:
            raise ValueError(f"{folder}: the tokenizer has no mask token (not a masked LM)")

    def _predict(self, words: list[str], i: int) -> list[str]:
        masked = [*words[:i], self.tokenizer.mask_token, *words[i + 1 :]]
        enc = self.tokenizer(
            " ".join(masked), return_tensors="pt", truncation=True, max_length=self.max_length
        )
        pos = (enc["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()
        if len(pos) == 0:  # the mask fell beyond max_length
            return []
        with self._torch.inference_mode():
            logits = self.model(**enc).logits[0, int(pos[0])]
        ids = logits.topk(self.top_k * 3).indices.tolist()
        out = []
        for tok in self.tokenizer.convert_ids_to_tokens(ids):
            if tok.isalpha() and tok.lower() != bare(words[i]) and tok not in out:
                out.append(tok)
        return out[: self.top_k]

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        free = [i for i in tokens.free() if bare(tokens.words[i]) not in STOPWORDS]
        changed = 0
        for i in rng.sample(free, min(budget, len(free))):
            options = self._predict(tokens.words, i)
            if options:
                tokens.words[i] = rng.choice(options)
                changed += 1
        return changed
