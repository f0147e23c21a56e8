"""The registry: every augmenter by name, whether it can run here, and how to build it.

Closed set of names (DESIGN §3: nothing named in a config is imported): cea's own augmenters
plus `nlpaug:<Class>` for an allow-list of nlpaug classes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cea.augment.base import Augmenter
from cea.augment.builtin import (
    CharNoise,
    Insert,
    Replace,
    WordCrop,
    WordDelete,
    WordSplit,
    WordSwap,
)
from cea.augment.nlpaug_adapter import UNAVAILABLE as NLPAUG_UNAVAILABLE
from cea.augment.nlpaug_adapter import NlpaugAugmenter, nlpaug_installed
from cea.catalog import NLPAUG_NAMES
from cea.errors import MissingResourceError


@dataclass
class Resources:
    """What some augmenters need: WordNet, the TF-IDF model of the training split, a masked-LM
    folder, the spelling-mistake dictionary. Loaded lazily; absent ones make augmenters
    unavailable, never break training without them."""

    wordnet_folder: Path | None = None
    mlm_path: Path | None = None
    tfidf: Any = None  # TfidfModel, fitted on the training split by the caller
    _wordnet: Any = field(default=None, repr=False)

    def wordnet(self) -> Any:
        if self._wordnet is None and self.wordnet_folder is not None:
            self._wordnet = _load_wordnet(self.wordnet_folder)
        return self._wordnet


@lru_cache(maxsize=2)
def _load_wordnet(folder: Path) -> Any:
    """NLTK's reader parses every index file (seconds): once per process and folder."""
    import warnings

    from cea.augment.wordnet import WordNet

    with warnings.catch_warnings():  # "multilingual functions are not available"
        warnings.simplefilter("ignore", UserWarning)
        return WordNet(folder)


@lru_cache(maxsize=1)
def spelling_dictionary() -> dict[str, tuple[str, ...]]:
    """Common misspellings (nlpaug's English list, read as text; nlpaug is not imported)."""
    from importlib.util import find_spec

    spec = find_spec("nlpaug")
    out: dict[str, tuple[str, ...]] = {}
    if spec is None or not spec.submodule_search_locations:
        return out
    path = Path(next(iter(spec.submodule_search_locations))) / "res/word/spelling/spelling_en.txt"
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isalpha():
            out[parts[0].lower()] = tuple(p for p in parts[1:] if p.lower() != parts[0].lower())
    return out


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    description: str
    needs: str  # "" | "wordnet" | "tfidf" | "mlm" | "spelling" | "nlpaug"
    build: Callable[[Resources], Augmenter]


def _synonym_source(res: Resources) -> Callable[[str, random.Random], str | None]:
    wn = res.wordnet()

    def source(word: str, rng: random.Random) -> str | None:
        options = wn.synonyms(word) if word else ()
        return rng.choice(options) if options else None

    return source


def _tfidf_replace(res: Resources) -> Augmenter:
    model = res.tfidf
    return Replace("tfidf_substitute", model.candidates, weights=model.replace_weight)


def _mlm(res: Resources) -> Augmenter:
    from cea.augment.mlm import MaskedLMAugmenter

    assert res.mlm_path is not None  # noqa: S101 - availability checked before building
    return MaskedLMAugmenter(res.mlm_path)


