"""`cea hpo`: studies on the local journal and on PostgreSQL, pruning, parallel workers,
recovery from a SIGKILLed worker, tracking, export, `cea hpo show`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LR_ONLY = "hpo.space={train.lr: {type: float, low: 1.0e-8, high: 1.0e-2, log: true}}"


def _base(data: Path, tiny: Path, runs: Path) -> list[str]:
    return [
        "--config", "tiny", "--set", f"data.path={data}", "--set", f"model.backbone={tiny}",
        "--set", "train.epochs=2", "--set", f"hpo.runs_dir={runs}", "--set", "hpo.n_startup_trials=2",
        "--set", "tracking.system_metrics=false",
    ]  # fmt: skip


def _cli_proc(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cea", "hpo", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _load(storage, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def _journal(path: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    return optuna.storages.JournalStorage(
        JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    )


def test_local_study_tracks_exports_and_shows(cli, hpo_data, tiny_backbone, tmp_path) -> None:
    runs = tmp_path / "hpo"
    res = cli(
        "hpo",
        *_base(hpo_data, tiny_backbone, runs),
        "--n-trials",
        "3",
        "--study-name",
        "s1",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["finished"] == 3 and out["states"] == {"COMPLETE": 3}
    assert sorted(t["number"] for t in out["trials"]) == [0, 1, 2]
    # best config: ready to train, with the best trial's parameters, no hpo section
    from cea.config import load_config

    best = load_config(out["best_config"])
    params = out["best"]["params"]
    assert best.train.lr == pytest.approx(params["train.lr"])
    assert best.augment.enabled == params["augment.enabled"]
    # MLflow: one parent run, one nested run per trial
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cea")
    runs_ = client.search_runs([exp.experiment_id])
    parents = [r for r in runs_ if r.data.tags.get("mlflow.runName") == "hpo-s1"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs_ if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert parent.data.metrics["hpo/best_value"] == pytest.approx(out["best"]["value"])
    study = _load(_journal(runs / "optuna-journal.log"), "s1")
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    # show: table, importances, plots
    show = cli("hpo", "show", "s1", "--storage", str(runs / "optuna-journal.log"),
               "--out", str(tmp_path / "plots"), "--json")  # fmt: skip
    assert show.exit_code == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["best"]["number"] == out["best"]["number"]
    for png in shown["plots"]:
        assert Path(png).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "optimization_history.png").is_file()
    assert shown["metric"] == "macro_f1"
    assert not (tmp_path / "plots" / "best_config.yaml").exists()  # show only reads the study
    assert cli("hpo", "show", "nope", "--storage", str(runs / "optuna-journal.log")).exit_code == 4


def test_median_pruner_prunes_a_hopeless_learning_rate(
    cli, hpo_data, tiny_backbone, tmp_path
) -> None:
    from cea.config import load_config
    from cea.hpo.storage import open_study, parse_storage
    from cea.hpo.study import build_pruner, build_sampler

    runs = tmp_path / "hpo"
    sets = ["hpo.metric=loss", "hpo.pruner_startup_trials=3", LR_ONLY]
    cfg = load_config("tiny", sets)
    spec = parse_storage(None, runs / "optuna-journal.log")
    study = open_study(
        spec,
        name="p",
        direction="minimize",
        sampler=build_sampler(13, cfg.hpo),
        pruner=build_pruner(cfg.hpo),
    )
    for lr in (1e-3, 1e-3, 1e-3, 1e-7):
        study.enqueue_trial({"train.lr": lr})
    args = [*_base(hpo_data, tiny_backbone, runs), "--set", "train.epochs=3"]
    for s in sets:
        args += ["--set", s]
    res = cli(
        "hpo", *args, "--study-name", "p", "--resume", "--n-trials", "4", "--no-track", "--json"
    )
    assert res.exit_code == 0, res.stderr
    trials = json.loads(res.stdout)["trials"]
    by_lr = {t["params"]["train.lr"]: t for t in trials}
    assert by_lr[1e-7]["state"] == "PRUNED"
    assert 1 <= by_lr[1e-7]["epochs_reported"] <= 3  # reported per epoch; pruned on a report
    assert [t["state"] for t in trials if t["params"]["train.lr"] == 1e-3] == ["COMPLETE"] * 3


def test_two_local_workers_share_the_journal(cli, hpo_data, tiny_backbone, tmp_path) -> None:
    runs = tmp_path / "hpo"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--n-trials", "4", "--workers", "2",
              "--study-name", "w2", "--no-track", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    numbers = [t["number"] for t in out["trials"]]
    assert len(numbers) == len(set(numbers))
    assert 4 <= out["finished"] <= 5  # at most workers - 1 overshoot
    assert "RUNNING" not in out["states"]
    pids = {t_attrs["pid"] for t_attrs in (
        s.user_attrs["cea_worker"] for s in _load(_journal(runs / "optuna-journal.log"), "w2").trials
    )}  # fmt: skip
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # trials ran in the workers
    ran = [tuple(sorted(t["params"].items())) for t in out["trials"] if not t["duplicate_of"]]
    assert len(ran) == len(set(ran))  # workers seeded apart: no two runs of the same parameters


def test_sqlite_refuses_parallel_workers(cli, tmp_path) -> None:
    res = cli(
        "hpo",
        "--config",
        "tiny",
        "--n-trials",
        "2",
        "--workers",
        "2",
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
    )
    assert res.exit_code == 2
    assert "sqlite" in res.stderr


def _kill_worker_mid_trial(
    storage_args: list[str], env: dict[str, str], load, args: list[str]
) -> None:
    """Start worker A, SIGKILL it while its trial is RUNNING, then let worker B finish."""
    from optuna.trial import TrialState

    a = _cli_proc([*args, *storage_args], env)
    deadline = time.time() + 120
    victim = None
    while time.time() < deadline and victim is None:
        time.sleep(0.3)
        try:
            study = load()
        except Exception:  # noqa: S112 - the study is not created yet
            continue
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if t.user_attrs.get("cea_worker", {}).get("pid") == a.pid:
                victim = t.number
    assert victim is not None, "worker A never had a RUNNING trial"
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    b = _cli_proc([*args, *storage_args], env)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err[-2000:]
    study = load()
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert study.trials[victim].state == TrialState.FAIL
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 3
    # the killed trial's parameters were tried again
    retried = [t for t in study.trials if t.user_attrs.get("cea_retry_of") == victim]
    assert len(retried) == 1


def test_sigkilled_worker_on_the_local_journal(hpo_data, tiny_backbone, tmp_path) -> None:
    runs = tmp_path / "hpo"
    args = [*_base(hpo_data, tiny_backbone, runs), "--set", "train.epochs=4", "--n-trials", "3",
            "--study-name", "k", "--no-track", "--quiet"]  # fmt: skip
    journal = runs / "optuna-journal.log"
    _kill_worker_mid_trial([], {}, lambda: _load(_journal(journal), "k"), args)


@pytest.mark.service
def test_two_workers_on_a_fresh_postgresql_database(
    hpo_data, tiny_backbone, tmp_path, fresh_pg_db
) -> None:
    import optuna

    args = [*_base(hpo_data, tiny_backbone, tmp_path / "hpo"), "--n-trials", "4", "--study-name", "pg",
            "--no-track", "--quiet", "--storage", fresh_pg_db]  # fmt: skip
    procs = [_cli_proc(args) for _ in range(2)]  # the same moment, a fresh database
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(
        study_name="pg", storage=fresh_pg_db.replace("postgresql://", "postgresql+psycopg://")
    )
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    finished = [
        t for t in study.trials if t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED")
    ]
    assert 4 <= len(finished) <= 5
    assert {t.user_attrs["cea_worker"]["pid"] for t in study.trials} <= {p.pid for p in procs}


@pytest.mark.service
def test_sigkilled_worker_on_postgresql(hpo_data, tiny_backbone, tmp_path, fresh_pg_db) -> None:
    import optuna

    url = fresh_pg_db.replace("postgresql://", "postgresql+psycopg://")
    args = [*_base(hpo_data, tiny_backbone, tmp_path / "hpo"), "--set", "train.epochs=4", "--n-trials", "3",
            "--study-name", "pgk", "--no-track", "--quiet"]  # fmt: skip
    _kill_worker_mid_trial(
        [],
        {"CEA_HPO_STORAGE": fresh_pg_db},
        lambda: optuna.load_study(study_name="pgk", storage=url),
        args,
    )


def test_storage_secrets_never_reach_outputs(cli, tmp_path) -> None:
    res = cli("hpo", "--config", "tiny", "--n-trials", "1", "--no-track",
              "--storage", "postgresql://u:hunter2@127.0.0.1:1/nodb", "--set", f"hpo.runs_dir={tmp_path}")  # fmt: skip
    assert res.exit_code != 0
    assert "hunter2" not in res.stderr + res.stdout
    from cea.hpo.storage import parse_storage

    spec = parse_storage("postgresql://u:hunter2@h/db", tmp_path / "j.log")
    assert "hunter2" not in spec.display and spec.url.startswith("postgresql+psycopg://u:hunter2@")


def test_parse_storage_kinds(tmp_path) -> None:
    from cea.errors import UsageError
    from cea.hpo.storage import parse_storage

    default = tmp_path / "j.log"
    assert parse_storage(None, default).kind == "journal"
    j = parse_storage(f"journal:{tmp_path}/study-store", default)
    assert j.kind == "journal" and j.url.endswith("study-store")
    assert parse_storage(f"journal:{j.url}", default) == j  # how local workers get it back
    assert parse_storage("sqlite:///x.db", default).parallel_safe is False
    assert parse_storage("postgres://u@h/db", default).url == "postgresql+psycopg://u@h/db"
    with pytest.raises(UsageError):
        parse_storage("mysql://u@h/db", default)


# ---- issue #16: the value is the kept model's, failures are loud, draws are distinct --------


def test_trial_value_is_the_kept_models_validation_metric(
    cli, hpo_data, tiny_backbone, tmp_path
) -> None:
    runs = tmp_path / "hpo"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--set", LR_ONLY, "--n-trials", "2",
              "--study-name", "v", "--no-track", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    for t in out["trials"]:
        if t["state"] != "COMPLETE":
            continue
        meta = json.loads((Path(t["run_dir"]) / "cea_meta.json").read_text())
        # the model kept (its checkpoint, its stored thresholds), not the best epoch at 0.5
        assert t["value"] == pytest.approx(meta["metrics"]["validation"]["macro_f1"])
    study = _load(_journal(runs / "optuna-journal.log"), "v")
    assert "kept checkpoint" in study.trials[0].user_attrs["value_source"]


def test_a_broken_dataset_fails_every_trial_and_exits_6_without_best_config(
    cli, tiny_backbone, tmp_path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "redsm5_posts.csv").write_text("post_id,text\np1,hello\n")
    (bad / "redsm5_annotations.csv").write_text("post_id,sentence\np1,x\n")  # columns missing
    runs = tmp_path / "hpo"
    res = cli("hpo", *_base(bad, tiny_backbone, runs), "--set", LR_ONLY, "--n-trials", "2",
              "--study-name", "b", "--no-track")  # fmt: skip
    assert res.exit_code == 6, res.stderr
    assert "no trial completed" in res.stderr and "missing_column" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (runs / "b" / "best_config.yaml").exists()


def test_a_space_key_that_names_no_field_is_refused_before_any_trial(
    cli, hpo_data, tiny_backbone, tmp_path
) -> None:
    runs = tmp_path / "hpo"
    space = "hpo.space={train.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3}}"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--set", space, "--n-trials", "2",
              "--study-name", "k", "--no-track")  # fmt: skip
    assert res.exit_code == 3, res.stderr
    assert "hpo.space.train.learning_rate" in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 3  # one line and a hint, no traceback
    assert not (runs / "optuna-journal.log").exists()  # nothing was started
    bad_value = "hpo.space={train.batch_size: {type: categorical, choices: [16, -1]}}"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--set", bad_value, "--n-trials", "1",
              "--study-name", "k2", "--no-track")  # fmt: skip
    assert res.exit_code == 3 and "-1" in res.stderr


def test_fewer_complete_trials_than_the_minimum_is_exit_1(
    cli, hpo_data, tiny_backbone, tmp_path
) -> None:
    runs = tmp_path / "hpo"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--set", LR_ONLY, "--n-trials", "1",
              "--set", "hpo.min_complete=2", "--study-name", "m", "--no-track")  # fmt: skip
    assert res.exit_code == 1, res.stderr
    assert "hpo.min_complete=2" in res.stderr


def test_a_resumed_study_draws_new_parameters(cli, hpo_data, tiny_backbone, tmp_path) -> None:
    runs = tmp_path / "hpo"
    args = [*_base(hpo_data, tiny_backbone, runs), "--set", LR_ONLY, "--set", "train.epochs=1",
            "--study-name", "r", "--no-track", "--json"]  # fmt: skip
    assert cli("hpo", *args, "--n-trials", "1").exit_code == 0
    res = cli("hpo", *args, "--n-trials", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    lrs = [t["params"]["train.lr"] for t in json.loads(res.stdout)["trials"]]
    assert len(lrs) == 2 and lrs[0] != lrs[1]


def test_sampler_seeds_differ_per_worker_and_study_state() -> None:
    from cea.hpo.study import sampler_seed

    seeds = {sampler_seed(13, w, n) for w in range(4) for n in range(50)}
    assert len(seeds) == 200
    assert sampler_seed(13, 1, 0) == sampler_seed(13, 1, 0)  # reproducible
