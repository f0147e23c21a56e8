"""Splits, sentence splitting, example building, the synthetic sample, truncation stats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cea.data.criteria import DSM5_LABELS, load_criteria
from cea.data.examples import build_examples
from cea.data.readers import read_redsm5, sample_data_path
from cea.data.sample import LABELS, generate_sample, write_sample
from cea.data.sentences import split_sentences
from cea.data.splits import load_split, make_split, save_split
from cea.data.truncation import truncation_stats
from cea.errors import ConfigError, DataError

FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}


@pytest.fixture(scope="module")
def sample():
    return read_redsm5(sample_data_path(), DSM5_LABELS).dataset


def test_packaged_sample_is_clean_and_covers_every_label(sample) -> None:
    result = read_redsm5(sample_data_path(), DSM5_LABELS)
    assert result.issues == ()
    positives = {a.criterion for a in sample.annotations if a.status == 1}
    negatives = {a.criterion for a in sample.annotations if a.status == 0}
    assert positives == set(DSM5_LABELS)
    assert negatives == set(DSM5_LABELS)
    assert sum(1 for p in sample.posts if not p.labels) >= 20  # symptom-free posts
    words = [len(p.text.split()) for p in sample.posts]
    assert min(words) < 30 and max(words) > 300  # realistic length variety


def test_sample_generation_is_deterministic_and_seeded(tmp_path: Path) -> None:
    a = generate_sample(40, seed=3)
    assert a == generate_sample(40, seed=3)
    assert a != generate_sample(40, seed=4)
    stats = write_sample(tmp_path / "s", 40, seed=3)
    assert stats.posts == 40
    assert set(stats.label_counts) == set(LABELS)
    assert read_redsm5(tmp_path / "s", DSM5_LABELS).issues == ()


def test_sample_cli(cli, tmp_path: Path) -> None:
    res = cli(
        "data", "sample", "--out", str(tmp_path / "s"), "--posts", "25", "--seed", "2", "--json"
    )
    assert res.exit_code == 0
    assert json.loads(res.stdout)["posts"] == 25
    assert (tmp_path / "s" / "redsm5_posts.csv").is_file()


def test_sample_long_is_the_long_profile_generated_on_read(cli, tmp_path: Path) -> None:
    """`data.path: sample-long` is `cea data sample --profile long --posts 300 --seed 11`, read
    without a folder left behind, the same data (hash) every time."""
    import statistics
    import tempfile

    from cea.data.readers import load_dataset

    before = set(Path(tempfile.gettempdir()).glob("cea-sample-long-*"))
    got = load_dataset("redsm5", "sample-long", DSM5_LABELS)
    assert got.issues == () and got.dataset.source == "sample-long"
    assert set(Path(tempfile.gettempdir()).glob("cea-sample-long-*")) == before
    assert cli("data", "sample", "-o", str(tmp_path / "l"), "-n", "300", "--seed", "11",
               "--profile", "long", "-q").exit_code == 0  # fmt: skip
    written = read_redsm5(tmp_path / "l", DSM5_LABELS).dataset
    assert got.dataset.content_hash() == written.content_hash()
    words = [len(p.text.split()) for p in got.dataset.posts]
    assert len(words) == 300 and statistics.mean(words) > 200 and max(words) > 1000
    res = cli("data", "describe", "sample-long", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["data_hash"] == written.content_hash()


def test_split_grouped_disjoint_and_deterministic(sample) -> None:
    split = make_split(sample, FRACTIONS, seed=13)
    groups = [set(g) for g in split.groups.values()]
    assert sum(len(g) for g in groups) == len(sample.posts)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not groups[i] & groups[j]
    assert make_split(sample, FRACTIONS, seed=13).groups == split.groups
    assert make_split(sample, FRACTIONS, seed=14).groups != split.groups
    # stratified: every label reaches every split in the packaged sample
    where = split.split_of()
    for lab in DSM5_LABELS:
        assert {where[p.group_id] for p in sample.posts if lab in p.labels} == set(FRACTIONS)
    # proportions roughly kept
    assert abs(len(split.groups["train"]) / len(sample.posts) - 0.7) < 0.05


def test_generic_groups_never_straddle(tmp_path: Path) -> None:
    from cea.data.readers import read_generic

    path = tmp_path / "g.jsonl"
    rows = [
        {
            "id": f"n{i}",
            "text": f"note {i}",
            "labels": ["FATIGUE"] if i % 3 == 0 else [],
            "group": f"pat{i // 4}",
        }
        for i in range(80)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = read_generic(path, DSM5_LABELS).dataset
    split = make_split(ds, FRACTIONS, seed=1)
    where = split.split_of()
    by_group: dict[str, set[str]] = {}
    for p in ds.posts:
        by_group.setdefault(p.group_id, set()).add(where[p.group_id])
    assert all(len(v) == 1 for v in by_group.values())


def test_saved_split_round_trip_and_tamper(sample, tmp_path: Path) -> None:
    split = make_split(sample, FRACTIONS, seed=13)
    path = tmp_path / "split.json"
    save_split(split, path)
    assert load_split(path, sample).groups == split.groups
    data = json.loads(path.read_text())
    data["groups"]["test"].append(data["groups"]["train"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="hashes"):
        load_split(path, sample)


def test_split_cli_writes_hashes(cli, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    res = cli("data", "split", "--out", str(out), "--seed", "7", "--json")
    assert res.exit_code == 0
    data = json.loads(out.read_text())
    assert set(data["hashes"]) == {"train", "validation", "test"}
    assert json.loads(res.stdout)["data_hash"] == data["data_hash"]


def test_describe_cli_counts_per_split_and_no_overlap(cli) -> None:
    res = cli("data", "describe", "--json")
    assert res.exit_code == 0
    desc = json.loads(res.stdout)
    assert desc["overlap"] == []
    assert set(desc["label_counts"]) == {"train", "validation", "test"}
    assert sum(desc["split_posts"].values()) == desc["posts"] == 300
    human = cli("data", "describe")
    assert "posts in two splits: 0" in human.stdout


def test_describe_reports_truncation_for_a_tokenizer(cli) -> None:
    res = cli("data", "describe", "--backbone", "minilm", "--max-length", "64", "--json")
    assert res.exit_code == 0
    trunc = json.loads(res.stdout)["truncation"]
    assert trunc["max_length"] == 64
    assert 0 < trunc["truncated_share"] < 1


# ---- sentences -----------------------------------------------------------------------------


def test_sentence_splitter_handles_reddit_text() -> None:
    text = "I saw Dr. Smith today... it went ok!! i dont know\n\nanyway - I'm tired. e.g. at 3 p.m. I nap."
    sents = [s.text for s in split_sentences(text)]
    assert sents[0] == "I saw Dr. Smith today..."
    assert "it went ok!!" in sents
    assert "i dont know" in sents
    assert all(s.strip() == s and s for s in sents)


def test_sentence_ends_after_no_and_i_unless_a_number_follows() -> None:
    """'no' and 'I' are words first: "I said no. Then" and "so am I. But" end sentences (the
    hard sample and real posts have them); "No. 5" and the initials in "J. K. Rowling" do not."""
    text = (
        "He asked if I was ok and I said no. Then I cried. So am I. But see No. 5 by J. K. Rowling."
    )
    assert [s.text for s in split_sentences(text)] == [
        "He asked if I was ok and I said no.",
        "Then I cried.",
        "So am I.",
        "But see No. 5 by J. K. Rowling.",
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300))
def test_sentence_spans_point_into_the_text(text: str) -> None:
    prev_end = 0
    for s in split_sentences(text):
        assert text[s.start : s.end] == s.text
        assert s.start >= prev_end
        prev_end = s.end


# ---- examples ------------------------------------------------------------------------------


def test_post_examples_are_multi_hot(sample) -> None:
    exs = build_examples(sample, level="post", labels=DSM5_LABELS)
    assert len(exs) == len(sample.posts)
    by_id = sample.post_by_id()
    for e in exs[:50]:
        assert {lab for lab, y in zip(DSM5_LABELS, e.labels, strict=True) if y} == set(
            by_id[e.post_id].labels
        )


def test_sentence_examples_annotated_vs_all(sample) -> None:
    ann = build_examples(sample, level="sentence", labels=DSM5_LABELS, negatives="annotated")
    assert len(ann) == len(sample.annotations)
    assert sum(e.labels[0] for e in ann) == sum(a.status for a in sample.annotations)
    full = build_examples(sample, level="sentence", labels=DSM5_LABELS, negatives="all")
    assert len(full) > len(ann) * 3
    # every positive annotation is a positive pair in the "all" view too
    assert sum(e.labels[0] for e in full) == sum(a.status for a in sample.annotations)
    assert all(e.criterion in DSM5_LABELS for e in full)


def test_evidence_cut_differently_by_the_annotators_is_never_a_negative() -> None:
    """The annotators' sentence is not one the splitter makes: "cannot sleep" sits inside a
    longer splitter sentence, and "Everything is grey. Tired" spans two. The annotated text is
    its own positive; the splitter sentences that hold it or lie inside it are unknown (NaN)
    for that criterion, not negatives; every other sentence and criterion stays a negative."""
    from cea.data.schema import Annotation, Dataset, Post

    text = "Work was fine today, but I cannot sleep at all. Everything is grey. Tired all day. Ok."
    post = Post("p1", text, "p1", frozenset({"SLEEP_ISSUES", "DEPRESSED_MOOD"}))
    anns = (
        Annotation("p1", "a1", "I cannot sleep", "SLEEP_ISSUES", 1),
        Annotation("p1", "a2", "Everything is grey. Tired", "DEPRESSED_MOOD", 1),
    )
    data = Dataset("hand", "redsm5", DSM5_LABELS, (post,), anns)
    pairs = build_examples(data, level="sentence", labels=DSM5_LABELS, negatives="all")
    y = {(e.text, e.criterion): e.labels[0] for e in pairs}
    splits = {e.text for e in pairs} - {"I cannot sleep", "Everything is grey. Tired"}
    assert splits == {
        "Work was fine today, but I cannot sleep at all.",
        "Everything is grey.",
        "Tired all day.",
        "Ok.",
    }
    assert y[("I cannot sleep", "SLEEP_ISSUES")] == 1.0
    assert y[("Everything is grey. Tired", "DEPRESSED_MOOD")] == 1.0
    assert math.isnan(y[("Work was fine today, but I cannot sleep at all.", "SLEEP_ISSUES")])
    assert math.isnan(y[("Everything is grey.", "DEPRESSED_MOOD")])
    assert y[("Tired all day.", "DEPRESSED_MOOD")] == 0.0  # "Tired" is inside, not all of it
    assert y[("Everything is grey.", "SLEEP_ISSUES")] == 0.0
    assert y[("Ok.", "DEPRESSED_MOOD")] == 0.0
    multi = build_examples(
        data, level="sentence", labels=DSM5_LABELS, negatives="all", encoding="multilabel"
    )
    sleep = DSM5_LABELS.index("SLEEP_ISSUES")
    held = next(e for e in multi if e.text.startswith("Work was fine"))
    assert math.isnan(held.labels[sleep]) and held.labels[0 if sleep else 1] == 0.0


def test_examples_respect_groups(sample) -> None:
    split = make_split(sample, FRACTIONS, seed=13)
    test_groups = set(split.groups["test"])
    exs = build_examples(
        sample, level="sentence", labels=DSM5_LABELS, negatives="all", groups=test_groups
    )
    assert exs and {e.group_id for e in exs} <= test_groups


def test_criteria_file(tmp_path: Path) -> None:
    assert tuple(load_criteria()) == DSM5_LABELS
    own = tmp_path / "c.yaml"
    own.write_text("PAIN: The person reports pain.\nNAUSEA: The person feels sick.\n")
    assert load_criteria(own) == {
        "PAIN": "The person reports pain.",
        "NAUSEA": "The person feels sick.",
    }
    own.write_text("- a\n- b\n")
    with pytest.raises(ConfigError):
        load_criteria(own)


# ---- truncation ----------------------------------------------------------------------------


def test_truncation_stats() -> None:
    stats = truncation_stats([10, 20, 130, 400], 128, stride=32, max_chunks=2)
    assert stats.truncated == 2
    assert stats.truncated_share == 0.5
    assert stats.max_tokens == 400
    assert stats.chunked_examples_lost_tokens == 1  # 400 > 126 + 94 tokens covered by 2 chunks


def test_sample_is_the_same_in_every_process() -> None:
    """Same seed, same data, whatever PYTHONHASHSEED (set order of strings varies with it)."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, json; from cea.data.sample import generate_sample; "
        "print(hashlib.sha256(json.dumps(generate_sample(40, seed=5)).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": h},
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for h in ("1", "2", "3")
    }  # fmt: skip
    assert len(digests) == 1
