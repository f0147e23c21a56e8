"""MLflow through the explicit `MlflowClient` (no global "active run" state).

Default store: a sqlite file in the working directory and an explicit local artifact folder
(so MLflow never writes a stray `./mlruns`). A tracking-server URL works too; credentials in
it are moved out of the URL (into MLflow's own username/password variables, set by the CLI)
so they never reach a tag, a param, a file or a message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.errors import MissingResourceError, RuntimeFailure
from cea.tracking.redact import redact_text, redact_value

MAX_PARAM_CHARS = 6000
BATCH_METRICS = 1000
BATCH_PARAMS = 100
BATCH_TAGS = 100


@dataclass(frozen=True)
class TrackingTarget:
    uri: str  # without credentials
    artifact_location: str | None  # file URI of the artifact folder for local stores
    experiment: str


def default_target(
    cwd: Path, uri: str | None, artifact_location: str | None, experiment: str
) -> TrackingTarget:
    """sqlite file + artifact folder in `cwd` unless a URI is given."""
    if uri is None:
        uri = f"sqlite:///{(cwd / 'mlflow.db').resolve()}"
        if artifact_location is None:
            artifact_location = (cwd / "mlartifacts").resolve().as_uri()
    elif artifact_location is not None and "://" not in artifact_location:
        artifact_location = Path(artifact_location).resolve().as_uri()
    elif artifact_location is None and uri.startswith(("sqlite:", "postgresql", "mysql", "file:")):
        artifact_location = (cwd / "mlartifacts").resolve().as_uri()
    return TrackingTarget(uri, artifact_location, experiment)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _client(uri: str, *, create: bool = True) -> Any:
    """An MlflowClient. A sqlite store is created (schema migrations included) under a file
    lock, so workers that start together never race on it; with `create=False` (read-only
    commands) a missing sqlite file is an error and nothing is created."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:  # pragma: no cover - mlflow-skinny is a runtime dependency
        raise MissingResourceError(
            "MLflow is not installed", hint="run `make install`, or train with --no-track"
        ) from exc
    db = sqlite_path(uri)
    if db is None:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if not create and uri.startswith(("http://", "https://")):
            _probe_server(client, uri)
        return client
    if not db.is_file() and not create:
        raise MissingResourceError(
            f"no tracking store at {db}",
            hint="run this where you trained, or give --tracking-uri (or MLFLOW_TRACKING_URI)",
        )
    if not create:
        _check_existing_store(db)
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # creates / migrates the schema here
    return client


def _probe_server(client: Any, uri: str) -> None:
    """A read-only command against a tracking server: one cheap request first, so a server
    that does not answer is said as that (exit 4), not as "run not found" later."""
    from cea.errors import ServiceUnavailable

    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        text = str(exc).lower()
        if any(
            k in text
            for k in ("connection refused", "max retries", "failed to establish", "timed out")
        ):
            raise ServiceUnavailable(
                f"tracking server {redact_text(uri)} is unreachable (no answer)",
                hint="start the server or check --tracking-uri / MLFLOW_TRACKING_URI; "
                "nothing was written",
            ) from exc
        raise


def _check_existing_store(db: Path) -> None:
    """For a read-only command: the sqlite file must already be an MLflow store. Opening an
    empty (0-byte, e.g. left by a full disk) or half-created file with MLflow would create or
    migrate its schema, which a read must never do."""
    import sqlite3

    from cea.errors import IntegrityError

    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:  # "file is not a database", a damaged header
        raise IntegrityError(
            f"{db}: not a readable SQLite tracking store ({exc})",
            hint="restore it from a backup, or give --tracking-uri for another store",
        ) from exc
    if not tables:
        raise MissingResourceError(
            f"{db}: an empty tracking store ({db.stat().st_size} bytes, no tables); "
            "a read-only command does not create one",
            hint="delete the empty file (it holds no runs), or give --tracking-uri",
        )
    if not {"alembic_version", "experiments", "runs"} <= tables:
        raise IntegrityError(
            f"{db}: a half-created tracking store ({len(tables)} tables, no complete "
            "schema); a read-only command does not migrate it",
            hint="it was left by an interrupted first write (a full disk?): move it away",
        )


