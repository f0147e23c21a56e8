"""Builders for tokenizers and classification models (Hugging Face classes, local files only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cea.errors import MissingResourceError
from cea.model.backbone import Backbone, resolve_backbone
from cea.model.hf import quiet_transformers

__all__ = ["build_model", "load_tokenizer", "load_trained", "quiet_transformers"]


def load_tokenizer(spec: str | Backbone) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    bb = resolve_backbone(spec) if isinstance(spec, str) else spec
    try:
        return AutoTokenizer.from_pretrained(str(bb.path), local_files_only=True)  # nosec B615 - a local folder, local_files_only
    except (OSError, ValueError) as exc:
        raise MissingResourceError(
            f"cannot load a tokenizer from {bb.path} ({exc.__class__.__name__})"
        ) from exc


def build_model(
    backbone: Backbone,
    *,
    labels: tuple[str, ...],
    pair: bool,
    dropout: float | None = None,
) -> Any:
    """AutoModelForSequenceClassification over the backbone.

    Post level: one logit per label (multi-label). Sentence level: one logit, "meets criterion",
    for a (criterion description, sentence) pair.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    quiet_transformers()
    names = ("MEETS_CRITERION",) if pair else labels
    try:
        config = AutoConfig.from_pretrained(str(backbone.path), local_files_only=True)  # nosec B615 - a local folder, local_files_only
    except (OSError, ValueError) as exc:
        raise MissingResourceError(f"cannot read the model config in {backbone.path}") from exc
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.problem_type = "multi_label_classification"
    if dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"):
            if hasattr(config, key):
                setattr(config, key, dropout)
    try:
        return AutoModelForSequenceClassification.from_pretrained(  # nosec B615 - a local folder, local_files_only
            str(backbone.path), config=config, local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise MissingResourceError(
            f"cannot load model weights from {backbone.path} ({exc})"
        ) from exc


def load_trained(run_dir: Path, weights: bytes | None = None) -> tuple[Any, Any]:
    """The model and tokenizer saved at a run folder's root. `weights`: the already verified
    bytes of its `model.safetensors` — the model is built from `config.json` and these bytes,
    and the weights file is not read again (a swap after the check is never loaded)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    if weights is None:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(run_dir), local_files_only=True
        )  # nosec B615 - a local folder, local_files_only
    else:
        import safetensors.torch

        from cea.errors import IntegrityError

        config = AutoConfig.from_pretrained(str(run_dir), local_files_only=True)  # nosec B615 - a local folder, local_files_only
        model = AutoModelForSequenceClassification.from_config(config)  # type: ignore[no-untyped-call]
        try:
            state = safetensors.torch.load(weights)
        except Exception as exc:  # a header or tensor that safetensors refuses
            raise IntegrityError(f"{run_dir}: unreadable model weights ({exc})") from exc
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise IntegrityError(
                f"{run_dir}: the weights do not fit config.json (missing "
                f"{len(result.missing_keys)}, unexpected {len(result.unexpected_keys)} tensors)"
            )
        model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir), local_files_only=True)  # nosec B615 - a local folder, local_files_only
    return model, tokenizer
