"""One HPO worker: cea's own ask-and-tell loop over a shared study.

Why not `study.optimize`: a trial that another worker declared stale (its heartbeat came too
late) is FAIL in the storage while its worker is still training. Optuna's loop then raises
`UpdateFinishedTrialError` from `trial.report` and `ValueError("Cannot tell a FAIL trial")`
from its own `tell`, and the worker dies with a trial's result in hand. Here a worker that
finds its trial already finished says so in one line, discards the result and takes the next
trial; retries of stale or dead trials are run; and the worker leaves only when the study has
`n_trials` finished trials, when no trial is left that could still finish, or when it is told
to stop.

Liveness:
- PostgreSQL (RDB): cea's heartbeat thread records a beat every `heartbeat_interval` seconds
  and never dies on a database hiccup (it retries at the next beat); a trial whose last beat
  is older than `grace_period` is failed by whichever worker looks next, and re-queued once
  per failure (up to `MAX_RETRY` times) with its parameters.
- Every storage: a RUNNING trial whose worker process on this host is gone (pid and start
  time) is failed and re-queued at once — the journal file store has no heartbeats.

Bookkeeping (storage calls, heartbeats, pruning checks) is timed per trial (`Ledger`) and
stored with the trial as `cea_timing`, so `benchmarks/hpo_scale.sh` can put a share of trial
time on it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

from cea.errors import Interrupted
from cea.progress import ProgressSink

WORKER_ATTR = "cea_worker"
RETRY_OF_ATTR = "cea_retry_of"
DUPLICATE_ATTR = "cea_duplicate_of"
TIMING_ATTR = "cea_timing"
MAX_RETRY = 3  # a trial that went stale (or whose worker died) this often is not retried again
MAX_DUPLICATE_STREAK = 20
IDLE_POLL_S = 2.0  # a worker with nothing to start looks again after this long


class TrialWentStale(Exception):
    """The storage refused an update of this trial: another worker has finished it (declared
    it stale, or recovered it as dead). Raised out of the objective; never reaches the user."""


class StopSearch(BaseException):
    """Raised out of the objective when the search was interrupted (a signal): the trial is
    marked failed and the worker raises `Interrupted`."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(reason)
        self.number = number
        self.reason = reason


@dataclass
class Ledger:
    """cea's own bookkeeping of one trial: storage calls and their time, heartbeats, pruning
    checks. Thread-safe (the heartbeat thread adds to it)."""

    storage_calls: int = 0
    storage_s: float = 0.0
    heartbeats: int = 0
    heartbeat_s: float = 0.0
    heartbeat_errors: int = 0
    heartbeat_max_gap_s: float = 0.0
    pruning_checks: int = 0
    train_s: float = 0.0  # the training inside the trial (set by the objective)
    by_kind: dict[str, float] = field(default_factory=dict)  # seconds per kind of call
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def call(self, kind: str, pruning: bool = False) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.storage_calls += 1
                self.storage_s += dt
                self.pruning_checks += int(pruning)
                self.by_kind[kind] = self.by_kind.get(kind, 0.0) + dt

    def beat(self, seconds: float, gap: float, ok: bool) -> None:
        with self._lock:
            self.heartbeats += 1
            self.heartbeat_s += seconds
            self.heartbeat_errors += int(not ok)
            self.heartbeat_max_gap_s = max(self.heartbeat_max_gap_s, gap)

    def to_dict(self, trial_s: float) -> dict[str, Any]:
        with self._lock:
            own = self.storage_s + self.heartbeat_s
            return {
                "trial_s": round(trial_s, 3),
                "train_s": round(self.train_s, 3),
                "storage_calls": self.storage_calls,
                "storage_s": round(self.storage_s, 4),
                "heartbeats": self.heartbeats,
                "heartbeat_s": round(self.heartbeat_s, 4),
                "heartbeat_errors": self.heartbeat_errors,
                "heartbeat_max_gap_s": round(self.heartbeat_max_gap_s, 2),
                "pruning_checks": self.pruning_checks,
                "seconds_by_kind": {k: round(v, 4) for k, v in self.by_kind.items()},
                "bookkeeping_s": round(own, 4),
                # storage calls, heartbeats, pruning checks over trial time; the heartbeat's
                # share runs in its own thread beside the training (it delays nothing)
                "bookkeeping_share": round(own / trial_s, 5) if trial_s > 0 else None,
                "blocking_share": round(self.storage_s / trial_s, 5) if trial_s > 0 else None,
            }


