"""`cea.api`: every command's CLI and its library function give the same result.

The CLI is wiring over `cea.api` (parse options, call, render); these tests run each command
both ways on the same inputs and compare what comes back — numbers where they are
deterministic (training on CPU with one seed, bootstrap with one seed), structure and
settings where they are timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cea
from cea.errors import CeaError, ConfigError, DataError, MissingResourceError, UsageError

TEXTS = [
    "I feel empty and sad lately. I cannot sleep at night.",
    "My mood has been fine and I sleep well.",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.data.sample import write_sample

    dest = tmp_path_factory.mktemp("api-data") / "small"
    write_sample(dest, 60, seed=5)
    return dest


def _overrides(tiny: Path, data: Path, runs: Path) -> list[str]:
    return [
        f"model.backbone={tiny}",
        f"data.path={data}",
        f"output.runs_dir={runs}",
        "train.epochs=1",
    ]


@pytest.fixture(scope="module")
def api_run(tiny_backbone: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("api-runs")
    events: list[str] = []
    result = cea.train(
        "tiny",
        [*_overrides(tiny_backbone, data, runs), "output.run_name=api"],
        track=False,
        observer=lambda kind, payload: events.append(kind),
    )
    assert result.run_dir == runs / "api"
    assert {"run_dir", "step", "epoch"} <= set(events)  # progress reached the observer
    return result.run_dir


def test_train_cli_equals_api(cli, api_run: Path, tiny_backbone: Path, data: Path) -> None:
    runs = api_run.parent
    res = cli(
        "train", "--config", "tiny", "--no-track", "--json", "--run-name", "cli",
        *_overrides(tiny_backbone, data, runs),
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    meta = json.loads((api_run / "cea_meta.json").read_text())
    assert out["run_dir"] == str(runs / "cli")
    assert out["metrics"] == meta["metrics"]  # same seed, same data, CPU: the same numbers
    assert out["thresholds"] == meta["thresholds"]
    assert out["best_epoch"] == meta["best_epoch"]


def test_eval_cli_equals_api(cli, api_run: Path) -> None:
    res = cli("eval", str(api_run), "--name", "c", "--n-boot", "200", "--no-track", "--json")
    assert res.exit_code == 0, res.stderr
    report = cea.evaluate(api_run, name="a", n_boot=200, track=False)
    out = json.loads(res.stdout)
    assert report.folder == api_run / "eval" / "a"
    assert out["metrics"] == report.metrics
    assert out["intervals"] == report.intervals  # same bootstrap seed
    api_out = report.to_dict()
    for d in (out, api_out):  # the baseline's fit time is a wall-clock reading, not a result
        assert d["baseline"].pop("seconds") >= 0
    assert {k: v for k, v in out.items() if k not in ("folder", "name")} == {
        k: v for k, v in api_out.items() if k not in ("folder", "name")
    }


def test_compare_cli_equals_api(cli, api_run: Path, tmp_path: Path) -> None:
    other = api_run.parent / "cli"
    if not other.exists():  # test order: the CLI run is made by test_train_cli_equals_api
        pytest.skip("needs the CLI-trained run")
    res = cli(
        "eval", "--compare", str(api_run), str(other), "--single-seed-ok", "--n-boot", "200",
        "--out", str(tmp_path / "c"), "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    comp = cea.compare([api_run], [other], n_boot=200, single_seed_ok=True, out=tmp_path / "a")
    out = json.loads(res.stdout)
    assert out["difference"] == comp.difference
    assert tuple(out["interval"]) == comp.interval
    assert out["sentence"] == comp.sentence
    assert (tmp_path / "a" / "comparison.json").is_file()


def test_predict_cli_equals_api(cli, api_run: Path, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS))
    )
    out_file = tmp_path / "out.jsonl"
    res = cli("predict", str(api_run), "-i", str(inp), "-o", str(out_file), "-q")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    preds = cea.predict(api_run, TEXTS, ids=["t0", "t1"])
    assert [p.id for p in preds] == [r["id"] for r in rows]
    for p, r in zip(preds, rows, strict=True):
        assert p.probs == r["probs"]
        assert p.decisions == r["decisions"]


def test_audit_cli_equals_api(cli, api_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # never loaded
    (folder / "weights.safetensors").write_bytes((api_run / "model.safetensors").read_bytes())
    res = cli("audit", "artifacts", str(folder), "--json")
    report = cea.audit([folder], checks=["artifacts"])
    out = json.loads(res.stdout)
    assert res.exit_code == report.exit_code()
    assert out["status"] == report.status
    ids = sorted(f["id"] for r in out["results"] for f in r["findings"])
    assert ids == sorted(f.id for r in report.results for f in r.findings)
    assert ids  # the pickle is reported


def test_register_cli_equals_api(cli, tracked_run: Path) -> None:
    uri = json.loads((tracked_run / "tracking.json").read_text())["uri"]
    res = cli(
        "register-model", str(tracked_run), "--name", "cli-m", "--tracking-uri", uri, "--json"
    )
    assert res.exit_code == 0, res.stderr
    reg = cea.register(tracked_run, "api-m", tracking_uri=uri)
    out = json.loads(res.stdout)
    assert set(out["tags"]) == set(reg.tags)
    for key in ("cea.weights_sha256", "cea.data_hash", "cea.config_hash", "cea.eval.macro_f1"):
        assert out["tags"][key] == reg.tags[key], key
    assert str(out["version"]) == reg.version == "1"


def test_search_cli_equals_api(cli, tiny_backbone: Path, data: Path, tmp_path: Path) -> None:
    overrides = [
        f"data.path={data}", f"model.backbone={tiny_backbone}", "train.epochs=1",
        "hpo.n_startup_trials=2", "tracking.system_metrics=false",
    ]  # fmt: skip
    sets = [x for o in overrides for x in ("--set", o)]
    res = cli(
        "hpo", "--config", "tiny", *sets, "--set", f"hpo.runs_dir={tmp_path / 'c'}",
        "--n-trials", "2", "--no-track", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    summary = cea.search(
        "tiny", 2, overrides=[*overrides, f"hpo.runs_dir={tmp_path / 'a'}"], track=False
    )
    assert summary is not None
    assert [t["params"] for t in summary.trials] == [t["params"] for t in out["trials"]]
    assert [t["value"] for t in summary.trials] == [t["value"] for t in out["trials"]]
    assert summary.best is not None and summary.best["params"] == out["best"]["params"]


def test_bench_cli_equals_api(cli) -> None:
    """Timings differ run to run: the settings and the counts must not."""
    res = cli("bench", "pipeline", "--backbone", "tiny", "--n", "256", "--repeats", "1", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    got = cea.bench_pipeline(backbone="tiny", n=256, repeats=1).to_dict()
    assert out["params"] == got["params"]
    assert (out["cea"]["samples"], out["cea"]["batches"]) == (256, 8)
    assert (got["cea"]["samples"], got["cea"]["batches"]) == (256, 8)
    res = cli(
        "bench", "step", "--simulate-step-ms", "1", "--backbone", "tiny", "--steps", "5",
        "--repeats", "1", "--json",
    )  # fmt: skip
    out = json.loads(res.stdout)
    step = cea.bench_step(simulate_step_ms=1.0, backbone="tiny", steps=5, repeats=1).to_dict()
    assert out["params"] == step["params"] and out["steps"] == step["steps"] == 5
    res = cli(
        "bench", "augment", "--augmenters", "char_swap", "--n", "20", "--repeats", "1", "--json"
    )
    aug = cea.bench_augment(["char_swap"], n=20, repeats=1).to_dict()
    out = json.loads(res.stdout)
    assert out["params"] == aug["params"]
    # the same seed draws the same changes
    assert (
        out["augmenters"]["char_swap"]["changed_share"]
        == aug["augmenters"]["char_swap"]["changed_share"]
    )


def test_bench_train_cli_equals_api(cli, tiny_backbone: Path, data: Path) -> None:
    sets = ["--set", f"model.backbone={tiny_backbone}"]
    res = cli("bench", "train", "-c", "tiny", "--data", str(data), *sets, "--steps", "2",
              "--warmup", "0", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    got = cea.bench_train(
        "tiny", data=str(data), overrides=[f"model.backbone={tiny_backbone}"], steps=2, warmup=0
    )
    for key in ("task", "examples", "rows", "steps_per_epoch", "epochs", "truncated_share"):
        assert out[key] == got[key], key


# ---- the library's own contract -----------------------------------------------------------------


def test_errors_are_cea_errors_with_exit_codes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        cea.load_config("tiny", ["train.nope=1"])
    assert e.value.exit_code == 3
    with pytest.raises(MissingResourceError):
        cea.evaluate(tmp_path / "no-such-run", track=False)
    with pytest.raises(UsageError):
        cea.audit(["."], checks=["nope"])
    with pytest.raises(CeaError):
        cea.predict(tmp_path, ["text"])  # not a run folder


def test_predict_refuses_empty_texts(api_run: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        cea.predict(api_run, ["fine", "   "])


def test_load_config_accepts_a_config_and_applies_overrides() -> None:
    base = cea.load_config("tiny")
    again = cea.load_config(base, ["train.epochs=7"], {"seed": 99, "data.path": None})
    assert again.train.epochs == 7 and again.seed == 99
    assert again.model == base.model and base.train.epochs != 7  # the given one is untouched


def test_lazy_api_keeps_import_light() -> None:
    code = (
        "import sys, cea; assert 'torch' not in sys.modules and 'cea.api' not in sys.modules;"
        "cea.predict; assert 'cea.api' in sys.modules and 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_api_names_shared_with_subpackages_stay_callable() -> None:
    """`cea.train`, `cea.evaluate` and `cea.audit` are also subpackages; importing them (as
    training itself does) must neither shadow the function nor break the package imports."""
    import inspect

    import cea.audit.artifacts
    import cea.evaluate.evaluation
    import cea.train.loop as loop
    from cea import api

    assert loop.fit is not None and cea.audit.artifacts.scan_path is not None
    for name in ("train", "evaluate", "audit"):
        pkg = getattr(cea, name)
        assert callable(pkg)
        assert inspect.signature(pkg) == inspect.signature(getattr(api, name))
    with pytest.raises(UsageError):
        cea.audit(["."], checks=["nope"])  # reached api.audit through the package


def test_every_public_function_is_documented() -> None:
    import inspect

    from cea import api

    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert (obj.__doc__ or "").strip(), f"cea.api.{name} has no docstring"
    assert set(cea.__all__) - {"__version__"} == set(api.__all__) - {"Observer"}


def test_pydoc_renders_the_api() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pydoc", "cea.api"], capture_output=True, text=True, check=True
    )
    assert "def train(" in out.stdout or "train(config" in out.stdout
    assert "class RunResult" in out.stdout
