"""Typed configuration (pydantic v2, extra="forbid") and its loading.

Precedence (DESIGN §3): model defaults < YAML file < `key.path=value` overrides < explicit flags.
Closed choices are `Literal`s mapped to builders in code: nothing named in a config is imported.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cea.errors import ConfigError, MissingResourceError
from cea.security.io import canonical_json, sha256_bytes


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: the base constructor says so
            dup = False
        if dup:
            raise ConfigError(
                f"duplicate key {key!r} (line {key_node.start_mark.line + 1})",
                hint="give each key once; YAML would silently keep only the last one",
            )
    return dict(loader.construct_mapping(node, deep=True))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,
)


def safe_load_yaml(text: str) -> Any:
    """`yaml.safe_load` that refuses duplicate keys (`ConfigError` naming the key and line)."""
    loader = _UniqueKeyLoader(text)  # what yaml.load does, with a SafeLoader subclass
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    train: float = Field(0.7, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1 (got {total:.4f})")
        return self


class DataConfig(_Strict):
    format: Literal["redsm5", "generic"] = "redsm5"
    # a folder (redsm5), a .jsonl/.csv file (generic), "sample" (the bundled short posts) or
    # "sample-long" (300 generated posts of real post lengths: cea.data.readers.LONG_SAMPLE)
    path: str = "sample"
    criteria_file: str | None = None  # YAML id -> description; default: packaged DSM-5 criteria
    strict: bool = False
    split: SplitConfig = SplitConfig()
    split_file: str | None = None  # use a saved split (cea data split) instead of computing one
    # label spellings found in the data -> criterion id (`cea data validate` proposes this map)
    label_aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _format_from_path(cls, data: Any) -> Any:
        """Unless `format` is given, a .jsonl/.csv/.json file is the generic format (as for
        `cea data validate`); a folder is ReDSM5."""
        if isinstance(data, dict) and "format" not in data:
            data = {**data, "format": infer_format(str(data.get("path", "sample")))}
        return data


def infer_format(path: str) -> str:
    """generic for a .jsonl/.csv/.json file, else redsm5 (a folder, or "sample")."""
    return "generic" if Path(path).suffix.lower() in (".jsonl", ".csv", ".json") else "redsm5"


class ChunkingConfig(_Strict):
    enabled: bool = True
    stride: int = Field(32, ge=0)
    max_chunks: int = Field(8, ge=1)
    # how the windows of a post become one post logit, in training and inference alike
    aggregate: Literal["max", "mean", "lse"] = "max"
    # window: every window trained with its post's labels (the default: measured better, see
    # README); post: multi-instance training (windows pooled into one post logit inside the
    # model step; loss and pos_weight per post). Validation and inference pool per post either way
    train_unit: Literal["post", "window"] = "window"


class TaskConfig(_Strict):
    name: Literal["criteria", "evidence"] = "criteria"
    # auto: sentence when the data has sentence annotations (evidence rows), else post; the
    # run folder's config.yaml holds the resolved level (`cea.data.prepare.resolve_task`)
    level: Literal["post", "sentence", "auto"] = "post"
    negatives: Literal["annotated", "all"] = "annotated"
    labels: list[str] | None = None  # subset of the criteria; default: all
    # sentence level: pair = one (criterion description, sentence) input per criterion;
    # multilabel = one input per sentence, a head with every criterion (a tenth of the work
    # for ten criteria; pairs stay for criteria sets that change after training)
    encoding: Literal["pair", "multilabel"] = "pair"
    # multi-label sentence runs: how a post's criterion score is read off its sentences'
    # (calibrated) probabilities: the largest one, or noisy-or 1 - prod(1 - p)
    post_pooling: Literal["max", "noisy_or"] = "max"

    @property
    def unit(self) -> Literal["post", "sentence"]:
        """The level, resolved (`auto` is resolved from the data by `cea.data.prepare`; a run
        folder's config.yaml never says auto)."""
        if self.level == "auto":
            raise ConfigError("task.level=auto must be resolved from the data first")
        return self.level

    @property
    def pair(self) -> bool:
        """(criterion, sentence) pair encoding: one output, the criterion in the input."""
        return self.level == "sentence" and self.encoding == "pair"

    @model_validator(mode="after")
    def _evidence_is_sentence_level(self) -> TaskConfig:
        if self.name == "evidence" and self.level == "post":
            raise ValueError("task.name=evidence needs task.level=sentence")
        return self


class ModelConfig(_Strict):
    backbone: str = "minilm"  # "minilm", "tiny", or a local Hugging Face model folder
    max_length: int = Field(128, ge=8, le=4096)
    dropout: float | None = Field(None, ge=0, lt=1)
    chunking: ChunkingConfig = ChunkingConfig()


class EarlyStoppingConfig(_Strict):
    metric: Literal["macro_auprc", "macro_f1", "micro_f1", "val_loss"] = "macro_auprc"
    patience: int = Field(2, ge=0)  # 0 disables early stopping
    min_delta: float = Field(0.0, ge=0)
    # k > 1: select on the mean of the last k epochs' values (a single noisy epoch cannot win)
    # and keep the mean of those k epochs' weights (checkpoint averaging)
    average: int = Field(1, ge=1, le=10)


class NegativeSamplingConfig(_Strict):
    """Multi-label sentence training: every epoch keeps all sentences that are evidence for
    some criterion and draws `per_positive` times as many of the others, `hard_share` of them
    from the hardest negatives (those a TF-IDF + logistic regression fitted on the training
    sentences scores highest: negations, other senses, a neighbour's words), the rest at
    random; a new draw each epoch (seeded). Validation and test are never sampled."""

    enabled: bool = False
    per_positive: float = Field(4.0, gt=0, le=1000)
    hard_share: float = Field(0.5, ge=0, le=1)


class TrainConfig(_Strict):
    epochs: int = Field(3, ge=1, le=1000)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-5, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    # pos_weight: neg/pos per criterion clipped to max_pos_weight; balanced: neg/pos uncapped
    # (each criterion's positives weigh as much as its negatives), counted over the rows an
    # epoch actually draws when negatives are sampled
    class_weighting: Literal["none", "pos_weight", "balanced"] = "pos_weight"
    max_pos_weight: float = Field(10.0, ge=1)
    negative_sampling: NegativeSamplingConfig = NegativeSamplingConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    bucket_by_length: bool = True
    num_workers: int = Field(0, ge=0, le=64)
    prefetch: int = Field(2, ge=0, le=64)  # batches built ahead in a thread (0: off)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # autocast on CUDA only
    threads: int | None = Field(None, ge=1)  # torch intra-op threads on the CPU
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps (smoke runs)
    # optimizer steps between loss syncs (device -> host), non-finite checks and step events
    log_every: int = Field(10, ge=1)
    # per-criterion decision thresholds chosen on validation (cea.evaluate.metrics):
    # bagged = bootstrap median shrunk toward 0.5, kept only when it beats 0.5 out of bag;
    # raw = the F1-optimal threshold (overfits small sets); fixed = 0.5
    thresholds: Literal["bagged", "raw", "fixed"] = "bagged"
    # a map per criterion fitted on validation before the threshold rule and applied wherever
    # the run's probabilities are used (cea.evaluate.calibration): temperature = sigmoid(z/T),
    # platt = sigmoid(a z + b) (also moves the 0.5 point), none = the model's own
    calibration: Literal["none", "temperature", "platt"] = "none"


class OutputConfig(_Strict):
    runs_dir: str = "runs"
    run_name: str | None = None  # default: <task>-<level>-<UTC timestamp>


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: str | None = None  # default: sqlite file mlflow.db in the working directory
    artifact_location: str | None = None  # default: ./mlartifacts for local stores
    experiment: str = "cea"
    log_examples: bool = False  # example texts are sensitive: logged only when asked
    system_metrics: bool = True
    system_metrics_interval_s: float = Field(5.0, gt=0)


class AugmentConfig(_Strict):
    """Training-split augmentation (`cea augment list` names the augmenters)."""

    enabled: bool = False
    prob: float = Field(0.15, ge=0.0, le=1.0)  # probability that an epoch augments an example
    ops_per_example: int = Field(1, ge=1, le=5)
    max_replace_ratio: float = Field(0.15, gt=0.0, le=0.5)  # of the words of a text
    augmenters: dict[str, float] = Field(
        default_factory=lambda: {
            "char_keyboard": 1.0,
            "char_swap": 1.0,
            "word_swap": 1.0,
            "word_delete": 1.0,
            "spelling": 1.0,
        }
    )
    protected_terms: list[str] = []  # never replaced or dropped (besides negations)
    protect_negations: bool = True
    # never write a criteria-lexicon word (descriptions + words associated with a criterion
    # in the training split): an augmented negative must not read as a positive
    lexicon_guard: bool = True
    allow_antonyms: bool = False
    mlm_path: str | None = None  # local masked-LM folder for contextual_mlm
    tfidf_min_df: int = Field(3, ge=1)
    refit_tfidf: bool = False  # rebuild the TF-IDF cache entry instead of loading it
    cache_dir: str | None = None  # default: ~/.cache/cea
    key_file: str | None = None  # default: ~/.config/cea/cache.key (0600)

    @field_validator("augmenters")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w < 0 for w in value.values()) or not any(value.values()):
            raise ValueError("needs at least one augmenter with a positive weight, none negative")
        return value

    @model_validator(mode="after")
    def _names(self) -> AugmentConfig:
        from cea.catalog import check_augmenter_names
        from cea.errors import ConfigError

        try:
            check_augmenter_names(
                [n for n, w in self.augmenters.items() if w > 0], self.allow_antonyms
            )
        except ConfigError as exc:
            raise ValueError(exc.message) from exc
        return self