SPECS: tuple[Spec, ...] = (
    Spec("char_keyboard", "char", "keyboard-neighbour typos", "", lambda r: CharNoise("char_keyboard", "keyboard")),
    Spec("char_ocr", "char", "OCR confusions (o/0, l/1, rn/m ...)", "", lambda r: CharNoise("char_ocr", "ocr")),
    Spec("char_insert", "char", "insert a random letter", "", lambda r: CharNoise("char_insert", "insert")),
    Spec("char_substitute", "char", "substitute a random letter", "", lambda r: CharNoise("char_substitute", "substitute")),
    Spec("char_swap", "char", "swap two adjacent letters", "", lambda r: CharNoise("char_swap", "swap")),
    Spec("char_delete", "char", "delete a letter", "", lambda r: CharNoise("char_delete", "delete")),
    Spec("word_swap", "word", "swap two words", "", lambda r: WordSwap()),
    Spec("word_delete", "word", "delete words", "", lambda r: WordDelete()),
    Spec("word_crop", "word", "delete a contiguous run of words", "", lambda r: WordCrop()),
    Spec("word_split", "word", "split a word in two", "", lambda r: WordSplit()),
    Spec("spelling", "word", "common spelling mistakes", "spelling", lambda r: Replace("spelling", lambda w: spelling_dictionary().get(w, ()), skip_stopwords=False)),
    Spec("wordnet_synonym", "word", "WordNet synonym replacement", "wordnet", lambda r: Replace("wordnet_synonym", r.wordnet().synonyms)),
    Spec("wordnet_antonym", "word", "WordNet antonym replacement (off unless augment.allow_antonyms)", "wordnet", lambda r: Replace("wordnet_antonym", r.wordnet().antonyms)),
    Spec("tfidf_substitute", "word", "replace low-TF-IDF words with vocabulary words", "tfidf", _tfidf_replace),
    Spec("tfidf_insert", "word", "insert vocabulary words drawn by TF-IDF weight", "tfidf", lambda r: Insert("tfidf_insert", r.tfidf.draw)),
    Spec("eda_synonym_replacement", "eda", "EDA SR: replace n words with WordNet synonyms", "wordnet", lambda r: Replace("eda_synonym_replacement", r.wordnet().synonyms)),
    Spec("eda_random_insertion", "eda", "EDA RI: insert a synonym of a random word", "wordnet", lambda r: Insert("eda_random_insertion", _synonym_source(r))),
    Spec("eda_random_swap", "eda", "EDA RS: swap two words n times", "", lambda r: WordSwap("eda_random_swap", "eda")),
    Spec("eda_random_deletion", "eda", "EDA RD: delete each word with probability p", "", lambda r: WordDelete("eda_random_deletion", "eda", independent=True)),
    Spec("contextual_mlm", "model", "masked-LM replacement from a local model folder (augment.mlm_path)", "mlm", _mlm),
)  # fmt: skip
BY_NAME = {s.name: s for s in SPECS}
DEFAULT_WEIGHTS = {"char_keyboard": 1.0, "char_swap": 1.0, "word_swap": 1.0, "word_delete": 1.0, "spelling": 1.0}  # fmt: skip
CHEAP = tuple(s.name for s in SPECS if s.needs in ("", "spelling"))


@dataclass(frozen=True)
class Availability:
    name: str
    kind: str
    available: bool
    reason: str
    description: str


def availability(name: str, res: Resources, *, tfidf_possible: bool = True) -> Availability:
    if name.startswith("nlpaug:"):
        cls = name.split(":", 1)[1]
        if cls in NLPAUG_UNAVAILABLE:
            return Availability(name, "nlpaug", False, NLPAUG_UNAVAILABLE[cls], f"nlpaug {cls}")
        if cls not in NLPAUG_NAMES:
            return Availability(name, "nlpaug", False, "not a supported nlpaug class", "")
        ok = nlpaug_installed()
        return Availability(
            name, "nlpaug", ok, "" if ok else "nlpaug is not installed", f"nlpaug {cls} (slow)"
        )
    spec = BY_NAME.get(name)
    if spec is None:
        return Availability(name, "?", False, "unknown augmenter", "")
    reason = ""
    if spec.needs == "wordnet" and res.wordnet_folder is None:
        reason = "WordNet data not found (see `cea doctor`; `make install` provisions it)"
    elif spec.needs == "spelling" and not spelling_dictionary():
        reason = "nlpaug's spelling list is not installed"
    elif spec.needs == "mlm" and (res.mlm_path is None or not res.mlm_path.is_dir()):
        reason = "needs a local masked-LM folder (augment.mlm_path)"
    elif spec.needs == "tfidf" and res.tfidf is None and not tfidf_possible:
        reason = "needs the training split (fitted at run time)"
    return Availability(name, spec.kind, not reason, reason, spec.description)


def all_names() -> list[str]:
    return [s.name for s in SPECS] + [f"nlpaug:{c}" for c in (*NLPAUG_NAMES, *NLPAUG_UNAVAILABLE)]


def build(name: str, res: Resources) -> Augmenter:
    av = availability(name, res)
    if not av.available:
        raise MissingResourceError(f"augmenter {name} is not available here: {av.reason}")
    if name.startswith("nlpaug:"):
        return NlpaugAugmenter(name.split(":", 1)[1])
    return BY_NAME[name].build(res)
