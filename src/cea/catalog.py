"""The names a config may use for augmenters, below `cea.config` so that it can check them when
a config is loaded (an unknown name is a config error, exit 3, before any work starts).

`cea.augment.registry` builds each of these names (a test holds the two lists equal).
"""

from __future__ import annotations

from cea.errors import ConfigError

AUGMENTER_NAMES: tuple[str, ...] = (
    "char_keyboard",
    "char_ocr",
    "char_insert",
    "char_substitute",
    "char_swap",
    "char_delete",
    "word_swap",
    "word_delete",
    "word_crop",
    "word_split",
    "spelling",
    "wordnet_synonym",
    "wordnet_antonym",
    "tfidf_substitute",
    "tfidf_insert",
    "eda_synonym_replacement",
    "eda_random_insertion",
    "eda_random_swap",
    "eda_random_deletion",
    "contextual_mlm",
)
# nlpaug classes cea can run (`nlpaug:KeyboardAug`), from an allow-list: a config never names
# code to import
NLPAUG_CHAR: tuple[str, ...] = ("KeyboardAug", "OcrAug", "RandomCharAug")
NLPAUG_WORD: tuple[str, ...] = ("RandomWordAug", "SpellingAug", "SplitAug")
NLPAUG_NAMES: tuple[str, ...] = NLPAUG_CHAR + NLPAUG_WORD


def check_augmenter_names(names: list[str], allow_antonyms: bool) -> None:
    """Config-time validation: known names; antonyms only when asked for."""
    for name in names:
        known = name in AUGMENTER_NAMES or (
            name.startswith("nlpaug:") and name.split(":", 1)[1] in NLPAUG_NAMES
        )
        if not known:
            raise ConfigError(
                f"augment.augmenters: unknown or unsupported augmenter {name!r}",
                hint="`cea augment list` shows the names",
            )
        if "antonym" in name and not allow_antonyms:
            raise ConfigError(
                f"augment.augmenters: {name} flips meanings; set augment.allow_antonyms: true"
            )