def heartbeat_interval_of(storage: Any) -> int | None:
    """The RDB storage's heartbeat interval (None: no heartbeats, e.g. the journal file)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if not is_heartbeat_enabled(storage):
        return None
    return int(storage.get_heartbeat_interval())


class Heartbeat:
    """A daemon thread that records the trial's heartbeat every `interval` seconds, beside the
    training. A failed beat (a dropped connection, a busy database) is counted and retried at
    the next tick, never the end of the thread: one hiccup must not get a live trial failed."""

    def __init__(self, storage: Any, trial_id: int, interval: float, ledger: Ledger) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.ledger = ledger
        self._stop = threading.Event()
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="cea-heartbeat", daemon=True)

    def _beat(self) -> None:
        now = time.monotonic()
        gap, self._last = now - self._last, now
        t0 = time.perf_counter()
        ok = True
        try:
            self.storage.record_heartbeat(self.trial_id)
        except Exception:
            ok = False
        self.ledger.beat(time.perf_counter() - t0, gap, ok)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def __enter__(self) -> Heartbeat:
        self._beat()  # the first beat before the trial starts: its row exists from now on
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def retry_trial(study: Any, frozen: Any) -> None:
    """Queue a failed-stale or dead trial again with its parameters (WAITING, picked first by
    the next `ask`), unless it was retried `MAX_RETRY` times already.
    Used as the RDB storage's `heartbeat_stale_trial_callback` and by the dead-worker check.
    (Optuna's RetryHeartbeatStaleTrialCallback is experimental and copies every user attribute
    of the stale trial, its worker's identity included.)"""
    import optuna

    history = [*frozen.system_attrs.get("retry_history", []), frozen.number]
    if len(history) > MAX_RETRY:
        return
    study.add_trial(
        optuna.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs={RETRY_OF_ATTR: frozen.number},
            system_attrs={"failed_trial": history[0], "retry_history": history},
        )
    )


