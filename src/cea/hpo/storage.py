"""Optuna storages (DESIGN §10): a journal file by default (safe for parallel workers on one
host), PostgreSQL for workers on many hosts, sqlite for a single worker.

Workers that start at the same moment on a fresh RDB race on schema and study creation; cea
serializes creation with a PostgreSQL advisory lock and retries on the errors the race leaves.
Heartbeats (RDB only in Optuna 5) fail the trials of dead workers on other hosts; on one host
cea recovers them itself (see `cea.hpo.study.recover_dead_trials`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.errors import UsageError
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


def open_storage(spec: StorageSpec, *, heartbeat_interval: int, grace_period: int) -> Any:
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if spec.kind == "journal":
        Path(spec.url).parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(spec.url, lock_obj=JournalFileOpenLock(spec.url))
        return optuna.storages.JournalStorage(backend)
    kwargs: dict[str, Any] = {}
    if spec.kind == "postgresql":
        kwargs = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "failed_trial_callback": RetryFailedTrialCallback(max_retry=3),
            "engine_kwargs": {"pool_pre_ping": True},
        }
    return _retry(lambda: RDBStorage(spec.url, **kwargs), "opening the storage")


_RACES = ("already exists", "duplicate", "deadlock", "unique constraint", "could not serialize")


def _retry(action: Any, what: str, attempts: int = 8) -> Any:
    """Concurrent first use of an RDB: CREATE TABLE / INSERT races surface as integrity or
    programming errors in the loser; the winner's work is then visible, so try again. Other
    errors (an unreachable server, a wrong password) fail at once."""
    from sqlalchemy.exc import SQLAlchemyError

    from cea.errors import RuntimeFailure

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
) -> Any:
    """Open the storage and create the study (idempotent: the first caller creates it, every
    other one loads it). On PostgreSQL both happen under an advisory lock, so workers started
    at the same moment on a fresh database do not race on the schema."""
    import optuna

    def work() -> Any:
        storage = open_storage(
            spec, heartbeat_interval=heartbeat_interval, grace_period=grace_period
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
