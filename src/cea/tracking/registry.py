"""Register a finished run's model in the MLflow registry, and fetch a registered one safely.

Nothing pickled is logged (DESIGN §6): the model is "models from code" — the loader file
`pyfunc_model.py` plus the run's safetensors weights, tokenizer and JSON/YAML metadata. Aliases,
not stages (deprecated in MLflow 3). Every version carries tags with the sha256 of the weights
and of the loader, the data and config hashes, the git sha, the evaluation metrics and the cea
version. A protected alias (e.g. `champion`) is only given when the weights still match the
sha256 that training logged and the evaluation metric meets the configured minimum.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cea._version import __version__
from cea.errors import GateRefused, IntegrityError, MissingResourceError, RuntimeFailure, UsageError
from cea.run_folder import TRACKING_FILE, WEIGHTS_FILE
from cea.security.io import sha256_file
from cea.security.manifest import MANIFEST_NAME

LOADER = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "model"  # the logged model's name inside the MLflow run
RUN_ARTIFACT = "run"  # key (and folder) of the staged run files among the model's artifacts
EXCLUDED_FILES = (MANIFEST_NAME, TRACKING_FILE)  # re-written / machine specific


@dataclass(frozen=True)
class GateMetric:
    name: str
    value: float | None
    source: str  # "eval/<name>" or "training/<split>"
    refusal: str | None = None  # why this number cannot gate (no test split, no interval)
    notes: tuple[str, ...] = ()  # evaluations passed over, and why


@dataclass
class Registration:
    """A registered model version (`cea register-model`): its name, version, alias, the logged
    model's URI, the MLflow run it was logged to and its tags; `load_with` is the `models:/`
    URI that `cea predict` / `cea eval` / `mlflow.pyfunc.load_model` take."""

    name: str
    version: str
    alias: str | None
    model_uri: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    reused: bool = False  # an existing version had these very weights

    @property
    def load_with(self) -> str:
        suffix = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"models:/{self.name}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """What `cea register-model --json` prints."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "model_uri": self.model_uri,
            "run_id": self.run_id,
            "tags": self.tags,
            "reused": self.reused,
            "load_with": self.load_with,
        }


