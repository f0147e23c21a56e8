"""One surface across commands: the same overrides, the data format from the path, pure JSON
where JSON is promised, --json on every command, redaction of secrets only, validation that
means it, and tracking stores that are safe to create together and never created by reading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cea.data.sample import write_sample


def _cea(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", *args], capture_output=True, text=True, cwd=cwd,
        timeout=600, check=False,
    )  # fmt: skip


def _generic_jsonl(path: Path) -> Path:
    """The packaged sample's posts as a generic JSONL file (text, labels, group)."""
    from cea.data.criteria import load_criteria
    from cea.data.readers import load_dataset

    folder = path.parent / "redsm5"
    write_sample(folder, seed=3, n_posts=60)
    ds = load_dataset("redsm5", str(folder), tuple(load_criteria(None))).dataset
    with path.open("w") as fh:
        for p in ds.posts:
            fh.write(
                json.dumps({"id": p.post_id, "text": p.text, "labels": sorted(p.labels)}) + "\n"
            )
    return path


def test_train_infers_the_generic_format_and_takes_set(
    cli, tiny_backbone: Path, tmp_path: Path
) -> None:
    data = _generic_jsonl(tmp_path / "notes.jsonl")
    assert cli("data", "validate", str(data)).exit_code == 0
    res = cli(
        "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--data", str(data),
        "--runs-dir", str(tmp_path / "runs"), "--run-name", "g", "--no-track", "--json",
        "--set", "train.epochs=1",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    saved = (tmp_path / "runs" / "g" / "config.yaml").read_text()
    assert "format: generic" in saved and "epochs: 1" in saved


def test_json_events_on_stdout_is_pure_json(tiny_backbone: Path, tmp_path: Path) -> None:
    res = _cea(
        "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--runs-dir",
        str(tmp_path), "--run-name", "e", "--no-track", "--json-events", "-", "train.epochs=1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines and all(isinstance(json.loads(ln), dict) for ln in lines)
    assert "macro-F1" in res.stderr  # the human summary went to stderr


def test_runs_card_has_json(cli, tracked_run: Path, tmp_path: Path) -> None:
    res = cli("runs", "card", str(tracked_run), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["card"].startswith("#")


def test_redaction_masks_secrets_only() -> None:
    from cea.tracking.redact import redact_mapping, redact_text

    out = redact_mapping(
        {"cea.version.tokenizers": "0.22.1", "max_tokens": 5, "db_password": "hunter22",
         "HF_TOKEN": "hf_abcdef"}
    )  # fmt: skip
    assert out["cea.version.tokenizers"] == "0.22.1" and out["max_tokens"] == 5
    assert out["db_password"] == "***" and out["HF_TOKEN"] == "***"  # noqa: S105 - the mask
    assert redact_text("tokenizers=0.22 api_key=abcd1234") == "tokenizers=0.22 api_key=***"


def test_tiny_run_tokenizer_has_a_real_max_length(tracked_run: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tracked_run), local_files_only=True)
    assert 0 < tok.model_max_length <= 512
    enc = tok("word " * 2000, truncation=True)  # plain transformers truncation works
    assert len(enc["input_ids"]) <= 512


def test_validation_fails_when_nothing_is_usable(cli, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    write_sample(folder, seed=1, n_posts=20)
    ann = folder / "redsm5_annotations.csv"
    import csv

    with ann.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["DSM5_symptom"] = "NOT_A_LABEL"  # every label misspelt: nothing usable
    with ann.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    res = cli("data", "validate", str(folder), "--limit", "3")
    assert res.exit_code == 5, res.stdout
    assert "no usable annotations" in res.stderr
    assert "problems by kind" in res.stdout and "more (--limit 0 lists all)" in res.stdout
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = cli("data", "validate", str(empty))
    assert res.exit_code == 5
    assert "OK" not in res.stdout


def test_unknown_audit_check_is_a_usage_error(cli) -> None:
    res = cli("audit", "TYPO")
    assert res.exit_code == 2
    assert "neither a check nor a folder" in res.stderr


def test_workers_starting_together_create_one_store(tmp_path: Path) -> None:
    """Four processes open a tracking store that does not exist yet, at the same moment."""
    code = (
        "import sys; from pathlib import Path; "
        "from cea.tracking.mlflow_tracker import MlflowTracker, default_target; "
        "t = default_target(Path(sys.argv[1]), None, None, 'race'); "
        "MlflowTracker.start(t, run_name='w', tags={}).end()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("race")
    assert exp is not None
    assert len(client.search_runs([exp.experiment_id])) == 4


def test_registry_through_tracking_uri_from_another_folder(
    cli, tracked_run: Path, tmp_path: Path, monkeypatch
) -> None:
    uri = json.loads((tracked_run / "tracking.json").read_text())["uri"]
    first = cli(
        "register-model",
        str(tracked_run),
        "--name",
        "elsewhere",
        "--alias",
        "a",
        "--tracking-uri",
        uri,
        "--json",
    )
    assert first.exit_code == 0, first.stderr
    again = cli(
        "register-model", str(tracked_run), "--name", "elsewhere", "--tracking-uri", uri, "--json"
    )
    assert again.exit_code == 0, again.stderr
    assert (
        json.loads(again.stdout)["reused"]
        and json.loads(again.stdout)["version"] == json.loads(first.stdout)["version"]
    )
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    inp = other / "in.jsonl"
    inp.write_text(json.dumps({"id": "1", "text": "I feel empty and sad."}) + "\n")
    res = cli(
        "predict",
        "models:/elsewhere@a",
        "-i",
        str(inp),
        "-o",
        str(other / "o.jsonl"),
        "--tracking-uri",
        uri,
        "-q",
    )
    assert res.exit_code == 0, res.stderr
    assert (other / "o.jsonl").is_file()
    assert not (other / "mlflow.db").exists()  # nothing was created in the folder it ran in
