"""Load a finished run's model safely and score new texts (post level, and evidence sentences
with a sentence-level pair model)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cea.errors import IntegrityError, MissingResourceError, UsageError


@dataclass
class LoadedModel:
    run_dir: Path
    meta: dict[str, Any]
    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    thresholds: np.ndarray
    pair: bool
    batch_size: int = 64  # examples per forward pass

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def sentence_level(self) -> bool:
        """An evidence model: sentence inputs (pair or multi-label encoding)."""
        return bool(self.pair or self.meta.get("task", {}).get("level") == "sentence")

    @property
    def descriptions(self) -> dict[str, str]:
        return dict(self.meta["criteria"])


def verify_run_folder(run_dir: Path) -> dict[str, Any]:
    """Manifest + artifact scan of a finished run folder; its `cea_meta.json` when both pass.
    Nothing in the folder is loaded before this returns."""
    from cea.audit.artifacts import failing, scan_path
    from cea.security.manifest import MANIFEST_NAME, verify_manifest

    meta_path = run_dir / "cea_meta.json"
    if not run_dir.exists():
        raise MissingResourceError(f"run folder {run_dir} not found")
    if not meta_path.is_file() or not (run_dir / MANIFEST_NAME).is_file():
        raise UsageError(
            f"{run_dir} is not a finished cea run folder (cea_meta.json, manifest.json)"
        )
    verify_manifest(run_dir, exclude_dirs=("eval",))
    _, found, _ = scan_path([p for p in run_dir.iterdir() if p.is_file()])
    findings = failing(found)  # (low/info notes such as an unusual extension do not refuse)
    if findings:
        raise IntegrityError(
            f"{run_dir}: refused by the artifact scan ({findings[0].id}: {findings[0].message})"
        )
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    return meta


DEVICES = ("auto", "cpu", "cuda")


def inference_device(choice: str = "auto") -> Any:
    """`auto`: the first CUDA device when there is one, else the CPU; `cuda` without one is
    a missing resource (exit 4)."""
    import torch

    if choice not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, not {choice!r}")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MissingResourceError("--device cuda, but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def load_run_model(run_dir: Path, *, device: str = "auto", batch_size: int = 64) -> LoadedModel:
    """Verify the run folder (manifest + artifact scan) before anything in it is loaded; the
    model goes to `device` (auto: CUDA when present)."""
    from cea.model.build import load_trained
    from cea.security.io import sha256_bytes
    from cea.security.manifest import MANIFEST_NAME
    from cea.train.run import WEIGHTS_FILE

    target = inference_device(device)
    try:  # the hashes as they were before the check (a later swap of both is caught below)
        recorded = json.loads((run_dir / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = {}  # verify_run_folder says what is wrong
    meta = verify_run_folder(run_dir)
    weights = (run_dir / WEIGHTS_FILE).read_bytes()
    if not isinstance(recorded, dict) or sha256_bytes(weights) != recorded.get(WEIGHTS_FILE):
        raise IntegrityError(f"{run_dir / WEIGHTS_FILE}: changed after it was verified; not loaded")
    model, tokenizer = load_trained(run_dir, weights)
    model.to(target)
    labels = tuple(meta["labels"])
    thresholds = np.array([meta["thresholds"][lab] for lab in labels], dtype=np.float64)
    return LoadedModel(
        run_dir, meta, model, tokenizer, labels, thresholds, bool(meta["pair_encoding"]),
        batch_size,
    )  # fmt: skip


def predict_examples(lm: LoadedModel, exs: list[Any], batch_size: int | None = None) -> Any:
    """Featurize and score examples the way the run was trained (chunking / pair encoding)."""
    from cea.train.features import featurize
    from cea.train.loop import predict

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
    return predict(
        lm.model,
        feats,
        device=lm.device,
        batch_size=batch_size or lm.batch_size,
        pair=lm.pair,
        n_outputs=1 if lm.pair else len(lm.labels),
        aggregate=str(ch["aggregate"]),
        pad_id=int(lm.tokenizer.pad_token_id or 0),
    )


def score_posts(lm: LoadedModel, texts: list[str], batch_size: int | None = None) -> np.ndarray:
    """(n_texts, n_labels) probabilities from a post-level model (chunks aggregated)."""
    from cea.data.examples import Example

    if lm.sentence_level:
        raise UsageError("this is a sentence-level model; give it as the evidence model")
    zeros = tuple(0.0 for _ in lm.labels)
    exs = [Example(str(i), str(i), str(i), t, zeros) for i, t in enumerate(texts)]
    return np.asarray(predict_examples(lm, exs, batch_size).example_prob)


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


def top_evidence_batch(
    lm: LoadedModel, texts: list[str], k: int = 3
) -> list[dict[str, list[dict[str, Any]]]]:
    """`top_evidence` for many posts in one batched pass: every (criterion, sentence) pair of
    every post is scored together (length-bucketed batches across posts), not post by post."""
    from cea.data.sentences import split_sentences

    per_post = [split_sentences(t) for t in texts]
    probs: Any = []
    if not lm.pair:  # multi-label: every sentence once, all criteria at a time
        flat = [s.text for sents in per_post for s in sents]
        by_sentence = score_sentences(lm, flat) if flat else np.zeros((0, len(lm.labels)))
        probs = by_sentence.T  # criteria x sentences, sliced per post below
    else:
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
