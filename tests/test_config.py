from __future__ import annotations

import pytest

from cea.config import PACKAGED_CONFIGS, CeaConfig, load_config, parse_override
from cea.errors import ConfigError


@pytest.mark.parametrize("name", PACKAGED_CONFIGS)
def test_every_packaged_config_validates(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, CeaConfig)
    assert cfg.data.path == "sample"


def test_precedence_defaults_yaml_overrides_flags(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ntrain:\n  epochs: 7\n  lr: 0.001\n")
    cfg = load_config(path, ["train.epochs=9", "train.batch_size=4"], {"train.batch_size": 2})
    assert cfg.seed == 1  # YAML over default
    assert cfg.train.lr == 0.001
    assert cfg.train.epochs == 9  # override over YAML
    assert cfg.train.batch_size == 2  # explicit flag over override
    assert cfg.train.weight_decay == CeaConfig().train.weight_decay  # default kept


def test_override_values_are_yaml_typed() -> None:
    assert parse_override("task.labels=[ANHEDONIA, FATIGUE]") == (
        ["task", "labels"],
        ["ANHEDONIA", "FATIGUE"],
    )
    assert parse_override("train.lr=1e-4")[1] == pytest.approx(1e-4)
    assert parse_override("model.chunking.enabled=false")[1] is False


@pytest.mark.parametrize("bad", ["noequals", "a..b=1", "train.lr=[unclosed"])
def test_bad_overrides(bad: str) -> None:
    with pytest.raises(ConfigError):
        load_config("tiny", [bad])


def test_extra_keys_forbidden_and_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  backbon: tiny\n")
    with pytest.raises(ConfigError, match=r"model\.backbon"):
        load_config(path)


def test_invalid_yaml_names_line(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ntrain: [\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+"):
        load_config(path)


def test_missing_config_file() -> None:
    from cea.errors import ExitCode, MissingResourceError

    with pytest.raises(MissingResourceError, match="not found") as exc:
        load_config("/no/such/file.yaml")
    assert exc.value.exit_code == ExitCode.MISSING  # like every named thing that is missing


def test_split_fractions_must_sum_to_one() -> None:
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config("tiny", ["data.split.train=0.9"])


def test_evidence_task_needs_sentence_level() -> None:
    with pytest.raises(ConfigError):
        load_config("tiny", ["task.name=evidence"])


def test_config_hash_is_stable_and_sensitive() -> None:
    a = load_config("tiny")
    assert a.config_hash() == load_config("tiny").config_hash()
    assert a.config_hash() != load_config("tiny", ["seed=99"]).config_hash()


def test_readme_main_job_uses_a_packaged_config() -> None:
    """`make demo` (README command 1) must name a config that exists."""
    import re
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    (name,) = re.findall(r"cea train --config (\S+)", makefile)
    assert name in PACKAGED_CONFIGS
    load_config(name)
