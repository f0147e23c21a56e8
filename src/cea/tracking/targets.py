"""Where tracking goes: URIs, credentials, opening or resuming a run's MLflow run, the run a
resumed training folder recorded, registered models fetched by `models:/NAME@ALIAS`, and an
evaluation attached to its training run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cea.errors import ConfigError
from cea.run_folder import recorded_tracking
from cea.tracking.redact import MASK, redact_text, register_secret, strip_url_credentials

_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:(?P<pw>[^@/\s]+)@")


def register_url_password(url: str) -> None:
    """Mask the password of `scheme://user:password@host` in every later log line and error."""
    m = _URL_PASSWORD.match(url)
    if m:
        register_secret(m.group("pw"))


def prepare_uri(uri: str | None) -> str | None:
    """Register any password in `uri` as a secret; move http(s) basic-auth credentials into
    MLflow's own variables so the URL that MLflow (and cea) sees carries none."""
    if uri is None:
        return None
    register_url_password(uri)
    clean, user, password = strip_url_credentials(uri)
    if clean != uri:
        if user:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
        if password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return clean


def resolve_target(uri: str | None, artifact_location: str | None, experiment: str) -> Any:
    """The store `uri` names; without one MLflow's own MLFLOW_TRACKING_URI, as every MLflow
    tool reads it; without that the sqlite `mlflow.db` in the working directory. (The CLI's
    --tracking-uri and a config's tracking.uri come first: they are passed as `uri`.)"""
    from cea.tracking.mlflow_tracker import default_target

    if not uri:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or None

    # MLflow prints "View run at ..." on stdout for server URIs: that would break --json
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )  # MLflow installs its own handler
    # fail in seconds, not minutes, when a tracking server is unreachable (MLflow's default
    # is 7 retries with exponential backoff); users can still set their own values
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return default_target(Path.cwd(), prepare_uri(uri), artifact_location, experiment)


_MASKED_URI_MESSAGE = "this run's tracking URI held a secret, which cea does not store"


def usable_uri(recorded: dict[str, Any], uri_flag: str | None) -> str | None:
    """--tracking-uri, else the recorded URI — unless that one was stored with a secret masked."""
    uri = uri_flag or recorded.get("uri")
    if uri and MASK in uri:
        raise ConfigError(_MASKED_URI_MESSAGE, hint="give it again with --tracking-uri")
    return uri


def open_tracker(cfg: Any, run_dir: Path, *, resume: bool, uri_flag: str | None) -> Any:
    """A new MLflow run, or the run a resumed training folder recorded in tracking.json."""
    from cea.tracking.base import NullTracker
    from cea.tracking.mlflow_tracker import MlflowTracker

    if resume:
        recorded = recorded_tracking(run_dir)
        if not recorded:
            return NullTracker()  # the run was started with --no-track
        uri = usable_uri(recorded, uri_flag)
        if not uri:
            raise ConfigError(_MASKED_URI_MESSAGE, hint="give it again with --tracking-uri")
        target = resolve_target(uri, cfg.tracking.artifact_location, recorded["experiment"])
        return MlflowTracker.resume(target, recorded["run_id"])
    target = resolve_target(
        uri_flag or cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment
    )
    tracker = MlflowTracker.start(
        target, run_name=run_dir.name, tags={"cea.run_name": run_dir.name}
    )
    tracker.effective_uri = redact_text(target.uri)  # recorded in tracking.json for --resume
    return tracker


def end_tracking(tracker: Any, status: str) -> str | None:
    """Close the tracking run; a failure to do so is a warning (returned), not a second error."""
    try:
        tracker.end(status)
    except Exception as exc:
        return f"tracking: could not mark the run {status} ({redact_text(str(exc))[:160]})"
    return None


def tracking_of(run_dir: Path, uri_flag: str | None, experiment: str) -> tuple[Any, str | None]:
    """The run's own tracking store (tracking.json) unless `uri_flag` is given; its run id."""
    recorded = recorded_tracking(run_dir)
    uri = usable_uri(recorded, uri_flag)
    target = resolve_target(uri, None, recorded.get("experiment", experiment))
    return target, recorded.get("run_id")


def resolve_model_source(
    source: str, tracking_uri: str | None, work_dir: Path
) -> tuple[Path, dict[str, str] | None]:
    """A run folder as given, or a registered `models:/NAME@ALIAS` fetched into `work_dir` and
    verified against its version's sha256 tags (its loader file is never run by cea)."""
    from cea.tracking.registry import fetch_registered

    if not source.startswith("models:/"):
        return Path(source), None
    target = resolve_target(tracking_uri or None, None, "cea")
    return fetch_registered(source, target, work_dir)


def log_evaluation(run_dir: Path, name: str, report: dict[str, Any], folder: Path) -> str | None:
    """Attach an evaluation to the run's MLflow run (if it was tracked and is reachable); what
    happened, in one line (None: the run was not tracked). Never raises: the evaluation is
    written and complete whatever the tracking store does."""
    from cea.tracking.mlflow_tracker import MlflowTracker

    recorded = recorded_tracking(run_dir)
    if not recorded:
        return None
    try:
        uri = usable_uri(recorded, None)
    except ConfigError:
        return (
            "not logged to MLflow: the run's tracking URI held a secret, which cea does not store"
        )
    m = report["metrics"]
    metrics = {
        f"eval/{name}/macro_f1": m["macro_f1"],
        f"eval/{name}/micro_f1": m["micro_f1"],
        f"eval/{name}/ece": report["ece"],
    }
    for lab, lm in m["per_label"].items():
        metrics[f"eval/{name}/{lab}/f1"] = lm["f1"]
    try:
        tracker = MlflowTracker.resume(
            resolve_target(uri, None, recorded["experiment"]), recorded["run_id"]
        )
        tracker.log(metrics=metrics)
        for f in sorted(folder.iterdir()):
            tracker.log_artifact(f, f"eval/{name}")
        tracker.end("FINISHED")
    except Exception as exc:
        return f"not logged to MLflow ({redact_text(str(exc))[:160]})"
    return f"logged to MLflow run {recorded['run_id']}"
