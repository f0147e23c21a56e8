"""HPO workers at scale (issue: eight workers on one study): a trial declared stale while its
worker lives is discarded with one line and retried, no trial is lost, the exit says whether
the asked-for trials finished, the journal survives torn writes, a study keeps its metric,
dependent parameters are searched only when they matter, and a 4-worker PostgreSQL study runs
without an error or a warning.

The worker loop is driven with real Optuna storages (journal file, PostgreSQL) and plain
objectives; the CLI tests run real worker processes on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_hpo import _base, _journal

optuna = pytest.importorskip("optuna")


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        self.seen.append((kind, payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [p for k, p in self.seen if k == kind]


def _study(tmp_path: Path, name: str = "s") -> Any:
    from cea.hpo.storage import open_journal

    storage = open_journal(tmp_path / "j.log", [])
    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def _declare_stale(study: Any, trial: Any) -> None:
    """What another worker does to a trial whose heartbeat is too old: FAIL it, queue a retry."""
    from optuna.trial import TrialState

    from cea.hpo.worker import retry_trial

    assert study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    retry_trial(study, study._storage.get_trial(trial._trial_id))


def test_a_trial_declared_stale_mid_training_is_discarded_and_its_retry_runs(tmp_path) -> None:
    from cea.hpo.study import PruningSink
    from cea.hpo.worker import WorkerLimits, run_worker

    study = _study(tmp_path)
    calls: list[tuple[int, float]] = []

    def objective(trial: Any, ledger: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        calls.append((trial.number, x))
        if trial.number == 0:  # another worker declares it stale while it trains ...
            _declare_stale(study, trial)
            # ... and the next epoch report is refused
            PruningSink(trial, "macro_f1", ledger).event("epoch", {"epoch": 1, "val_macro_f1": x})
        return x

    events = Events()
    why = run_worker(study, objective, WorkerLimits(3, None, 5), events, poll_s=0.01)
    assert why == "done"
    states = [t.state.name for t in study.trials]
    assert states[0] == "FAIL" and states.count("COMPLETE") == 3 and "WAITING" not in states
    retry = next(t for t in study.trials if t.user_attrs.get("cea_retry_of") == 0)
    assert retry.params == study.trials[0].params  # the retry ran the same parameters
    assert events.of("stale") == [{"number": 0, "retry": retry.number}]
    # the stale trial's result never reached the study
    assert study.trials[0].value is None


def test_a_trial_declared_stale_after_its_last_report_is_discarded_at_tell(tmp_path) -> None:
    from cea.hpo.worker import WorkerLimits, run_worker

    study = _study(tmp_path)

    def objective(trial: Any, ledger: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 0:
            _declare_stale(study, trial)  # no report after this: the tell finds out
        return x

    events = Events()
    assert run_worker(study, objective, WorkerLimits(2, None, 5), events, poll_s=0.01) == "done"
    assert [p["number"] for p in events.of("stale")] == [0]
    assert study.trials[0].state.name == "FAIL" and study.trials[0].value is None
    # timing of cea's bookkeeping is stored with every told trial
    timing = study.trials[-1].system_attrs["cea_timing"]
    assert timing["storage_calls"] >= 2 and 0 <= timing["bookkeeping_share"] <= 1


def test_a_retry_of_a_retry_stops_after_max_retry(tmp_path) -> None:
    from cea.hpo.worker import MAX_RETRY, retry_trial

    study = _study(tmp_path)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    frozen = study._storage.get_trial(trial._trial_id)
    for _ in range(MAX_RETRY + 2):
        retry_trial(study, frozen)
        frozen = study.trials[-1]
    history = [t.system_attrs.get("retry_history") for t in study.trials]
    assert len(study.trials) == 1 + MAX_RETRY  # the fourth retry is not queued
    assert history[-1] == list(range(MAX_RETRY))


def test_own_failures_stop_the_worker_and_are_not_counted_as_stale(tmp_path) -> None:
    from cea.hpo.worker import WorkerLimits, count, run_worker

    study = _study(tmp_path)

    def objective(trial: Any, ledger: Any) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("exit_code", 5)  # what cea records for a trial's own error
        raise ValueError("broken data")

    why = run_worker(study, objective, WorkerLimits(10, None, 2), Events(), poll_s=0.01)
    assert why == "failures"
    c = count(study)
    assert (c.failed, c.stale, c.finished) == (2, 0, 0)


def test_the_trial_of_a_dead_worker_is_retried_not_doubled(tmp_path) -> None:
    """The only wanted trial is RUNNING under a worker that has died: the next worker fails
    it and runs its retry (same parameters) instead of a new trial."""
    import psutil

    from cea.hpo.worker import WORKER_ATTR, WorkerLimits, run_worker

    study = _study(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a worker that existed, then died
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr(
        WORKER_ATTR, {"host": os.uname().nodename, "pid": dead.pid, "started": started}
    )
    ran: list[int] = []

    def objective(trial: Any, ledger: Any) -> float:
        ran.append(trial.number)
        return trial.suggest_float("x", 0.0, 1.0)

    assert run_worker(study, objective, WorkerLimits(1, None, 5), Events(), poll_s=0.01) == "done"
    assert ran == [1] and study.trials[1].user_attrs["cea_retry_of"] == 0
    assert study.trials[1].params == study.trials[0].params


# ---- the journal survives torn writes ---------------------------------------------------------


def test_a_torn_journal_tail_is_cut_off_at_the_next_write(tmp_path) -> None:
    study = _study(tmp_path)
    study.enqueue_trial({"x": 0.5})
    journal = tmp_path / "j.log"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":4,')  # a full disk stopped this write part-way
    from cea.hpo.storage import open_journal

    notes: list[str] = []
    reopened = optuna.load_study(study_name="s", storage=open_journal(journal, notes))
    assert journal.read_bytes().endswith(b'{"op_code":4,')  # reading writes nothing
    reopened.enqueue_trial({"x": 0.25})  # the next write cuts the torn tail first
    assert len(notes) == 1 and "torn line (13 bytes" in notes[0]
    data = journal.read_bytes()
    assert data.startswith(whole) and data.endswith(b"\n")
    assert all(json.loads(line) for line in data.splitlines())
    again = optuna.load_study(study_name="s", storage=_journal(journal))
    assert [t.state.name for t in again.trials] == ["WAITING", "WAITING"]


def test_a_damaged_journal_line_is_a_data_error_naming_the_line(tmp_path) -> None:
    from cea.errors import DataError
    from cea.hpo.storage import open_journal

    study = _study(tmp_path)
    study.enqueue_trial({"x": 0.5})
    journal = tmp_path / "j.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines.insert(1, b'{"op_code":4,\n')
    journal.write_bytes(b"".join(lines))
    with pytest.raises(DataError, match=r"damaged at line 2"):
        open_journal(journal, [])


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return res.returncode == 0


def test_a_full_disk_leaves_the_journal_in_whole_lines(tmp_path) -> None:
    from cea.errors import RuntimeFailure
    from cea.hpo.storage import open_journal

    disk = tmp_path / "disk"
    if not _tmpfs(disk, "64k"):
        pytest.skip("needs root and tmpfs to fill a disk")
    try:
        study = optuna.create_study(
            study_name="s", storage=open_journal(disk / "j.log", []), direction="maximize"
        )
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # the disk fills up
        try:
            for _ in range(64):
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        before = (disk / "j.log").read_bytes()
        with pytest.raises(RuntimeFailure, match=r"j\.log failed .*as it was before"):
            for i in range(200):
                study.set_user_attr(f"k{i}", "v" * 200)
        after = (disk / "j.log").read_bytes()
        assert after.startswith(before) and after.endswith(b"\n")
        assert all(json.loads(line) for line in after.splitlines())
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---- a study keeps its metric; dependent parameters ---------------------------------------------


def test_continuing_a_study_under_another_metric_is_refused(cli, tmp_path) -> None:
    from cea.hpo.storage import open_journal

    runs = tmp_path / "hpo"
    runs.mkdir()
    study = optuna.create_study(
        study_name="m", storage=open_journal(runs / "optuna-journal.log", []), direction="maximize"
    )
    study.set_user_attr("cea_metric", "macro_f1")
    res = cli("hpo", "--config", "tiny", "--set", f"hpo.runs_dir={runs}", "--set",
              "hpo.metric=loss", "--n-trials", "1", "--study-name", "m", "--resume", "--no-track")  # fmt: skip
    assert res.exit_code == 3, res.stderr
    assert "macro_f1" in res.stderr and "hpo.metric=loss" in res.stderr
    assert not (runs / "m").exists()  # no trial ran, no best config replaced


def test_augmentation_knobs_are_searched_only_with_augmentation_on(tmp_path) -> None:
    from cea.config import CeaConfig, ParamSpec
    from cea.hpo.study import suggest

    space = {
        "augment.prob": ParamSpec(type="float", low=0.05, high=0.5),
        "augment.enabled": ParamSpec(type="categorical", choices=[False, True]),
        "train.lr": ParamSpec(type="float", low=1e-5, high=1e-3, log=True),
    }
    study = _study(tmp_path)
    seen: dict[bool, set[frozenset[str]]] = {False: set(), True: set()}
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial, space, CeaConfig())
        seen[params["augment.enabled"]].add(frozenset(params))
        study.tell(trial, 0.0)
    assert seen[False] == {frozenset({"augment.enabled", "train.lr"})}
    assert seen[True] == {frozenset({"augment.enabled", "augment.prob", "train.lr"})}
    # no augment.enabled in the space: the base config decides
    base_off = CeaConfig()
    assert base_off.augment.enabled is False
    trial = study.ask()
    assert set(suggest(trial, {"augment.prob": space["augment.prob"]}, base_off)) == set()
    # an explicit `when`
    spec = ParamSpec(type="int", low=1, high=4, when={"model.chunking.enabled": True})
    assert "model.chunking.max_chunks" in suggest(
        trial, {"model.chunking.max_chunks": spec}, CeaConfig()
    )


# ---- exits that say what happened ---------------------------------------------------------------


def test_a_study_that_is_short_exits_1_with_the_counts(
    cli, hpo_data, tiny_backbone, tmp_path
) -> None:
    runs = tmp_path / "hpo"
    res = cli("hpo", *_base(hpo_data, tiny_backbone, runs), "--set", "train.epochs=1",
              "--n-trials", "4", "--timeout", "1", "--study-name", "short", "--no-track", "--json")  # fmt: skip
    assert res.exit_code == 1, res.stderr
    out = json.loads(res.stdout)
    done = out["counts"]["finished"]  # the worker stops starting trials after 1 s
    assert 1 <= done < 4 and out["n_trials"] == 4
    said = " ".join(res.stderr.split())  # (a narrow terminal may wrap the line)
    assert f"the study is short: {done} of 4 trials finished" in said


@pytest.mark.service
def test_four_workers_on_postgresql_finish_every_trial_without_an_error(
    hpo_data, tiny_backbone, tmp_path, fresh_pg_db
) -> None:
    runs = tmp_path / "hpo"
    cmd = [sys.executable, "-m", "cea", "hpo", *_base(hpo_data, tiny_backbone, runs),
           "--set", "train.epochs=1", "--set", "hpo.heartbeat_interval=2",
           "--set", "hpo.grace_period=60", "--n-trials", "8", "--workers", "4",
           "--storage", fresh_pg_db, "--study-name", "pg4", "--no-track", "--json"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Warning" not in res.stderr and "internal error" not in res.stderr
    assert "[W " not in res.stderr and "[I " not in res.stderr  # optuna's own log lines
    out = json.loads(res.stdout)
    assert out["counts"]["finished"] == 8
    assert out["counts"]["failed"] == 0 and out["counts"]["waiting"] == 0
    assert out["counts"]["running"] == 0
    assert out["worker_exit_codes"] == [0, 0, 0, 0]
    timings = [t["timing"] for t in out["trials"] if t["timing"]]
    assert len(timings) == len(out["trials"])
    assert all(t["heartbeats"] >= 1 and t["heartbeat_errors"] == 0 for t in timings)


def test_a_trial_that_fails_before_training_still_counts_as_its_own_failure(tmp_path) -> None:
    """An error the objective raises without recording it (a config error, say) is the trial's
    own failure: it counts towards max_failed, so the worker stops instead of looping."""
    from cea.errors import ConfigError
    from cea.hpo.worker import WorkerLimits, count, run_worker

    study = _study(tmp_path)

    def objective(trial: Any, ledger: Any) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        raise ConfigError("train.lr: bad value")

    assert run_worker(study, objective, WorkerLimits(5, None, 3), Events(), poll_s=0.01) == (
        "failures"
    )
    assert count(study).failed == 3
    assert {t.user_attrs["exit_code"] for t in study.trials} == {3}
    assert study.trials[0].user_attrs["error"] == "train.lr: bad value"
