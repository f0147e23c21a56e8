"""Settings of the transformers library that every model module shares (the bottom of `model/`)."""

from __future__ import annotations


def quiet_transformers() -> None:
    """No download/progress chatter from transformers: cea has its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