def _version_with_weights(client: Any, name: str, weights_sha: str) -> Any:
    """The newest registered version of `name` whose weights tag matches, else None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if dict(v.tags).get("cea.weights_sha256") == weights_sha]
    return max(same, key=lambda v: int(v.version)) if same else None


def gate_metric(
    run_dir: Path, meta: dict[str, Any], metric: str, gate_on: str = "point"
) -> GateMetric:
    """What the promotion gate judges: the newest verified `cea eval` on the test split of the
    run's own data (its data hash must be the run's), else the training-time test metrics.
    `gate_on="lower"` takes the lower bound of the eval's 95 % interval (training metrics
    have none). A run without a test split has no number to gate on: its final metrics are on
    validation, which chose its epoch and thresholds."""
    from cea.evaluate.card import verified_evals

    label = metric if gate_on == "point" else f"{metric} (95 % lower bound)"
    notes = []
    for report in verified_evals(run_dir, "test"):
        if report.get("data_hash") != meta.get("data_hash"):
            notes.append(f"eval/{report['name']} scored other data (data hash differs): not used")
            continue
        if gate_on == "lower":
            interval = report.get("intervals", {}).get(metric)
            value = None if not interval else float(interval[0])
        else:
            value = float(report["metrics"][metric])
        return GateMetric(label, value, f"eval/{report['name']}", notes=tuple(notes))
    split = str(meta.get("final_split", "test"))
    if split != "test":
        return GateMetric(
            label, None, f"training/{split}",
            refusal="the run has no test split (its metrics are on validation, which chose "
            "the epoch and the thresholds); train with data.split.test > 0",
            notes=tuple(notes),
        )  # fmt: skip
    if gate_on == "lower":
        return GateMetric(
            label, None, "training/test",
            refusal=f"registry.gate_on=lower needs an interval: run `cea eval {run_dir} --split test`",
            notes=tuple(notes),
        )  # fmt: skip
    value = meta.get("metrics", {}).get(split, {}).get(metric)
    return GateMetric(
        label, None if value is None else float(value), f"training/{split}", notes=tuple(notes)
    )


def gate_reasons(
    *, weights_sha: str, trained_sha: str | None, metric: GateMetric, minimum: float
) -> list[str]:
    """Why a protected alias must be refused (empty: it may be given)."""
    reasons = []
    if trained_sha is None:
        reasons.append("no weights sha256 was logged at training time (untracked run)")
    elif trained_sha != weights_sha:
        reasons.append(
            f"the weights changed after training (sha256 {weights_sha[:12]}…, "
            f"training logged {trained_sha[:12]}…)"
        )
    if metric.refusal is not None:
        reasons.append(metric.refusal)
    elif metric.value is None:
        reasons.append(f"no {metric.name} to judge (run `cea eval RUN_DIR --split test`)")
    elif metric.value < minimum:
        reasons.append(f"{metric.name} {metric.value:.4f} ({metric.source}) < minimum {minimum}")
    reasons += [n for n in metric.notes if reasons]  # what was passed over, when it matters
    return reasons


def stage_model_files(run_dir: Path, dest: Path, card: str) -> dict[str, str]:
    """Copy what loading needs (root files of the run, no checkpoints, no evaluations) and a
    model card into `dest`, with a fresh manifest; returns the manifest's file hashes."""
    from cea.security.manifest import write_manifest

    dest.mkdir(parents=True)
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and path.name not in EXCLUDED_FILES:
            shutil.copy2(path, dest / path.name)
    (dest / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return write_manifest(dest)


def _pip_requirements() -> list[str]:
    from importlib import metadata

    reqs = [f"cea=={__version__}"]
    for dist in ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas"):
        try:
            version = metadata.version(dist).split("+")[0]
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            continue
        reqs.append(f"{dist}=={version}")
    return reqs


def register_run(
    run_dir: Path,
    *,
    name: str,
    alias: str | None,
    target: Any,
    training_run_id: str | None,
    protected: list[str],
    metric_name: str,
    minimum: float,
    card: str,
    gate_on: str = "point",
    work_dir: Path,
) -> Registration:
    """Verify, gate, log (models from code) and register; returns the new version."""
    from mlflow.exceptions import MlflowException

    from cea.run_folder import verify_run_folder
    from cea.tracking.mlflow_tracker import _client

    meta = verify_run_folder(run_dir)
    weights_sha = sha256_file(run_dir / WEIGHTS_FILE)
    client = _client(target.uri, create=False)
    training_tags: dict[str, str] = {}
    if training_run_id is not None:
        try:
            training_tags = dict(client.get_run(training_run_id).data.tags)
        except MlflowException as exc:
            raise UsageError(
                f"training run {training_run_id} is not in the tracking store {target.uri}",
                hint="give the store the run was tracked in with --tracking-uri",
            ) from exc
    metric = gate_metric(run_dir, meta, metric_name, gate_on)
    if alias is not None and alias in protected:
        reasons = gate_reasons(
            weights_sha=weights_sha,
            trained_sha=training_tags.get("cea.weights_sha256"),
            metric=metric,
            minimum=minimum,
        )
        if reasons:
            raise GateRefused(f"alias {alias!r} is protected: " + "; ".join(reasons))
    existing = _version_with_weights(client, name, weights_sha)
    if existing is not None:  # the same weights again: no second version, only the alias
        try:
            if alias is not None:
                client.set_registered_model_alias(name, alias, existing.version)
        except MlflowException as exc:
            raise RuntimeFailure(f"registry: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
        return Registration(
            name,
            str(existing.version),
            alias,
            f"models:/{name}/{existing.version}",
            str(existing.run_id or ""),
            dict(existing.tags),
            reused=True,
        )
    stage = work_dir / RUN_ARTIFACT
    stage_model_files(run_dir, stage, card)
    tags = {
        "cea.weights_sha256": weights_sha,
        "cea.loader_sha256": sha256_file(LOADER),
        "cea.data_hash": str(meta.get("data_hash")),
        "cea.config_hash": str(meta.get("config_hash")),
        "cea.git_sha": training_tags.get("cea.git_sha", "unknown"),
        "cea.version": __version__,
        "cea.labels": ",".join(meta["labels"]),
        "cea.task": f"{meta['task']['name']}/{meta['task']['level']}",
        "cea.gate_metric_source": metric.source,
    }
    if metric.value is not None:
        tags[f"cea.eval.{metric.name}"] = f"{metric.value:.6f}"
    try:
        with _fluent_uris(target.uri):
            info, run_id, version = _log_and_register(
                run_dir, stage, name, tags, weights_sha, meta["labels"], client, target,
                training_run_id,
            )  # fmt: skip
        if alias is not None:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise RuntimeFailure(f"registry: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    return Registration(name, str(version.version), alias, info.model_uri, run_id, tags)


@contextmanager
def _fluent_uris(uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model, register_model) for `uri`, then MLflow's global
    tracking/registry URIs and their environment variables as they were: `set_tracking_uri`
    also sets MLFLOW_TRACKING_URI in this process, which would redirect every later command
    (and a library user's own MLflow calls) to this store."""
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved = (
        getattr(tracking_utils, "_tracking_uri", None),
        getattr(registry_utils, "_registry_uri", None),
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])  # type: ignore[arg-type]  # None: its default
        registry_utils._registry_uri = saved[1]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _log_and_register(
    run_dir: Path,
    stage: Path,
    name: str,
    tags: dict[str, str],
    weights_sha: str,
    labels: list[str],
    client: Any,
    target: Any,
    training_run_id: str | None,
) -> tuple[Any, str, Any]:
    """Log the model from code into the training run (or a new run) and register it."""
    import mlflow

    from cea.tracking.mlflow_tracker import experiment_id

    run_kwargs: dict[str, Any] = (
        {"run_id": training_run_id}
        if training_run_id
        else {
            "experiment_id": experiment_id(client, target),
            "run_name": f"register-{run_dir.name}",
        }
    )
    with warnings.catch_warnings(), mlflow.start_run(**run_kwargs) as run:
        # MLflow nags about type hints and input examples: the signature is explicit
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(LOADER),
            artifacts={RUN_ARTIFACT: str(stage)},
            pip_requirements=_pip_requirements(),
            signature=_signature(labels),
            metadata={"cea": {"weights_sha256": weights_sha, "labels": labels}},
        )
        run_id = run.info.run_id
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    return info, run_id, version


def _signature(labels: list[str]) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([ColSpec("double", lab) for lab in labels]),
    )


def parse_model_uri(source: str) -> tuple[str, str] | None:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` → (name, alias-or-version)."""
    if not source.startswith("models:/"):
        return None
    rest = source[len("models:/") :]
    if "@" in rest:
        name, ref = rest.split("@", 1)
    elif "/" in rest:
        name, ref = rest.rsplit("/", 1)
    else:
        raise UsageError(f"{source}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    if not name or not ref:
        raise UsageError(f"{source}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return name, ref


def _what_is_registered(client: Any, name: str) -> str:
    """For a failed lookup: whether the model exists, and its versions and aliases if so."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return f"no registered model {name!r}"
    aliases = ", ".join(f"@{a}" for a in sorted(dict(model.aliases))) or "none"
    numbers = ", ".join(sorted((str(v.version) for v in versions), key=int)) or "none"
    return f"{name!r} has versions {numbers}, aliases {aliases}"


def fetch_registered(source: str, target: Any, dest: Path) -> tuple[Path, dict[str, str]]:
    """Download a registered version, verify the loader and weights against the version's
    tags, and return the local run folder (loaded by cea itself: the loader is not run)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from cea.tracking.mlflow_tracker import _client

    parsed = parse_model_uri(source)
    if parsed is None:
        raise UsageError(f"{source} is not a models:/ URI")
    name, ref = parsed
    client = _client(target.uri, create=False)  # read-only: never creates a store
    try:
        mv = (
            client.get_model_version(name, ref)
            if ref.isdigit()
            else client.get_model_version_by_alias(name, ref)
        )
    except MlflowException as exc:
        raise MissingResourceError(
            f"{source}: not found in the registry at {target.uri} "
            f"({_what_is_registered(client, name)})",
            hint="check the name and alias (`cea register-model`), or the store: "
            "--tracking-uri or MLFLOW_TRACKING_URI",
        ) from exc
    try:
        # not `models:/...`: MLflow resolves that against its global registry URI (a sqlite
        # mlflow.db in the working directory, created on the spot), whatever registry_uri says
        source_uri = client.get_model_version_download_uri(name, mv.version)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source_uri, dst_path=str(dest), tracking_uri=target.uri
            )
        )
    except MlflowException as exc:
        raise MissingResourceError(
            f"{source}: version {mv.version}'s files could not be downloaded from {target.uri} "
            f"({exc.__class__.__name__}: {str(exc)[:160]})",
            hint="the registry names them but their artifact store does not hold them",
        ) from exc
    tags = dict(mv.tags)
    run_folder = local / "artifacts" / RUN_ARTIFACT
    loaders = [p for p in local.glob("*.py")]
    expected = {"cea.weights_sha256": run_folder / WEIGHTS_FILE}
    if len(loaders) != 1:
        raise IntegrityError(f"{source}: expected one loader file, found {len(loaders)}")
    expected["cea.loader_sha256"] = loaders[0]
    for tag, path in expected.items():
        if tags.get(tag) is None or not path.is_file() or sha256_file(path) != tags[tag]:
            raise IntegrityError(
                f"{source} (version {mv.version}): {path.name} does not match its {tag} tag"
            )
    return run_folder, {"name": name, "version": str(mv.version), **tags}
