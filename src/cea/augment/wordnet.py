"""WordNet offline (DESIGN §7): Debian's `wordnet-base` + `wordnet-sense-index` dict files,
copied (NLTK refuses links that leave its root) into `<prefix>/nltk_data/corpora/wordnet`,
plus the `lexnames` file NLTK needs, generated from the 45 lexicographer file names.

`make install` runs `python -m cea.augment.wordnet` after apt-get; `cea doctor` shows the
result. Without it the WordNet augmenters are listed unavailable and training still works.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

SYSTEM_DICT = Path("/usr/share/wordnet")
NEEDED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
          "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc")  # fmt: skip
LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1),
    ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1),
    ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1),
    ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
    ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
    ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)  # fmt: skip


def default_roots(env_nltk_data: str | None = None) -> list[Path]:
    """Where NLTK itself looks (NLTK_DATA first, then the interpreter's prefix, home, system)."""
    roots = [Path(p) for p in (env_nltk_data or "").split(":") if p]
    roots += [Path(sys.prefix) / "nltk_data", Path.home() / "nltk_data"]
    roots += [Path(p) for p in ("/usr/share/nltk_data", "/usr/local/share/nltk_data")]
    return roots


def find_wordnet(roots: Sequence[Path]) -> Path | None:
    """The first `<root>/corpora/wordnet` with the dict files and `lexnames`."""
    for root in roots:
        folder = root / "corpora" / "wordnet"
        if (folder / "lexnames").is_file() and all((folder / n).is_file() for n in NEEDED):
            return folder
    return None


def provision(source: Path = SYSTEM_DICT, root: Path | None = None) -> Path:
    """Copy the dict files from `source` into `root/corpora/wordnet` and write `lexnames`."""
    root = root or Path(sys.prefix) / "nltk_data"
    missing = [n for n in NEEDED if not (source / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: missing {', '.join(missing[:3])}")
    target = root / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)  # copies: NLTK refuses outside links
    lines = [f"{i:02d}\t{name}\t{pos}" for i, (name, pos) in enumerate(LEXNAMES)]
    (target / "lexnames").write_text("\n".join(lines) + "\n", encoding="ascii")
    return target


class WordNet:
    """Synonyms and antonyms of single words from NLTK's WordNet reader (cached per word)."""

    def __init__(self, folder: Path) -> None:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        # NLTK >= 3.9 reads only below its data roots: authorise the root cea found
        root = str(folder.resolve().parent.parent)
        if root not in nltk.data.path:
            nltk.data.path.append(root)
        self.reader: Any = WordNetCorpusReader(str(folder), None)
        self.synonyms = lru_cache(maxsize=200_000)(self._synonyms)
        self.antonyms = lru_cache(maxsize=200_000)(self._antonyms)

    def _synonyms(self, word: str) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for syn in self.reader.synsets(word)[:6]:
            for lemma in syn.lemma_names():
                if "_" not in lemma and lemma.lower() != word and lemma.isalpha():
                    out[lemma.lower()] = None
        return tuple(out)

    def _antonyms(self, word: str) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for syn in self.reader.synsets(word)[:6]:
            for lemma in syn.lemmas():
                for ant in lemma.antonyms():
                    name = ant.name()
                    if "_" not in name and name.isalpha():
                        out[name.lower()] = None
        return tuple(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m cea.augment.wordnet [SOURCE]`: provision into this interpreter's prefix."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else SYSTEM_DICT
    try:
        target = provision(source)
    except FileNotFoundError as exc:
        sys.stderr.write(
            f"WordNet not provisioned ({exc}); install the Debian packages wordnet-base and "
            "wordnet-sense-index. The WordNet augmenters stay unavailable.\n"
        )
        return 0  # optional resource: the install goes on
    sys.stdout.write(f"WordNet ready in {target}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
