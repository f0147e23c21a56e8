"""From the `augment` config section to a compiled `Augmentation` (plus what was loaded)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cea.augment.base import Protection
from cea.augment.policy import Augmentation
from cea.augment.registry import Resources, availability, build
from cea.augment.wordnet import default_roots, find_wordnet
from cea.config import AugmentConfig
from cea.errors import MissingResourceError


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "cea"


def default_key_file() -> Path:
    return Path.home() / ".config" / "cea" / "cache.key"


def lexicon_for(
    cfg: AugmentConfig,
    descriptions: dict[str, str],
    labels: Sequence[str],
    examples: Sequence[Any],
) -> Any:
    """The criteria lexicon of this training split (None when augment.lexicon_guard is off):
    the descriptions of every criterion, and the words associated with the task's labels."""
    from cea.augment.lexicon import build_lexicon

    if not cfg.lexicon_guard:
        return None
    texts, positives = [], []
    for e in examples:
        texts.append(e.text)
        if e.criterion is not None:  # a (criterion, sentence) pair
            positives.append([e.criterion] if e.labels[0] == 1.0 else [])
        else:
            positives.append([c for c, y in zip(labels, e.labels, strict=True) if y == 1.0])
    return build_lexicon(descriptions, texts, positives)


def resources_for(
    cfg: AugmentConfig,
    train_texts: Sequence[str] | None,
    *,
    wordnet_roots: Sequence[Path] | None = None,
) -> tuple[Resources, dict[str, Any]]:
    """Resources the configured augmenters need; fits/loads TF-IDF only when one needs it."""
    from cea.security.signed_cache import load_or_create_key

    res = Resources(
        wordnet_folder=find_wordnet(wordnet_roots or default_roots()),
        mlm_path=Path(cfg.mlm_path) if cfg.mlm_path else None,
    )
    info: dict[str, Any] = {"wordnet": str(res.wordnet_folder) if res.wordnet_folder else None}
    wanted = [n for n, w in cfg.augmenters.items() if w > 0]
    if any(n.startswith("tfidf_") for n in wanted) and train_texts is not None:
        from cea.augment.tfidf import TfidfParams, load_or_fit

        key = load_or_create_key(Path(cfg.key_file) if cfg.key_file else default_key_file())
        cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        res.tfidf, what = load_or_fit(
            list(train_texts),
            TfidfParams(min_df=cfg.tfidf_min_df),
            cache / "tfidf",
            key,
            refit=cfg.refit_tfidf,
        )
        info["tfidf"] = what
    return res, info


def build_augmentation(
    cfg: AugmentConfig, seed: int, res: Resources, lexicon: Any = None
) -> Augmentation:
    """Every configured augmenter must be available: a policy that silently dropped one would
    not be the policy the user (or the HPO search) chose."""
    augmenters, weights = [], []
    for name, weight in cfg.augmenters.items():
        if weight <= 0:
            continue
        av = availability(name, res)
        if not av.available:
            raise MissingResourceError(
                f"augmenter {name} is not available here: {av.reason}",
                hint="`cea augment list` shows what is available; drop it from augment.augmenters",
            )
        augmenters.append(build(name, res))
        weights.append(weight)
    return Augmentation(
        prob=cfg.prob,
        ops_per_example=cfg.ops_per_example,
        max_replace_ratio=cfg.max_replace_ratio,
        augmenters=augmenters,
        weights=weights,
        protection=Protection.build(cfg.protected_terms, cfg.protect_negations, lexicon),
        seed=seed,
        lexicon=lexicon,
    )
