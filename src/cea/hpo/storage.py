"""Optuna storages (DESIGN §10): a journal file by default (safe for parallel workers on one
host), PostgreSQL for workers on many hosts, sqlite for a single worker.

Workers that start at the same moment on a fresh RDB race on schema and study creation; cea
serializes creation with a PostgreSQL advisory lock and retries on the errors the race leaves.
Heartbeats (RDB only in Optuna 5) fail the trials of dead workers on other hosts; on one host
cea recovers them itself (see `cea.hpo.worker.recover_dead_trials`). cea records the beats
itself (`cea.hpo.worker.Heartbeat`) and re-queues stale trials with its own callback.

The journal file is written in whole lines: a write that fails part-way (a full disk) is cut
back to where it started, and a torn last line left by a crash is cut off, with a note, before
the next write, so the study stays readable.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.errors import DataError, RuntimeFailure, UsageError
from cea.tracking.redact import redact_text

_LOCK_KEY = 0x63656168706F  # "ceahpo": the advisory lock that serializes study creation


@dataclass(frozen=True)
class StorageSpec:
    kind: str  # "journal" | "postgresql" | "sqlite"
    url: str  # the URL Optuna gets (secrets included: never printed, logged or stored)
    display: str  # redacted, for people

    @property
    def parallel_safe(self) -> bool:
        return self.kind != "sqlite"


def parse_storage(url: str | None, default_journal: Path) -> StorageSpec:
    if url is None or url.startswith("journal:") or url.endswith((".log", ".journal")):
        path = Path(
            url[len("journal:") :] if url and url.startswith("journal:") else url or default_journal
        )
        return StorageSpec("journal", str(path.resolve()), str(path))
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        rest = url.split("://", 1)[1]
        full = f"postgresql+psycopg://{rest}"
        return StorageSpec("postgresql", full, redact_text(url))
    if url.startswith("sqlite:///"):
        return StorageSpec("sqlite", url, url)
    raise UsageError(
        f"unsupported storage {redact_text(url)!r}",
        hint="use a journal file (default), postgresql://user@host/db, or sqlite:///file.db",
    )


def open_storage(
    spec: StorageSpec,
    *,
    heartbeat_interval: int,
    grace_period: int,
    notes: list[str] | None = None,
) -> Any:
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

    from cea.hpo.worker import retry_trial

    if spec.kind == "journal":
        return open_journal(Path(spec.url), notes if notes is not None else [])
    kwargs: dict[str, Any] = {}
    if spec.kind == "postgresql":
        kwargs = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": retry_trial,
            "engine_kwargs": {"pool_pre_ping": True},
        }

    def make() -> Any:
        # optuna flags heartbeat_interval as experimental: a note for library authors that
        # cea's users cannot act on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(spec.url, **kwargs)

    return _retry(make, "opening the storage")


def _journal_backend_class() -> Any:
    from optuna.storages.journal import JournalFileBackend

    class WholeLineJournal(JournalFileBackend):
        """Optuna's journal file, appended in whole lines: a failed write is cut back, a torn
        tail (a crash mid-write) is cut off before the next write."""

        def __init__(self, path: str, lock_obj: Any, notes: list[str]) -> None:
            super().__init__(path, lock_obj=lock_obj)
            self._notes = notes

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            from optuna.storages.journal._file import get_lock_file

            data = (
                "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            ).encode()
            try:
                with get_lock_file(self._lock), Path(self._file_path).open("r+b", 0) as f:
                    start = _cut_torn_tail(f, self._file_path, self._notes)
                    try:
                        f.seek(start)
                        view = memoryview(data)
                        while view:  # unbuffered: a short write is seen, not left behind
                            view = view[f.write(view) :]
                        os.fsync(f.fileno())
                    except OSError:
                        f.truncate(start)  # whole lines or nothing
                        raise
            except OSError as exc:
                raise RuntimeFailure(
                    f"HPO storage: writing the journal {self._file_path} failed "
                    f"({exc.strerror or exc}); the study is as it was before this write",
                    hint="free disk space, then continue with --resume",
                ) from exc

    return WholeLineJournal


def _cut_torn_tail(f: Any, path: str, notes: list[str]) -> int:
    """The size of the file up to its last whole line; a torn tail is truncated (noted)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return int(size)
    back = min(size, 1 << 20)
    f.seek(size - back)
    tail = f.read(back)
    cut = size - back + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    f.truncate(cut)
    notes.append(
        f"the journal {path} ended in a torn line ({size - cut} bytes, left by an interrupted "
        "write); it was cut off, the study is as it was before that write"
    )
    return int(cut)


def open_journal(path: Path, notes: list[str]) -> Any:
    """The journal storage at `path`; a damaged line inside it is a
    data error naming the line (the trials after it cannot be read back safely: trial ids are
    given in journal order)."""
    import optuna
    from optuna.storages.journal import JournalFileOpenLock

    # (a torn last line is left alone here: optuna's reader skips it, and the next write cuts
    # it under the journal's lock; so reading never writes)
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = _journal_backend_class()(str(path), JournalFileOpenLock(str(path)), notes)
    try:
        return optuna.storages.JournalStorage(backend)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(
            f"HPO storage: the journal {path} is damaged at line {_bad_line(path)} "
            f"({exc.__class__.__name__})",
            hint="the lines before it are intact: copy them to a new journal to keep those "
            "trials, or start a new study",
        ) from exc


def _bad_line(path: Path) -> int:
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                return n
            if not isinstance(record, dict) or "op_code" not in record:
                return n
    return 0


_RACES = ("already exists", "duplicate", "deadlock", "unique constraint", "could not serialize")


def _retry(action: Any, what: str, attempts: int = 8) -> Any:
    """Concurrent first use of an RDB: CREATE TABLE / INSERT races surface as integrity or
    programming errors in the loser; the winner's work is then visible, so try again. Other
    errors (an unreachable server, a wrong password) fail at once."""
    from sqlalchemy.exc import SQLAlchemyError

    delay = 0.2
    for i in range(attempts):
        try:
            return action()
        except SQLAlchemyError as exc:
            text = str(exc).lower()
            if i == attempts - 1 or not any(r in text for r in _RACES):
                first = redact_text(str(exc).splitlines()[0])[:160]
                raise RuntimeFailure(
                    f"HPO storage: {what} failed ({exc.__class__.__name__}: {first})",
                    hint="check the storage URL and that the database server is running",
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")  # pragma: no cover


def open_study(
    spec: StorageSpec,
    *,
    name: str,
    direction: str,
    sampler: Any,
    pruner: Any,
    heartbeat_interval: int = 30,
    grace_period: int = 90,
    create: bool = True,
    notes: list[str] | None = None,
) -> Any:
    """Open the storage and create the study (idempotent: the first caller creates it, every
    other one loads it). On PostgreSQL both happen under an advisory lock, so workers started
    at the same moment on a fresh database do not race on the schema."""
    import optuna

    def work() -> Any:
        storage = open_storage(
            spec, heartbeat_interval=heartbeat_interval, grace_period=grace_period, notes=notes
        )
        if not create:
            return _retry(
                lambda: optuna.load_study(
                    study_name=name, storage=storage, sampler=sampler, pruner=pruner
                ),
                "loading the study",
            )
        return _retry(
            lambda: optuna.create_study(
                storage=storage,
                study_name=name,
                direction=direction,  # type: ignore[arg-type]
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            ),
            "creating the study",
        )

    if spec.kind != "postgresql":
        return work()
    import sqlalchemy

    engine = sqlalchemy.create_engine(spec.url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            try:
                return work()
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    finally:
        engine.dispose()