def _wrap(action: str, exc: Exception) -> RuntimeFailure:
    return RuntimeFailure(
        f"tracking: {action} failed ({exc.__class__.__name__}: {redact_text(str(exc))[:200]})",
        hint="check the tracking URI, or train with --no-track",
    )


def experiment_id(client: Any, target: TrackingTarget) -> str:
    """Get or create the experiment; safe when two processes create it at once."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(target.experiment)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(target.experiment, artifact_location=target.artifact_location)
        )
    except MlflowException:
        found = client.get_experiment_by_name(target.experiment)
        if found is None:
            raise
        return str(found.experiment_id)


class MlflowTracker:
    """One MLflow run. Step metrics are buffered and sent in batches."""

    def __init__(self, client: Any, run_id: str, *, flush_every: int = 200) -> None:
        self.client = client
        self.run_id: str | None = run_id
        self.effective_uri: str | None = None
        self._buffer: list[Any] = []
        self._flush_every = flush_every
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def start(cls, target: TrackingTarget, *, run_name: str, tags: dict[str, str]) -> MlflowTracker:
        try:
            client = _client(target.uri)
            exp = experiment_id(client, target)
            safe_tags = {k: str(redact_value(k, v)) for k, v in tags.items()}
            run = client.create_run(exp, run_name=run_name, tags=safe_tags)
        except (MissingResourceError, RuntimeFailure):
            raise
        except Exception as exc:
            raise _wrap("starting the run", exc) from exc
        return cls(client, run.info.run_id)

    @classmethod
    def resume(cls, target: TrackingTarget, run_id: str) -> MlflowTracker:
        try:
            client = _client(target.uri, create=False)  # the run's store must still be there
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
        except (MissingResourceError, RuntimeFailure):
            raise
        except Exception as exc:
            raise _wrap(f"resuming run {run_id}", exc) from exc
        return cls(client, run_id)

    # -- Tracker protocol ------------------------------------------------------------------
    def log(
        self,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        step: int | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        with self._lock:
            if metrics:
                for key, value in metrics.items():
                    if value is None:
                        continue
                    self._buffer.append(Metric(key, float(value), now, step or 0))
            p = [
                Param(k, str(redact_value(k, v))[:MAX_PARAM_CHARS])
                for k, v in (params or {}).items()
            ]
            t = [
                RunTag(k, str(redact_value(k, v))[:MAX_PARAM_CHARS])
                for k, v in (tags or {}).items()
            ]
            try:
                for i in range(0, len(p), BATCH_PARAMS):
                    self.client.log_batch(self.run_id, params=p[i : i + BATCH_PARAMS])
                for i in range(0, len(t), BATCH_TAGS):
                    self.client.log_batch(self.run_id, tags=t[i : i + BATCH_TAGS])
                if len(self._buffer) >= self._flush_every or step is None:
                    self._flush()
            except Exception as exc:
                raise _wrap("logging", exc) from exc

    def _flush(self) -> None:
        while self._buffer:
            chunk, self._buffer = self._buffer[:BATCH_METRICS], self._buffer[BATCH_METRICS:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def flush(self) -> None:
        with self._lock:
            try:
                self._flush()
            except Exception as exc:
                raise _wrap("logging metrics", exc) from exc

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        try:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
        except Exception as exc:
            raise _wrap(f"uploading {path.name}", exc) from exc

    def end(self, status: str = "FINISHED") -> None:
        try:
            self.flush()
        finally:
            try:
                self.client.set_terminated(self.run_id, status=status)
            except Exception as exc:
                raise _wrap("closing the run", exc) from exc
