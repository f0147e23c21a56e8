"""The `hard` synthetic profile (`cea data sample --profile hard`, `--data sample-hard`): its
stated properties, measured on the default size, with tolerances."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from cea.data.readers import load_dataset, read_redsm5
from cea.data.sample import generate_sample
from cea.data.sample_hard import HARD_POSTS, LABELS, RARE
from cea.data.schema import Dataset
from cea.data.sentences import split_sentences
from cea.data.splits import make_split

COMMON = tuple(lab for lab in LABELS if lab not in RARE)


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The default hard dataset (1,484 posts, seed 13), written and read like any folder."""
    from cea.data.sample import write_sample

    out = tmp_path_factory.mktemp("hard")
    write_sample(out, HARD_POSTS, 13, "hard")
    result = read_redsm5(out, LABELS)
    assert result.issues == ()  # every annotated sentence occurs verbatim in its post
    return result.dataset


def test_deterministic_per_seed() -> None:
    a = generate_sample(60, seed=5, profile="hard")
    assert a == generate_sample(60, seed=5, profile="hard")
    assert a != generate_sample(60, seed=6, profile="hard")


def test_long_posts_with_a_long_tail(hard: Dataset) -> None:
    words = [len(p.text.split()) for p in hard.posts]
    assert len(words) == HARD_POSTS
    assert 270 <= statistics.mean(words) <= 340  # ReDSM5: mean ~295 words
    assert statistics.median(words) < statistics.mean(words)  # right-skewed
    assert max(words) > 1500
    assert sum(w > 3 * statistics.median(words) for w in words) >= 30


def test_evidence_is_one_or_two_sentences_among_many(hard: Dataset) -> None:
    n_sentences = sum(len(split_sentences(p.text)) for p in hard.posts)
    assert n_sentences / len(hard.posts) > 18
    positive = Counter(a.criterion for a in hard.annotations if a.status == 1)
    for lab in COMMON:  # 1-3 % of all sentences are evidence for each common criterion
        assert 0.01 <= positive[lab] / n_sentences <= 0.03, lab
    for lab in RARE:
        assert positive[lab] / n_sentences < 0.002, lab
    per_pair = Counter((a.post_id, a.criterion) for a in hard.annotations if a.status == 1)
    assert 1.0 <= statistics.mean(per_pair.values()) <= 2.0
    assert sum(v <= 2 for v in per_pair.values()) / len(per_pair) > 0.9


def test_rare_criteria_and_co_occurring_labels(hard: Dataset) -> None:
    split = make_split(hard, {"train": 0.7, "validation": 0.15, "test": 0.15}, 13)
    train = set(split.groups["train"])
    in_train = Counter(lab for p in hard.posts if p.group_id in train for lab in p.labels)
    for lab in RARE:
        assert 1 <= in_train[lab] < 15, (lab, in_train[lab])
    for lab in COMMON:
        assert in_train[lab] >= 100, lab
    n = len(hard.posts)
    share = {lab: sum(lab in p.labels for p in hard.posts) / n for lab in LABELS}

    def lift(a: str, b: str) -> float:
        both = sum(a in p.labels and b in p.labels for p in hard.posts) / n
        return both / (share[a] * share[b])

    assert lift("SLEEP_ISSUES", "FATIGUE") > 1.3
    assert lift("WORTHLESSNESS", "SUICIDAL_THOUGHTS") > 1.3
    multi = sum(len(p.labels) >= 2 for p in hard.posts) / n
    free = sum(not p.labels for p in hard.posts) / n
    assert multi > 0.3 and 0.15 < free < 0.5


def test_distractors_and_clinician_marked_absence(hard: Dataset) -> None:
    texts = {p.post_id: p.text for p in hard.posts}
    labels = {p.post_id: p.labels for p in hard.posts}
    absent = defaultdict(int)
    for a in hard.annotations:
        if a.status == 0:
            absent[a.criterion] += 1
            assert a.sentence_text in texts[a.post_id]
    assert all(absent[lab] >= 20 for lab in LABELS)  # status-0 rows for every criterion
    # negated mentions, the words in other senses, and a neighbour's words, in negative posts
    negated = sum("I sleep fine" in t or "sleep mode" in t for t in texts.values())
    other_sense = sum("killing me" in t or "dying to see" in t for t in texts.values())
    assert negated >= 10 and other_sense >= 20
    neighbour = [
        a
        for a in hard.annotations
        if a.status == 1 and a.criterion == "SLEEP_ISSUES" and "tired" in a.sentence_text
    ]
    assert neighbour  # sleep evidence in fatigue's words
    # the same words as evidence, unmarked, in posts that do not meet the criterion
    unmarked = sum("exhausted" in texts[pid] for pid in texts if "FATIGUE" not in labels[pid])
    assert unmarked >= 30


def test_cli_and_sample_hard_data_name(cli, tmp_path: Path) -> None:
    res = cli("data", "sample", "--profile", "hard", "-o", str(tmp_path / "h"), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["posts"] == HARD_POSTS  # the default size of the profile
    res = cli("data", "sample", "--profile", "hard", "-n", "40", "-o", str(tmp_path / "s"), "-q")
    assert res.exit_code == 0
    assert len(read_redsm5(tmp_path / "s", LABELS).dataset.posts) == 40
    got = load_dataset("redsm5", "sample-hard", LABELS)
    assert got.issues == () and got.dataset.source == "sample-hard"
    assert len(got.dataset.posts) == HARD_POSTS
    assert cli("data", "sample", "--profile", "hard", "-o", str(tmp_path / "e"), "--seed", "11",
               "-q").exit_code == 0  # fmt: skip
    written = read_redsm5(tmp_path / "e", LABELS).dataset
    assert got.dataset.content_hash() == written.content_hash()