def _pid_alive(pid: int, started: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return started is None or abs(proc.create_time() - started) < 1.0  # not a reused pid
    except psutil.Error:
        return False


def worker_identity() -> dict[str, Any]:
    import psutil

    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": psutil.Process(pid).create_time()}


def recover_dead_trials(study: Any, *, requeue: bool = True) -> list[int]:
    """Trials RUNNING on this host whose worker process is gone: FAIL them and (optionally)
    queue them again. Optuna's journal storage has no heartbeats; on PostgreSQL heartbeats
    also catch workers of other hosts, later (after the grace period)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get(WORKER_ATTR)
        if not w or w.get("host") != host or _pid_alive(int(w["pid"]), w.get("started")):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker recovered it first
            continue
        recovered.append(t.number)
        if requeue:
            retry_trial(study, t)
    return recovered


def fail_stale_trials(study: Any) -> None:
    """RDB heartbeats: fail the RUNNING trials whose last beat is older than the grace period
    (their retry is queued by the storage's callback). Optuna marks the function experimental;
    the warning is for library authors, not for cea's users."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    if heartbeat_interval_of(study._storage) is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@dataclass(frozen=True)
class Counts:
    finished: int  # complete or pruned, duplicates not counted: what --n-trials counts
    running: int
    waiting: int
    failed: int  # failed by their own error (not stale)
    stale: int  # failed by another worker: stale heartbeat or dead worker


def is_own_failure(t: Any) -> bool:
    """A FAIL trial that failed by its own error (cea records the exit code); the others were
    failed by another worker (stale heartbeat, dead process) or by an interruption."""
    return "exit_code" in t.user_attrs


def is_stale(t: Any) -> bool:
    """A FAIL trial that another worker failed (stale heartbeat, dead process): neither its
    own error nor an interruption."""
    return bool(
        t.state.name == "FAIL" and not is_own_failure(t) and "interrupted" not in t.user_attrs
    )


def count(study: Any) -> Counts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    fin = (TrialState.COMPLETE, TrialState.PRUNED)
    return Counts(
        finished=sum(1 for t in trials if t.state in fin and DUPLICATE_ATTR not in t.user_attrs),
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
        failed=sum(1 for t in trials if t.state == TrialState.FAIL and is_own_failure(t)),
        stale=sum(1 for t in trials if is_stale(t)),
    )


def retry_of(study: Any, number: int) -> int | None:
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(RETRY_OF_ATTR) == number:
            return int(t.number)
    return None


@dataclass
class WorkerLimits:
    n_trials: int
    timeout: float | None
    max_failed: int


Objective = Callable[[Any, Ledger], float]


def run_worker(
    study: Any,
    objective: Objective,
    limits: WorkerLimits,
    progress: ProgressSink,
    *,
    poll_s: float = IDLE_POLL_S,
) -> str:
    """Run trials until the study is done; why this worker stopped: "done" (n_trials
    finished), "failures" (max_failed own failures), "exhausted" (only duplicate parameters
    for a while), "timeout". A signal raises `Interrupted` after the trial is marked failed."""
    from optuna.trial import TrialState

    deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
    interval = heartbeat_interval_of(study._storage)
    streak = 0
    while True:
        ledger = Ledger()  # this trial's bookkeeping, from the checks before it on
        t0 = time.perf_counter()
        with ledger.call("checks"):
            recover_dead_trials(study)
            fail_stale_trials(study)
            c = count(study)
        if c.finished >= limits.n_trials:
            return "done"
        if c.failed >= limits.max_failed:
            return "failures"
        if streak >= MAX_DUPLICATE_STREAK:
            return "exhausted"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        if c.finished + c.running >= limits.n_trials and c.waiting == 0:
            # every trial still wanted is running: wait, since one of them may go stale (or
            # its worker die) and be queued again
            time.sleep(poll_s)
            continue
        with ledger.call("ask"), warnings.catch_warnings():
            # "heartbeat ... supposed to be used with Study.optimize": this loop is cea's own
            # and records the beats itself (Heartbeat below)
            warnings.simplefilter("ignore", UserWarning)
            trial = study.ask()
        beat = (
            Heartbeat(study._storage, trial._trial_id, interval, ledger)
            if interval is not None
            else nullcontext()
        )
        value: float | None = None
        state = TrialState.COMPLETE
        with beat:
            try:
                value = objective(trial, ledger)
            except StopSearch as stop:
                with suppress(Exception):  # already finished by another worker
                    trial.set_user_attr("interrupted", stop.reason)
                with ledger.call("tell"):
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                done = count(study).finished
                raise Interrupted(
                    f"{stop.reason}: the search stopped during trial {stop.number} (marked "
                    f"failed); {done} of {limits.n_trials} trials finished",
                    hint="continue with the same command and --resume",
                ) from None
            except TrialWentStale:
                _report_stale(study, trial.number, progress)
                continue
            except Exception as exc:
                import optuna

                pruned = isinstance(exc, optuna.TrialPruned)
                state = TrialState.PRUNED if pruned else TrialState.FAIL
                if not pruned:  # its own failure, whatever raised it: counts to max_failed
                    _mark_failed(trial, exc)
            # the figures go with the trial before it is told (a finished trial takes no
            # attribute); the timing write and the tell are counted as calls, not timed
            timing = ledger.to_dict(time.perf_counter() - t0)
            timing["storage_calls"] += 2
            try:
                with ledger.call("timing"):
                    study._storage.set_trial_system_attr(trial._trial_id, TIMING_ATTR, timing)
            except Exception:  # noqa: S110 - finished by another worker: found out below
                pass
            with ledger.call("tell"):
                frozen = study.tell(
                    trial,
                    value if state == TrialState.COMPLETE else None,
                    state=state,
                    skip_if_finished=True,
                )
        if frozen.state != state:  # finished by another worker while we were training
            _report_stale(study, trial.number, progress)
            continue
        streak = streak + 1 if DUPLICATE_ATTR in frozen.user_attrs else 0


def _mark_failed(trial: Any, exc: Exception) -> None:
    from cea.errors import CeaError

    with suppress(Exception):  # finished by another worker meanwhile: the tell finds out
        if "error" not in trial.user_attrs:
            text = exc.message if isinstance(exc, CeaError) else exc.__class__.__name__
            trial.set_user_attr("error", str(text)[:500])
        trial.set_user_attr("exit_code", int(getattr(exc, "exit_code", 6)))


def _report_stale(study: Any, number: int, progress: ProgressSink) -> None:
    retry = retry_of(study, number)
    progress.event("stale", {"number": number, "retry": retry})
