"""A dozen ReDSM5 folders, each with one defect: --strict exits 5 and names file and row/id."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from cea.data.criteria import DSM5_LABELS
from cea.data.readers import read_generic, read_redsm5

POSTS = [
    [
        "p1",
        "I feel empty and sad most days. My appetite is normal and I eat regular meals. Thanks for reading.",
    ],
    [
        "p2",
        "I can't concentrate on anything lately. I saw my doctor on Tuesday and we talked for a long time.",
    ],
    [
        "p3",
        "I have never thought about hurting myself. The weather here has been rainy and cold this week.",
    ],
]
ANNS = [
    ["p1", "p1_0", "I feel empty and sad most days.", "DEPRESSED_MOOD", "1", ""],
    ["p1", "p1_1", "My appetite is normal and I eat regular meals.", "APPETITE_CHANGE", "0", ""],
    ["p2", "p2_0", "I can't concentrate on anything lately.", "COGNITIVE_ISSUES", "1", ""],
    ["p3", "p3_0", "I have never thought about hurting myself.", "SUICIDAL_THOUGHTS", "0", ""],
]
POST_HEADER = ["post_id", "text"]
ANN_HEADER = ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"]


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def make_folder(
    root: Path, posts=POSTS, anns=ANNS, post_header=POST_HEADER, ann_header=ANN_HEADER
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "redsm5_posts.csv").write_text(_csv(post_header, posts), encoding="utf-8")
    (root / "redsm5_annotations.csv").write_text(_csv(ann_header, anns), encoding="utf-8")
    return root


def _replace(rows: list[list[str]], i: int, j: int, value: str) -> list[list[str]]:
    out = [list(r) for r in rows]
    out[i][j] = value
    return out


def _bad_encoding(root: Path) -> None:
    make_folder(root)
    raw = (root / "redsm5_posts.csv").read_bytes()
    (root / "redsm5_posts.csv").write_bytes(raw.replace(b"Tuesday", b"Tu\xff\xfesday"))


def _malformed(root: Path) -> None:
    make_folder(root)
    (root / "redsm5_annotations.csv").write_text(
        _csv(ANN_HEADER, ANNS) + 'p2,p2_9,"unclosed quote,FATIGUE,1,\n', encoding="utf-8"
    )


# name -> (builder, expected file, expected location text, expected code)
DEFECTS: dict[str, tuple[Callable[[Path], object], str, str, str]] = {
    "unknown_label": (
        lambda r: make_folder(r, anns=_replace(ANNS, 0, 3, "DEPRESED_MOOD")),
        "redsm5_annotations.csv",
        ":2",
        "unknown_label",
    ),
    "missing_column_posts": (
        lambda r: make_folder(r, post_header=["post_id", "body"]),
        "redsm5_posts.csv",
        "column text",
        "missing_column",
    ),
    "missing_column_annotations": (
        lambda r: make_folder(r, ann_header=[*ANN_HEADER[:4], "state", "explanation"]),
        "redsm5_annotations.csv",
        "column status",
        "missing_column",
    ),
    "duplicate_id": (
        lambda r: make_folder(r, posts=[*POSTS, ["p2", "Another text entirely for the same id."]]),
        "redsm5_posts.csv",
        "post_id=p2",
        "duplicate_id",
    ),
    "empty_text": (
        lambda r: make_folder(r, posts=_replace(POSTS, 2, 1, "   ")),
        "redsm5_posts.csv",
        "post_id=p3",
        "empty_text",
    ),
    "orphan_annotation": (
        lambda r: make_folder(
            r, anns=[*ANNS, ["p9", "p9_0", "I am exhausted.", "FATIGUE", "1", ""]]
        ),
        "redsm5_annotations.csv",
        "post_id=p9",
        "orphan_annotation",
    ),
    "sentence_not_found": (
        lambda r: make_folder(r, anns=_replace(ANNS, 2, 2, "I can not focus at all.")),
        "redsm5_annotations.csv",
        "sentence_id=p2_0",
        "sentence_not_found",
    ),
    "bad_encoding": (_bad_encoding, "redsm5_posts.csv", ":3", "bad_encoding"),
    "bad_status": (
        lambda r: make_folder(r, anns=_replace(ANNS, 1, 4, "2")),
        "redsm5_annotations.csv",
        "sentence_id=p1_1",
        "bad_status",
    ),
    "malformed_csv": (_malformed, "redsm5_annotations.csv", ":6", "malformed_csv"),
    "empty_sentence": (
        lambda r: make_folder(r, anns=_replace(ANNS, 0, 2, "")),
        "redsm5_annotations.csv",
        "sentence_id=p1_0",
        "empty_text",
    ),
    "duplicate_annotation": (
        lambda r: make_folder(r, anns=[*ANNS, list(ANNS[0])]),
        "redsm5_annotations.csv",
        ":6",
        "duplicate_annotation",
    ),
    "missing_file": (
        lambda r: (make_folder(r), (r / "redsm5_annotations.csv").unlink()),
        "redsm5_annotations.csv",
        "",
        "missing_file",
    ),
}


def test_clean_folder_passes(cli, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "clean")
    res = cli("data", "validate", str(folder), "--strict")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "OK" in res.stdout


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_fails_strict_with_location(cli, tmp_path: Path, name: str) -> None:
    build, file, location, code = DEFECTS[name]
    folder = tmp_path / name
    build(folder)
    res = cli("data", "validate", str(folder), "--strict")
    assert res.exit_code == 5, res.stdout + res.stderr
    output = res.stdout + res.stderr
    line = next(ln for ln in output.splitlines() if f"[{code}]" in ln)
    assert file in line
    assert location in line
    for _, text in POSTS:  # never a full post text
        assert text not in output


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_json_report_has_the_issue(cli, tmp_path: Path, name: str) -> None:
    build, file, _, code = DEFECTS[name]
    folder = tmp_path / name
    build(folder)
    res = cli("data", "validate", str(folder), "--strict", "--json")
    assert res.exit_code == 5
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert any(i["code"] == code and i["file"].endswith(file) for i in report["issues"])


def test_warnings_pass_without_strict_but_are_listed(cli, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "w", anns=_replace(ANNS, 0, 3, "DEPRESED_MOOD"))
    res = cli("data", "validate", str(folder))
    assert res.exit_code == 0
    assert "did you mean DEPRESSED_MOOD" in res.stdout


def test_show_text_gives_only_a_truncated_excerpt(cli, tmp_path: Path) -> None:
    long_sentence = "This sentence is long and does not appear anywhere in the post at all, really."
    folder = make_folder(tmp_path / "x", anns=_replace(ANNS, 2, 2, long_sentence))
    res = cli("data", "validate", str(folder), "--show-text")
    assert "This sentence is long" in res.stdout
    assert long_sentence not in res.stdout


def test_unknown_label_row_is_reported_not_used(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "u", anns=_replace(ANNS, 0, 3, "DEPRESED_MOOD"))
    result = read_redsm5(folder, DSM5_LABELS)
    assert len(result.dataset.annotations) == len(ANNS) - 1
    assert [i.code for i in result.issues] == ["unknown_label"]
    assert "DEPRESSED_MOOD" not in {lab for p in result.dataset.posts for lab in p.labels}


def test_sentence_not_found_is_kept(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "s", anns=_replace(ANNS, 2, 2, "I can not focus at all."))
    result = read_redsm5(folder, DSM5_LABELS)
    assert len(result.dataset.annotations) == len(ANNS)
    assert result.dataset.post_by_id()["p2"].labels == frozenset({"COGNITIVE_ISSUES"})


def test_split_refuses_to_write_on_strict_failure(cli, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", anns=_replace(ANNS, 0, 3, "NOPE"))
    out = tmp_path / "split.json"
    res = cli("data", "split", str(folder), "--out", str(out), "--strict")
    assert res.exit_code == 5
    assert not out.exists()


# ---- generic JSONL / CSV -------------------------------------------------------------------


def test_generic_jsonl_reads_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        {"id": "a", "text": "I feel sad.", "labels": ["DEPRESSED_MOOD"], "group": "pat1"},
        {"id": "b", "text": "Fine day.", "labels": [], "group": "pat1"},
        {"id": "c", "text": "", "labels": []},
        {"id": "d", "text": "Tired.", "labels": ["FATIGUEE"]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    result = read_generic(path, DSM5_LABELS)
    # the record with a misspelt label is kept, its guessed criterion masked (not negative)
    assert [p.post_id for p in result.dataset.posts] == ["a", "b", "d"]
    assert result.dataset.posts[2].labels == frozenset()
    assert result.dataset.posts[2].unknown == frozenset({"FATIGUE"})
    assert result.dataset.posts[0].group_id == "pat1"
    codes = sorted(i.code for i in result.issues)
    assert codes == ["empty_text", "malformed_line", "unknown_label"]
    assert any(i.row == 5 for i in result.issues if i.code == "malformed_line")


def test_generic_csv_with_semicolon_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,text,labels\nx,"Sad and tired.",DEPRESSED_MOOD;FATIGUE\ny,"ok",\n')
    result = read_generic(path, DSM5_LABELS)
    assert not result.issues
    assert result.dataset.posts[0].labels == frozenset({"DEPRESSED_MOOD", "FATIGUE"})
    assert result.dataset.posts[1].labels == frozenset()


def test_generic_missing_field_is_error(cli, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    res = cli("data", "validate", str(path))
    assert res.exit_code == 5
    assert "missing_column" in res.stdout and ":1" in res.stdout


def _typo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "typo"
    folder.mkdir()
    (folder / "redsm5_posts.csv").write_text(
        "post_id,text\np1,I cannot sleep. I feel sad.\np2,All is well today.\n"
        "p3,I am tired all the time.\n"
    )
    (folder / "redsm5_annotations.csv").write_text(
        "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"
        "p1,p1_0,I cannot sleep.,SLEEP_ISSUE,1,x\n"
        "p1,p1_1,I feel sad.,DEPRESSED_MOOD,1,x\n"
        "p3,p3_0,I am tired all the time.,FATIGUE,maybe,x\n"
        "p2,p2_0,All is well today.,QWERTY,1,x\n"
    )
    return folder


def test_unusable_rows_mask_their_criterion_instead_of_making_it_negative(tmp_path: Path) -> None:
    from cea.data.examples import build_post_examples

    ds = read_redsm5(_typo_folder(tmp_path), DSM5_LABELS).dataset
    by_id = {p.post_id: p for p in ds.posts}
    assert by_id["p1"].unknown == frozenset({"SLEEP_ISSUES"})  # the close match
    assert by_id["p3"].unknown == frozenset({"FATIGUE"})  # bad status: its own label
    assert by_id["p2"].unknown == frozenset({"*"})  # no close match: every criterion
    exs = {e.post_id: e for e in build_post_examples(ds, DSM5_LABELS)}
    sleep, fatigue, mood = (
        DSM5_LABELS.index(x) for x in ("SLEEP_ISSUES", "FATIGUE", "DEPRESSED_MOOD")
    )
    assert math.isnan(exs["p1"].labels[sleep]) and exs["p1"].labels[mood] == 1.0
    assert exs["p1"].labels[fatigue] == 0.0  # other criteria stay known negatives
    assert math.isnan(exs["p3"].labels[fatigue])
    assert all(math.isnan(v) for v in exs["p2"].labels)


def test_label_aliases_fix_the_typos_that_validate_proposes(cli, tmp_path: Path) -> None:
    folder = _typo_folder(tmp_path)
    res = cli("data", "validate", str(folder), "--json")
    proposed = json.loads(res.stdout)["proposed_label_aliases"]
    assert proposed == {"SLEEP_ISSUE": "SLEEP_ISSUES"}  # QWERTY has no close match
    text = cli("data", "validate", str(folder)).stdout
    assert "label_aliases" in text and '"SLEEP_ISSUE": SLEEP_ISSUES' in text
    ds = read_redsm5(folder, DSM5_LABELS, aliases=proposed).dataset
    p1 = next(p for p in ds.posts if p.post_id == "p1")
    assert "SLEEP_ISSUES" in p1.labels and not p1.unknown
