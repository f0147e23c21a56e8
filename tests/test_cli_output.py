"""What people and logs read (issue #30): `--quiet` gives only the result, output that is no
terminal is not cut at 80 columns, and `cea augment preview` says when training will not
augment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _typo_folder(tmp_path: Path) -> Path:
    """A ReDSM5 folder with a misspelt label, an unknown one and a bad status."""
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


def test_quiet_data_validate_prints_the_verdict_only(cli, tmp_path: Path) -> None:
    folder = _typo_folder(tmp_path)
    loud = cli("data", "validate", str(folder))
    assert "problems by kind" in loud.stdout and "label_aliases" in loud.stdout
    quiet = cli("data", "validate", str(folder), "--quiet")
    assert quiet.exit_code == loud.exit_code
    lines = quiet.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("OK ", "FAILED ")), quiet.stdout
    assert lines[0] == loud.stdout.strip().splitlines()[-1]  # the same verdict


def test_quiet_doctor_and_augment_list(cli) -> None:
    rows = json.loads(cli("doctor", "--json").stdout)["resources"]
    quiet = cli("doctor", "-q")
    assert quiet.exit_code == 0
    lines = quiet.stdout.strip().splitlines()
    present = sum(r["status"] == "present" for r in rows)
    assert lines[0] == f"{present} of {len(rows)} resources present"
    assert len(lines) == 1 + len(rows) - present  # one line per absent resource, no table
    assert "┏" not in quiet.stdout
    listed = json.loads(cli("augment", "list", "--json").stdout)["augmenters"]
    quiet = cli("augment", "list", "--quiet")
    assert quiet.exit_code == 0
    assert quiet.stdout.split() == [a["name"] for a in listed if a["available"]]


def test_output_to_no_terminal_is_wide(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from cea.cli._common import console, err_console

    assert not console.is_terminal  # captured by pytest, as in a log or CI
    assert console.width >= 200 and err_console.width >= 200
    listed = json.loads(cli("augment", "list", "--json").stdout)["augmenters"]
    table = cli("augment", "list").stdout
    for a in listed:  # every name and reason whole, none cut with "…"
        assert a["name"] in table
        assert (a["description"] if a["available"] else a["reason"]) in table
    monkeypatch.setenv("COLUMNS", "100")  # the user's choice still decides
    assert console.width == 100


def test_augment_preview_says_when_training_does_not_augment(cli) -> None:
    off = cli("augment", "preview", "--config", "tiny", "-n", "3", "--json")
    assert off.exit_code == 0, off.stderr
    off_json = json.loads(off.stdout)
    assert off_json["training_augments"] is False
    on = cli("augment", "preview", "--config", "tiny", "-n", "3", "--json",
             "--set", "augment.enabled=true")  # fmt: skip
    on_json = json.loads(on.stdout)
    assert on_json["training_augments"] is True
    # what is shown for a disabled policy is exactly what enabling it would do
    assert off_json["examples"] == on_json["examples"] and len(on_json["examples"]) == 3
    text = cli("augment", "preview", "--config", "tiny", "-n", "3").stdout
    assert "augment.enabled is false" in text and "does not augment" in text
    assert "NOT APPLIED" in text
    text = cli("augment", "preview", "--config", "tiny", "-n", "3", "augment.enabled=true").stdout
    assert "NOT APPLIED" not in text and "does not augment" not in text
    assert "3 augmented training examples" in text