class ParamSpec(_Strict):
    """One dimension of the HPO search space over a train-config key."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    # searched only when these config keys have these values (in the trial, else the base
    # config); `augment.*` keys default to {augment.enabled: true}
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs low <= high")
        elif self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        return self


def _default_space() -> dict[str, ParamSpec]:
    return {
        "train.lr": ParamSpec(type="float", low=1e-5, high=1e-3, log=True),
        "train.batch_size": ParamSpec(type="categorical", choices=[8, 16, 32]),
        "train.weight_decay": ParamSpec(type="float", low=0.0, high=0.1),
        "train.warmup_ratio": ParamSpec(type="float", low=0.0, high=0.2),
        "model.dropout": ParamSpec(type="float", low=0.0, high=0.3),
        "train.class_weighting": ParamSpec(type="categorical", choices=["none", "pos_weight"]),
        "augment.enabled": ParamSpec(type="categorical", choices=[False, True]),
        "augment.prob": ParamSpec(type="float", low=0.05, high=0.5),
    }


class HpoConfig(_Strict):
    """`cea hpo`: what to search and how (the rest of the config is the base of every trial)."""

    metric: Literal["macro_f1", "micro_f1", "macro_auprc", "loss"] = "macro_f1"  # validation
    pruner: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(5, ge=0)  # TPE: random trials before the model kicks in
    pruner_startup_trials: int = Field(3, ge=0)  # median: trials before pruning starts
    pruner_warmup_epochs: int = Field(0, ge=0)
    heartbeat_interval: int = Field(30, ge=1)  # RDB storages: seconds between heartbeats
    grace_period: int = Field(90, ge=2)  # ... and how old one may get before the trial fails
    max_failed: int = Field(5, ge=1)  # stop the study after this many failed trials
    min_complete: int = Field(1, ge=1)  # fewer completed trials: `cea hpo` exits 1
    runs_dir: str = "runs/hpo"
    space: dict[str, ParamSpec] = Field(default_factory=_default_space)


class RegistryConfig(_Strict):
    """`cea register-model`'s promotion gate: a protected alias needs the weights logged at
    training time and an evaluation metric at or above the minimum."""

    protected_aliases: list[str] = ["champion"]
    gate_metric: Literal["macro_f1", "micro_f1"] = "macro_f1"
    gate_min: float = Field(0.5, ge=0.0, le=1.0)
    # point: the metric itself; lower: the lower bound of its 95 % interval (from `cea eval`)
    gate_on: Literal["point", "lower"] = "point"


SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


class CeaConfig(_Strict):
    seed: int = Field(13, ge=0, le=SEED_MAX)
    data: DataConfig = DataConfig()
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    augment: AugmentConfig = AugmentConfig()
    output: OutputConfig = OutputConfig()
    tracking: TrackingConfig = TrackingConfig()
    registry: RegistryConfig = RegistryConfig()
    hpo: HpoConfig = HpoConfig()

    def config_hash(self) -> str:
        """Hash of what a model depends on: not where outputs go or how they are tracked."""
        relevant = self.model_dump(
            mode="json",
            exclude={
                "output": True,
                "tracking": True,
                "registry": True,
                "hpo": True,
                "augment": {"refit_tfidf", "cache_dir", "key_file"},  # where, not what
            },
        )
        return sha256_bytes(canonical_json(relevant).encode())[:16]


PACKAGED_CONFIGS = ("default", "tiny")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def packaged_config_text(name: str) -> str:
    ref = resources.files("cea.resources") / "configs" / f"{name}.yaml"
    return ref.read_text(encoding="utf-8")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], value); the value is parsed as a YAML scalar/list."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key.path=value", hint="e.g. train.epochs=2")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(f"override key {key!r} is not a dotted path of names")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: value {raw!r} is not valid YAML") from exc
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-4" as a string; people mean a number
    return parts, value


def apply_override(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {'.'.join(parts)}: {part} is not a section")
        node = nxt
    node[parts[-1]] = value


def _read_yaml(source: str | Path | None) -> tuple[dict[str, Any], str]:
    if source is None:
        return safe_load_yaml(packaged_config_text("default")) or {}, "packaged:default"
    path = Path(source)
    if not path.exists() and str(source) in PACKAGED_CONFIGS:
        return safe_load_yaml(packaged_config_text(str(source))) or {}, f"packaged:{source}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MissingResourceError(
            f"config file {path} not found",
            hint=f"give a YAML file or one of the packaged configs: {', '.join(PACKAGED_CONFIGS)}",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is unreadable ({exc.__class__.__name__})") from exc
    try:
        data = safe_load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc.message}", hint=exc.hint) from exc
    except RecursionError as exc:
        raise ConfigError(f"config file {path} is nested too deeply") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data, str(path)


def load_config(
    source: str | Path | CeaConfig | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> CeaConfig:
    """Build the config: defaults < YAML (or a CeaConfig) < overrides < explicit flags
    (dotted keys; None values are left out)."""
    if isinstance(source, CeaConfig):
        if not overrides and not any(v is not None for v in (flags or {}).values()):
            return source
        tree, origin = source.model_dump(mode="json"), "a CeaConfig"
    else:
        tree, origin = _read_yaml(source)
    given: set[str] = set()
    for item in overrides:
        parts, value = parse_override(item)
        apply_override(tree, parts, value)
        given.add(".".join(parts))
    for key, value in (flags or {}).items():
        if value is not None:
            apply_override(tree, key.split("."), value)
            given.add(key)
    if "data.path" in given and "data.format" not in given and isinstance(tree.get("data"), dict):
        tree["data"].pop("format", None)  # a new path: its format follows from it
    try:
        return CeaConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {loc}: {first['msg']}{more}") from exc
