"""Grouped, stratified, seeded splits, saved with their hashes.

Groups (posts, or patients in the generic format) never straddle two splits. Stratification
uses each group's rarest label (or NONE), so rare criteria reach every split when they can.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from cea.data.schema import Dataset
from cea.errors import DataError
from cea.security.io import atomic_write_json, canonical_json, sha256_bytes

SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    seed: int
    fractions: dict[str, float]
    groups: dict[str, tuple[str, ...]]  # split name -> sorted group ids
    data_hash: str

    def split_of(self) -> dict[str, str]:
        return {g: name for name, gs in self.groups.items() for g in gs}

    def hashes(self) -> dict[str, str]:
        return {n: sha256_bytes(canonical_json(list(g)).encode()) for n, g in self.groups.items()}

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "fractions": self.fractions,
            "data_hash": self.data_hash,
            "groups": {k: list(v) for k, v in self.groups.items()},
            "hashes": self.hashes(),
        }


def _allocate(n: int, fractions: list[float]) -> list[int]:
    """Largest-remainder allocation of n items to fractions."""
    raw = [n * f for f in fractions]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def make_split(dataset: Dataset, fractions: dict[str, float], seed: int) -> Split:
    names = [n for n in SPLIT_NAMES if fractions.get(n, 0) > 0]
    group_labels: dict[str, set[str]] = defaultdict(set)
    for post in dataset.posts:
        group_labels[post.group_id] |= set(post.labels)
    if len(group_labels) < len(names):
        raise DataError(
            f"{dataset.source}: {len(group_labels)} groups cannot fill {len(names)} splits"
        )
    freq = Counter(lab for labs in group_labels.values() for lab in labs)
    strata: dict[str, list[str]] = defaultdict(list)
    for gid in sorted(group_labels):
        labs = group_labels[gid]
        key = min(labs, key=lambda lab: (freq[lab], lab)) if labs else "NONE"
        strata[key].append(gid)
    rng = random.Random(seed)  # noqa: S311 - reproducible shuffling, not cryptography
    assigned: dict[str, list[str]] = {n: [] for n in names}
    # rotate the remainder so that small strata do not always favour the same split
    for offset, key in enumerate(sorted(strata)):
        gids = strata[key]
        rng.shuffle(gids)
        fr = [fractions[n] for n in names]
        counts = _allocate(len(gids), fr)
        if len(gids) < len(names):
            counts = [0] * len(names)
            for j in range(len(gids)):
                counts[(offset + j) % len(names)] += 1
        pos = 0
        for name, count in zip(names, counts, strict=True):
            assigned[name].extend(gids[pos : pos + count])
            pos += count
    for name in names:
        if not assigned[name]:
            raise DataError(f"{dataset.source}: split {name!r} would be empty; use more data")
    groups = {n: tuple(sorted(assigned[n])) for n in names}
    return Split(seed, {n: fractions[n] for n in names}, groups, dataset.content_hash())


def save_split(split: Split, path: Path) -> None:
    atomic_write_json(path, split.to_dict())


_SPLIT_HINT = "write it again with `cea data split`, or give the data it was made for"


def load_split(path: Path, dataset: Dataset) -> Split:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        groups = {k: tuple(v) for k, v in data["groups"].items()}
        split = Split(int(data["seed"]), dict(data["fractions"]), groups, str(data["data_hash"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"split file {path} is unreadable ({exc.__class__.__name__})", hint=_SPLIT_HINT
        ) from exc
    if split.hashes() != data.get("hashes"):
        raise DataError(
            f"split file {path}: group lists do not match their recorded hashes",
            hint=_SPLIT_HINT,
        )
    if split.data_hash != dataset.content_hash():
        raise DataError(
            f"split file {path} was made for other data (data hash differs)",
            hint="re-run `cea data split` on this dataset",
        )
    seen: dict[str, str] = {}
    for name, gids in groups.items():
        for gid in gids:
            if gid in seen:
                raise DataError(
                    f"split file {path}: group {gid} is in both {seen[gid]} and {name}",
                    hint=_SPLIT_HINT,
                )
            seen[gid] = name
    return split
