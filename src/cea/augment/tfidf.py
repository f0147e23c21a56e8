"""TF-IDF statistics of the training split, for TF-IDF-guided replacement and insertion, with a
joblib cache that is verified by HMAC before every load.

joblib.load is pickle: loading an entry runs whatever code it names. Entries are keyed by
content (corpus hash + parameters + library versions) and each has a `.hmac` sidecar signed
with a key from a 0600 file; an entry that does not verify is refused with exit 8 and never
loaded (`refit=True` rebuilds it). Only words that occur in at least `min_df` training texts
are ever inserted into another text (a rare word may identify a person).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cea._version import __version__
from cea.augment.builtin import STOPWORDS, WeightedVocabulary
from cea.errors import IntegrityError
from cea.security.io import canonical_json, sha256_bytes
from cea.security.signed_cache import SIDE, mark_cache, read_verified, sign

_WORD = re.compile(r"(?u)\b[a-zA-Z][a-zA-Z']+\b")
FORMAT = 1


@dataclass(frozen=True)
class TfidfParams:
    min_df: int = 3
    max_features: int = 20_000

    def as_dict(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "max_features": self.max_features, "format": FORMAT}


class TfidfModel:
    """idf per word. Replacement prefers low-TF-IDF (uninformative) words and puts a vocabulary
    word in their place; insertion draws vocabulary words with weights growing with idf (the
    approach of nlpaug's TfIdfAug)."""

    def __init__(self, idf: dict[str, float]) -> None:
        self.idf = idf
        self.max_idf = max(idf.values(), default=1.0)
        words = sorted(w for w in idf if w not in STOPWORDS)
        self.pool: tuple[str, ...] = tuple(words)
        self.vocab = WeightedVocabulary(words, [idf[w] for w in words])

    def replace_weight(self, word: str) -> float:
        """Low TF-IDF → likely to be replaced."""
        return max(self.max_idf - self.idf.get(word, self.max_idf), 0.0) + 1e-3

    def candidates(self, word: str) -> tuple[str, ...]:
        return self.pool if word in self.idf else ()

    def draw(self, word: str, rng: random.Random) -> str | None:
        return self.vocab.draw(rng)


def fit_idf(texts: Sequence[str], params: TfidfParams) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(
        lowercase=True,
        token_pattern=_WORD.pattern,
        min_df=min(params.min_df, max(1, len(texts))),
        max_features=params.max_features,
        smooth_idf=True,
    )
    vec.fit(texts)
    return {w: round(float(vec.idf_[i]), 6) for w, i in vec.vocabulary_.items()}


def cache_key(texts: Sequence[str], params: TfidfParams) -> str:
    corpus = sha256_bytes("\x1e".join(texts).encode("utf-8"))
    versions = {d: metadata.version(d) for d in ("scikit-learn", "joblib")}
    blob = canonical_json(
        {"corpus": corpus, "params": params.as_dict(), "versions": versions, "cea": __version__}
    )
    return sha256_bytes(blob.encode())[:32]


def load_or_fit(
    texts: Sequence[str], params: TfidfParams, cache_dir: Path, key: bytes, *, refit: bool = False
) -> tuple[TfidfModel, str]:
    """The model for `texts` from the cache (verified) or fitted and cached; and what happened
    ("loaded", "fitted", "refitted")."""
    import io

    import joblib

    entry = cache_dir / f"tfidf-{cache_key(texts, params)}.joblib"
    side = entry.with_name(entry.name + SIDE)
    if entry.exists() and not refit:
        blob = read_verified(entry, key)  # read once, checked before a byte is unpickled
        if blob is None:
            raise IntegrityError(
                f"{entry}: TF-IDF cache entry failed HMAC verification; refused, not loaded",
                hint="it was changed or written by someone else; rebuild it with --refit",
            )
        data = joblib.load(io.BytesIO(blob))  # the verified bytes themselves, not the file
        return TfidfModel(dict(data["idf"])), "loaded"
    existed = entry.exists()
    idf = fit_idf(texts, params)
    cache_dir.mkdir(parents=True, exist_ok=True)
    mark_cache(cache_dir)
    buf = io.BytesIO()
    joblib.dump({"idf": idf, "params": params.as_dict()}, buf)
    blob = buf.getvalue()
    side.unlink(missing_ok=True)
    tmp = entry.with_name(entry.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(entry)
    sign(entry, key, blob)
    return TfidfModel(idf), "refitted" if existed else "fitted"
