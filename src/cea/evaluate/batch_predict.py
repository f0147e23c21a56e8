"""Scoring a file of texts: the JSONL input read line by line (bad lines reported by number,
never by their text), each text's probabilities and decisions at the run's thresholds, top
evidence sentences from an evidence model, written atomically (a failure leaves no output)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cea.errors import DataError, MissingResourceError
from cea.evaluate.predictor import (
    LoadedModel,
    posts_from_sentence_scores,
    score_posts,
    sentence_scores,
    top_evidence_batch,
)
from cea.security.io import atomic_path


@dataclass(frozen=True)
class Prediction:
    """One text's result: probability and decision per criterion (decided on the value shown,
    6 decimals, like the stored thresholds), and its top evidence sentences when asked for."""

    id: str
    probs: dict[str, float]
    decisions: dict[str, bool]
    evidence: dict[str, list[dict[str, Any]]] | None = field(default=None)
    truncated: bool = False  # longer than the model reads: only its first part was scored

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "probs": self.probs, "decisions": self.decisions}
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if self.truncated:
            out["truncated"] = True
        return out


def predict_texts(
    lm: LoadedModel,
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    evidence: LoadedModel | None = None,
    top_k: int = 3,
) -> list[Prediction]:
    """Score `texts` with a post-level model (and an evidence model, if given), or with a
    multi-label sentence model alone: its sentences' scores pooled give the criteria (at the
    post thresholds), and the same scores the evidence (both tasks from one pass)."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    cut: list[int] = []
    thresholds = lm.thresholds
    found = None
    if lm.sentence_level and not lm.pair:
        scored = sentence_scores(lm, list(texts))
        probs, thresholds = posts_from_sentence_scores(lm, *scored)
        source = evidence if evidence is not None else lm
        found = top_evidence_batch(source, list(texts), top_k, scored if source is lm else None)
    else:
        probs = score_posts(lm, list(texts), truncated=cut)
        if evidence is not None:
            found = top_evidence_batch(evidence, list(texts), top_k)
    partly = set(cut)
    out = []
    for j, (rid, row) in enumerate(zip(ids, probs, strict=True)):
        shown = [round(float(p), 6) for p in row]
        out.append(
            Prediction(
                rid,
                dict(zip(lm.labels, shown, strict=True)),
                {lab: bool(p >= t) for lab, p, t in zip(lm.labels, shown, thresholds, strict=True)},
                found[j] if found is not None else None,
                j in partly,
            )
        )
    return out


def read_inputs(path: Path) -> tuple[list[tuple[int, str, str]], list[dict[str, Any]]]:
    """Good lines as (line, id, text); bad lines reported by number (never their text)."""
    good: list[tuple[int, str, str]] = []
    bad: list[dict[str, Any]] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise MissingResourceError(f"input file {path} not found") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror})") from exc
    seen: set[str] = set()
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM (as `cea data validate` allows)
        raw = raw[3:]
    # lines end at "\n" only (JSON Lines), as the dataset reader reads them
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad.append({"line": lineno, "reason": "not valid UTF-8 JSON"})
            continue
        except RecursionError:
            bad.append({"line": lineno, "reason": "JSON nested too deeply to read"})
            continue
        if isinstance(rec, dict) and isinstance(rec.get("text"), str):
            try:
                rec["text"].encode("utf-8")
            except UnicodeEncodeError:
                bad.append({"line": lineno, "reason": "text holds a lone surrogate (not Unicode)"})
                continue
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("text"), str)
            or not rec["text"].strip()
        ):
            bad.append({"line": lineno, "reason": 'needs an object with a non-empty "text"'})
            continue
        rid = str(rec.get("id", lineno))
        if rid in seen:
            bad.append({"line": lineno, "reason": f"duplicate id {rid!r}"})
            continue
        seen.add(rid)
        good.append((lineno, rid, rec["text"]))
    return good, bad


def predict_file(
    lm: LoadedModel,
    good: list[tuple[int, str, str]],
    output: Path,
    *,
    evidence: LoadedModel | None = None,
    top_k: int = 3,
    batch: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score the read lines `batch` texts at a time into `output` (JSONL, atomic); timings."""
    started = time.perf_counter()
    truncated: list[str] = []
    with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for start in range(0, len(good), batch):
            part = good[start : start + batch]
            preds = predict_texts(
                lm, [t for _, _, t in part], [rid for _, rid, _ in part],
                evidence=evidence, top_k=top_k,
            )  # fmt: skip
            for p in preds:
                fh.write(json.dumps(p.to_dict()) + "\n")
                if p.truncated:
                    truncated.append(p.id)
            if on_batch is not None:
                on_batch(len(part))
    seconds = time.perf_counter() - started
    return {
        "output": str(output),
        "scored": len(good),
        "device": str(lm.device),
        "seconds": round(seconds, 3),
        "posts_per_s": round(len(good) / max(seconds, 1e-9), 2),
        "truncated": truncated,  # ids of texts longer than the model reads
    }
