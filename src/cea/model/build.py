"""Builders for tokenizers and classification models (Hugging Face classes, local files only)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cea.errors import IntegrityError, MissingResourceError
from cea.model.backbone import Backbone, resolve_backbone
from cea.model.hf import quiet_transformers

__all__ = [
    "build_model",
    "check_vocabulary",
    "load_tokenizer",
    "load_trained",
    "quiet_transformers",
]


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
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # tokenizers' own errors on a damaged tokenizer.json
        raise IntegrityError(
            f"{bb.path}: unreadable tokenizer files ({exc.__class__.__name__})",
            hint="the backbone folder is damaged; copy it again from its source",
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
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # safetensors' errors on a truncated file, shape mismatches
        raise IntegrityError(
            f"{backbone.path}: unreadable or mismatched model weights "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
            hint="the backbone folder is damaged; copy it again from its source",
        ) from exc


def check_vocabulary(tokenizer: Any, model: Any, where: Path) -> None:
    """A tokenizer that makes ids the model has no embedding for fails in the first forward
    pass (IndexError deep in torch): refuse it up front, naming the folder."""
    try:
        rows = int(model.get_input_embeddings().num_embeddings)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - no embedding table
        return
    size = len(tokenizer)
    # the largest id it makes (a vocabulary with gaps counts higher than its length)
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        size = max(size, max(tokenizer.get_vocab().values(), default=-1) + 1)
    if size > rows:
        raise IntegrityError(
            f"{where}: the tokenizer has {size} tokens but the model's embeddings only {rows} "
            "rows (tokenizer and weights do not belong together)",
            hint="use the tokenizer saved with these weights",
        )


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

        try:
            config = AutoConfig.from_pretrained(str(run_dir), local_files_only=True)  # nosec B615 - a local folder, local_files_only
            model = AutoModelForSequenceClassification.from_config(config)  # type: ignore[no-untyped-call]
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # a config.json that transformers refuses
            raise IntegrityError(
                f"{run_dir / 'config.json'}: not a usable model config ({exc.__class__.__name__})"
            ) from exc
        try:
            state = safetensors.torch.load(weights)
        except Exception as exc:  # a header or tensor that safetensors refuses
            raise IntegrityError(f"{run_dir}: unreadable model weights ({exc})") from exc
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor of another shape (num_labels, hidden size)
            raise IntegrityError(
                f"{run_dir}: the weights do not fit config.json "
                f"({str(exc).strip().splitlines()[-1].strip()[:160]})"
            ) from exc
        if result.missing_keys or result.unexpected_keys:
            raise IntegrityError(
                f"{run_dir}: the weights do not fit config.json (missing "
                f"{len(result.missing_keys)}, unexpected {len(result.unexpected_keys)} tensors)"
            )
        model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir), local_files_only=True)  # nosec B615 - a local folder, local_files_only
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise IntegrityError(
            f"{run_dir}: unreadable tokenizer files ({exc.__class__.__name__})"
        ) from exc
    check_vocabulary(tokenizer, model, run_dir)
    return model, tokenizer
