from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "mlflow", "optuna", "nlpaug", "sklearn", "safetensors")


def test_import_cli_loads_no_heavy_library() -> None:
    code = f"import sys, cea.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_folder_layout_and_tracking_targets_load_no_model_library() -> None:
    """Reading a run folder's names, config or tracking record (`cea runs`, `cea eval
    --compare` listing) must not pay for torch: only loading a model does."""
    code = (
        "import sys, cea.run_folder, cea.tracking.targets, cea.evaluate.card; "
        "print([m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_renders_without_heavy_or_markdown_imports() -> None:
    """`cea --help` must stay fast (< 0.3 s here): no heavy library, and not typer's rich
    help renderer (rich.markdown + markdown_it cost ~0.1 s of CPU)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['cea', '--help']\n"
        "try:\n    runpy.run_module('cea', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {(*HEAVY, 'rich.markdown', 'typer.rich_utils')!r} "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "train" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


def test_help_lists_every_command(cli) -> None:
    res = cli("--help")
    assert res.exit_code == 0
    for name in (
        "train",
        "eval",
        "predict",
        "hpo",
        "bench",
        "audit",
        "register-model",
        "data",
        "doctor",
    ):
        assert name in res.stdout


def test_version(cli) -> None:
    from cea import __version__

    res = cli("--version")
    assert res.exit_code == 0
    assert __version__ in res.stdout


def test_unknown_option_is_usage_error(cli) -> None:
    res = cli("data", "validate", "--no-such-option")
    assert res.exit_code == 2


def test_config_error_exit_3(cli, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: -1\n")
    res = cli("train", "--config", str(bad))
    assert res.exit_code == 3
    assert "train.epochs" in res.stderr


def test_unknown_config_key_is_refused(cli, tmp_path) -> None:
    res = cli("train", "--config", "tiny", "train.epoch=3")
    assert res.exit_code == 3
    assert "train.epoch" in res.stderr


def test_doctor_json_lists_resources(cli) -> None:
    res = cli("doctor", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)["resources"]
    names = {r["name"]: r["status"] for r in rows}
    assert names["minilm"] == "present"
    assert names["torch"] == "present"
    assert "postgresql" in names and "wordnet" in names


def test_internal_errors_hide_traceback_unless_debug(cli, monkeypatch) -> None:
    import cea.cli.doctor as doctor

    def boom(check_torch: bool = True) -> list:
        raise ValueError("secret=hunter2")

    monkeypatch.setattr(doctor, "collect", boom)
    res = cli("doctor")
    assert res.exit_code == 6
    assert "hunter2" not in res.stderr and "Traceback" not in res.stderr
