"""nlpaug augmenters by name (`nlpaug:KeyboardAug`), behind a lazy adapter.

nlpaug is imported on first use only (its word module costs ~5 s), from an allow-list of class
names (a config never names code to import). Determinism: nlpaug draws from Python's `random`
and NumPy's global generators, so both are seeded from cea's per-example rng around each call
(and restored after). Protected words are passed as nlpaug's `stopwords`, which it never
changes. WordNet-based nlpaug augmenters need NLTK's POS tagger (not available offline) and
its contextual ones break on transformers 5: cea's own `wordnet_*` and `contextual_mlm`
augmenters are the working equivalents, and those names are listed unavailable with the reason.
"""

from __future__ import annotations

import random
from typing import Any

from cea.augment.base import Tokens
from cea.catalog import NLPAUG_CHAR as CHAR
from cea.catalog import NLPAUG_NAMES as NAMES

UNAVAILABLE = {
    "SynonymAug": "needs NLTK's averaged perceptron POS tagger (not installable offline); "
    "use wordnet_synonym",
    "AntonymAug": "needs NLTK's POS tagger (not installable offline); use wordnet_antonym",
    "ContextualWordEmbsAug": "breaks on transformers 5; use contextual_mlm",
    "TfIdfAug": "needs a model folder written by nlpaug's own trainer; use tfidf_substitute",
}


def nlpaug_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("nlpaug") is not None


class NlpaugAugmenter:
    kind = "nlpaug"

    def __init__(self, cls_name: str) -> None:
        if cls_name not in NAMES:
            raise ValueError(
                f"nlpaug:{cls_name} is not supported ({UNAVAILABLE.get(cls_name, '')})"
            )
        self.name = f"nlpaug:{cls_name}"
        self.cls_name = cls_name
        self._cache: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _build(self, budget: int, stop: list[str]) -> Any:
        if self.cls_name in CHAR:
            import nlpaug.augmenter.char as nac

            return getattr(nac, self.cls_name)(aug_word_max=budget, stopwords=stop)
        import nlpaug.augmenter.word as naw

        if self.cls_name == "RandomWordAug":
            return naw.RandomWordAug(action="swap", aug_max=budget, stopwords=stop)
        return getattr(naw, self.cls_name)(aug_max=budget, stopwords=stop)

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        import numpy as np

        stop = [w for w, lock in zip(tokens.words, tokens.locked, strict=True) if lock]
        key = (budget, tuple(sorted(set(stop))))
        aug = self._cache.get(key)
        if aug is None:
            if len(self._cache) > 64:
                self._cache.clear()
            aug = self._cache[key] = self._build(budget, stop)
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(rng.getrandbits(32))
        np.random.seed(rng.getrandbits(32))
        try:
            out = aug.augment(tokens.text())
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        text = out[0] if isinstance(out, list) else str(out)
        new = text.split()
        changed = sum(1 for a, b in zip(tokens.words, new, strict=False) if a != b)
        changed += abs(len(new) - len(tokens.words))
        locked = set(stop)
        tokens.words = new
        tokens.locked = [w in locked for w in new]
        return changed
