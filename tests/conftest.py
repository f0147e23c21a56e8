"""Shared fixtures: the tiny backbone (built once), sample data copies, a CLI runner."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from cea.data.readers import sample_data_path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def _isolated_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test runs in its own empty folder: no mlflow.db or runs/ lands in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _no_mlflow_globals() -> Iterator[None]:
    """MLflow's `set_tracking_uri` sets MLFLOW_TRACKING_URI in os.environ (for subprocesses),
    and cea honours that variable: a test that sets it must not pick the store of every later
    test (a relative `sqlite:///mlflow.db` from one test sent later ones elsewhere)."""
    _reset_mlflow_globals()
    yield
    _reset_mlflow_globals()


def _reset_mlflow_globals() -> None:
    import sys

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(key, None)
    if "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `cea ARGS...` in-process through main() (so exit-code mapping is exercised)."""
    from cea.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


def tiny_train_args(tiny: Path, data: Path, name: str) -> list[str]:
    """`cea train` arguments for a fast run with the tiny backbone."""
    return [
        "train",
        "--config",
        "tiny",
        "--backbone",
        str(tiny),
        "--data",
        str(data),
        "--run-name",
        name,
    ]


def train_in(work: Path, tiny: Path, name: str, *overrides: str) -> Path:
    """Train a tiny tracked run (sqlite store in `work`) through the CLI; its folder."""
    from cea.cli import main

    old = Path.cwd()
    os.chdir(work)
    try:
        with pytest.raises(SystemExit) as exc:
            main(
                [
                    "train",
                    "--config",
                    "tiny",
                    "--backbone",
                    str(tiny),
                    "--run-name",
                    name,
                    "-q",
                    "train.epochs=2",
                    "tracking.system_metrics=false",
                    *overrides,
                ]
            )
        assert exc.value.code == 0
    finally:
        os.chdir(old)
    return work / "runs" / name


@pytest.fixture(scope="module")
def tracked_run(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tracked tiny run per test module (modules may modify their copy)."""
    return train_in(tmp_path_factory.mktemp("work"), tiny_backbone, "r")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.model.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), seed=0)


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the packaged sample (ReDSM5 layout)."""
    dest = tmp_path / "data"
    shutil.copytree(
        sample_data_path(), dest, ignore=shutil.ignore_patterns("__init__.py", "__pycache__")
    )
    return dest


@pytest.fixture
def small_sample(tmp_path: Path) -> Path:
    """A small synthetic dataset (60 posts) for fast training tests."""
    from cea.data.sample import write_sample

    dest = tmp_path / "small"
    write_sample(dest, 60, seed=5)
    return dest


@pytest.fixture
def train_tracked(tiny_backbone: Path) -> Callable[..., Path]:
    """`train_tracked(work, name, *overrides)`: a tracked tiny run trained through the CLI."""
    return lambda work, name, *overrides: train_in(work, tiny_backbone, name, *overrides)


# ---- HPO (tests/test_hpo*.py) ----

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def hpo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.data.sample import write_sample

    dest = tmp_path_factory.mktemp("hpo-data") / "small"
    write_sample(dest, 40, seed=5)
    return dest


@pytest.fixture
def fresh_pg_db():
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        engine = sqlalchemy.create_engine(
            PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as c:
            name = f"cea_hpo_{uuid.uuid4().hex[:10]}"
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc.__class__.__name__}); "
                    "start it (see the env notes) to run the distributed HPO tests")  # fmt: skip
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
