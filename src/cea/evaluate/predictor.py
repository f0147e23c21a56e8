"""Score new texts with a finished run's model: post level, and evidence sentences with a
sentence-level model (pair or multi-label encoding). Loading and verifying the run folder is
`cea.run_folder`'s job."""

from __future__ import annotations

from typing import Any

import numpy as np

from cea.errors import UsageError
from cea.model.inference import DEVICES, inference_device
from cea.run_folder import LoadedModel, load_run_model, verify_run_folder

__all__ = [
    "DEVICES",
    "LoadedModel",
    "inference_device",
    "load_run_model",
    "post_probabilities",
    "predict_examples",
    "score_posts",
    "verify_run_folder",
]


def predict_examples(
    lm: LoadedModel,
    exs: list[Any],
    batch_size: int | None = None,
    truncated: list[int] | None = None,
) -> Any:
    """Featurize and score examples the way the run was trained (chunking / pair encoding).
    `truncated` (if given) receives the indices of the examples longer than the model reads
    (max_length, times max_chunks windows when chunking): only their first part is scored."""
    from cea.evaluate.calibration import apply_calibration
    from cea.model.features import featurize
    from cea.model.inference import predict

    ch = lm.meta["chunking"]
    feats = featurize(
        exs,
        lm.tokenizer,
        max_length=int(lm.meta["max_length"]),
        labels=lm.labels,
        descriptions=lm.descriptions if lm.pair else None,
        chunking=bool(ch["enabled"]) and not lm.sentence_level,
        stride=int(ch["stride"]),
        max_chunks=int(ch["max_chunks"]),
    )
    if truncated is not None:
        truncated.extend(feats.truncated_index)
    pred = predict(
        lm.model,
        feats,
        device=lm.device,
        batch_size=batch_size or lm.batch_size,
        pair=lm.pair,
        n_outputs=1 if lm.pair else len(lm.labels),
        aggregate=str(ch["aggregate"]),
        pad_id=int(lm.tokenizer.pad_token_id or 0),
    )
    # the calibration fitted at training time (cea_meta.json), before the stored thresholds
    return apply_calibration(pred, lm.meta.get("calibration"), lm.labels)


def score_posts(
    lm: LoadedModel,
    texts: list[str],
    batch_size: int | None = None,
    truncated: list[int] | None = None,
) -> np.ndarray:
    """(n_texts, n_labels) probabilities from a post-level model (chunks aggregated);
    `truncated` receives the indices of texts only partly read (see `predict_examples`)."""
    from cea.data.examples import Example

    if lm.sentence_level:
        raise UsageError("this is a sentence-level model; give it as the evidence model")
    zeros = tuple(0.0 for _ in lm.labels)
    exs = [Example(str(i), str(i), str(i), t, zeros) for i, t in enumerate(texts)]
    return np.asarray(predict_examples(lm, exs, batch_size, truncated).example_prob)


def score_sentences(lm: LoadedModel, sentences: list[str]) -> np.ndarray:
    """(n_sentences, n_labels) probabilities from a multi-label sentence model: one forward
    per sentence gives every criterion."""
    from cea.data.examples import Example

    zeros = tuple(0.0 for _ in lm.labels)
    exs = [Example(str(i), str(i), str(i), s, zeros) for i, s in enumerate(sentences)]
    return np.asarray(predict_examples(lm, exs).example_prob)


def score_pairs(
    lm: LoadedModel, sentences: list[str], criteria: list[str], batch_size: int | None = None
) -> np.ndarray:
    """Probability that sentence i meets criteria[i] (pair model)."""
    from cea.data.examples import Example

    exs = [
        Example(str(i), str(i), str(i), s, (0.0,), c)
        for i, (s, c) in enumerate(zip(sentences, criteria, strict=True))
    ]
    return np.asarray(predict_examples(lm, exs, batch_size).example_prob[:, 0])


