"""From a config to the examples of each split: read the dataset, check the labels, split it
(or load the saved split), build the examples of the task. Training, `bench`, `augment` and
evaluation all start here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cea.config import CeaConfig
from cea.data.criteria import load_criteria
from cea.data.examples import Example, build_examples
from cea.data.readers import ensure_usable, load_dataset
from cea.data.schema import Dataset
from cea.data.splits import Split, load_split, make_split
from cea.errors import ConfigError, DataError


@dataclass(frozen=True)
class PreparedData:
    dataset: Dataset
    split: Split
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    examples: dict[str, list[Example]]  # split name -> examples
    warnings: int
    config: CeaConfig  # the config with `task.level: auto` resolved (what the run really does)


def has_evidence(ds: Dataset) -> bool:
    """Does the data carry sentence annotations that mark evidence (status 1 rows)?"""
    return ds.format == "redsm5" and any(a.status == 1 for a in ds.annotations)


def resolve_task(config: CeaConfig, ds: Dataset) -> CeaConfig:
    """`task.level: auto` -> sentence when the data has evidence annotations (one multi-label
    sentence model serves criteria and evidence), else post; other levels as they are."""
    if config.task.level != "auto":
        return config
    level = "sentence" if has_evidence(ds) else "post"
    if config.task.name == "evidence" and level == "post":
        raise ConfigError(
            "task.name=evidence needs sentence annotations (status 1 rows in the redsm5 format)"
        )
    task = config.task.model_copy(update={"level": level})
    return config.model_copy(update={"task": task})


def prepare_data(config: CeaConfig, *, split_override: Path | None = None) -> PreparedData:
    """The dataset, split and examples `config` describes (`split_override`: a saved split)."""
    criteria = load_criteria(config.data.criteria_file)
    all_labels = tuple(criteria)
    labels = tuple(config.task.labels) if config.task.labels else all_labels
    unknown = [lab for lab in labels if lab not in criteria]
    if unknown:
        raise ConfigError(f"task.labels: unknown criteria {', '.join(unknown)}")
    bad = sorted(v for v in config.data.label_aliases.values() if v not in criteria)
    if bad:
        raise ConfigError(f"data.label_aliases: unknown criteria {', '.join(bad)}")
    result = load_dataset(
        config.data.format, config.data.path, all_labels, aliases=config.data.label_aliases
    )
    ensure_usable(result, strict=config.data.strict)
    ds = result.dataset
    config = resolve_task(config, ds)
    if config.task.level == "sentence" and ds.format != "redsm5":
        raise ConfigError("task.level=sentence needs sentence annotations (the redsm5 format)")
    split_path = split_override or (
        Path(config.data.split_file) if config.data.split_file else None
    )
    split = (
        load_split(split_path, ds)
        if split_path
        else make_split(ds, config.data.split.model_dump(), config.seed)
    )
    examples: dict[str, list[Example]] = {}
    for name, gids in split.groups.items():
        examples[name] = build_examples(
            ds,
            level=config.task.unit,
            labels=labels,
            negatives=config.task.negatives,
            groups=set(gids),
            encoding=config.task.encoding,
        )
    for name in ("train", "validation"):
        if not examples.get(name):
            raise DataError(
                f"the {name} split has no examples for task {config.task.name}/{config.task.level}"
            )
    return PreparedData(ds, split, labels, criteria, examples, len(result.warnings), config)