def top_evidence(lm: LoadedModel, text: str, k: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Per criterion, the k sentences of `text` most likely to be evidence."""
    return top_evidence_batch(lm, [text], k)[0]


def sentence_scores(lm: LoadedModel, texts: list[str]) -> tuple[list[Any], np.ndarray]:
    """A multi-label sentence model on whole texts: (each text's sentences, (all sentences,
    n_labels) calibrated probabilities, text after text)."""
    from cea.data.sentences import split_sentences

    per_post = [split_sentences(t) for t in texts]
    flat = [s.text for sents in per_post for s in sents]
    by_sentence = score_sentences(lm, flat) if flat else np.zeros((0, len(lm.labels)))
    return per_post, by_sentence


def posts_from_sentence_scores(
    lm: LoadedModel, per_post: list[Any], by_sentence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n_texts, n_labels) post probabilities pooled from their sentences' (`task.post_pooling`
    and the post calibration of `cea_meta.json` `posts`), and the post thresholds. A text with
    no sentence scores 0."""
    from cea.evaluate.calibration import calibrate
    from cea.evaluate.posts import pool_sentences

    posts_meta = lm.meta.get("posts") or {}
    n_labels = len(lm.labels)
    ids = [str(i) for i, sents in enumerate(per_post) for _ in sents]
    order, pooled = pool_sentences(ids, by_sentence, str(posts_meta.get("pooling", "max")))
    out = np.zeros((len(per_post), n_labels))
    if order:
        out[[int(i) for i in order]] = pooled
    crit = np.tile(np.arange(n_labels), len(per_post))
    flat = calibrate(out.reshape(-1), crit, posts_meta.get("calibration"), lm.labels)
    thresholds = np.array(
        [float((posts_meta.get("thresholds") or {}).get(lab, t))
         for lab, t in zip(lm.labels, lm.thresholds, strict=True)]
    )  # fmt: skip
    return flat.reshape(len(per_post), n_labels), thresholds


def post_probabilities(
    lm: LoadedModel, texts: list[str], truncated: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(n_texts, n_labels) criteria probabilities of whole texts and the thresholds they are
    decided at: a post-level model's (windows pooled), or a multi-label sentence model's
    (its sentences pooled, the post calibration and thresholds). A pair model has none."""
    if lm.sentence_level and not lm.pair:
        return posts_from_sentence_scores(lm, *sentence_scores(lm, texts))
    return score_posts(lm, texts, truncated=truncated), np.asarray(lm.thresholds)


def top_evidence_batch(
    lm: LoadedModel,
    texts: list[str],
    k: int = 3,
    scored: tuple[list[Any], np.ndarray] | None = None,
) -> list[dict[str, list[dict[str, Any]]]]:
    """`top_evidence` for many posts in one batched pass: every (criterion, sentence) pair of
    every post is scored together (length-bucketed batches across posts), not post by post.
    `scored`: `sentence_scores` of these texts, already computed (multi-label models)."""
    from cea.data.sentences import split_sentences

    probs: Any = []
    if not lm.pair:  # multi-label: every sentence once, all criteria at a time
        per_post, by_sentence = scored if scored is not None else sentence_scores(lm, texts)
        probs = by_sentence.T  # criteria x sentences, sliced per post below
    else:
        per_post = [split_sentences(t) for t in texts]
        pairs = [(s.text, lab) for sents in per_post for lab in lm.labels for s in sents]
        probs = score_pairs(lm, [s for s, _ in pairs], [c for _, c in pairs]) if pairs else []
    out: list[dict[str, list[dict[str, Any]]]] = []
    at = 0
    for sents in per_post:
        n = len(sents)
        post: dict[str, list[dict[str, Any]]] = {}
        for j, lab in enumerate(lm.labels):
            if lm.pair:
                block = np.asarray(probs[at + j * n : at + (j + 1) * n])
            else:
                block = np.asarray(probs[j, at : at + n])
            order = np.argsort(-block, kind="stable")[:k]
            post[lab] = [
                {
                    "sentence": int(sents[i].index),
                    "start": sents[i].start,
                    "end": sents[i].end,
                    "prob": round(float(block[i]), 6),
                    "evidence": bool(round(float(block[i]), 6) >= lm.thresholds[j]),
                }
                for i in order
            ]
        at += n * len(lm.labels) if lm.pair else n
        out.append(post)
    return out
