"""Augmentation: registry, protection, determinism across workers, training split only, the
HMAC-verified TF-IDF cache, the nlpaug adapter, the masked-LM plumbing, WordNet provisioning."""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import joblib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cea.augment.base import Protection, Tokens
from cea.augment.registry import SPECS, Resources, availability, build
from cea.augment.wordnet import SYSTEM_DICT, default_roots, find_wordnet

WORDNET = find_wordnet(default_roots())
SENTENCE = (
    "I have not been sleeping well and I never feel rested even after ten hours in bed "
    "because my mind keeps racing about work and money"
)


@lru_cache(maxsize=1)
def _resources() -> Resources:
    from cea.augment.tfidf import TfidfModel

    texts = [SENTENCE, "I feel tired and sad every single day", "work is hard and money is short"]
    idf = {w: 1.0 + (i % 5) for i, w in enumerate(sorted({w for t in texts for w in t.split()}))}
    return Resources(wordnet_folder=WORDNET, tfidf=TfidfModel(idf))


def _cli_cache_args(tmp_path: Path) -> list[str]:
    return [f"augment.cache_dir={tmp_path / 'cache'}", f"augment.key_file={tmp_path / 'key'}"]


def test_list_shows_at_least_12_available(cli) -> None:
    res = cli("augment", "list", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    own = [a for a in out["augmenters"] if a["available"] and not a["name"].startswith("nlpaug:")]
    assert len(own) >= 12
    by_name = {a["name"]: a for a in out["augmenters"]}
    assert by_name["contextual_mlm"]["available"] is False
    assert "mlm_path" in by_name["contextual_mlm"]["reason"]
    assert by_name["nlpaug:SynonymAug"]["available"] is False
    if WORDNET is None:
        assert "WordNet" in by_name["wordnet_synonym"]["reason"]


LOCKED_WORDS = ["not", "never", "suicidal", "self", "harm"]


@settings(max_examples=40, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(
            [
                "i",
                "feel",
                "tired",
                "and",
                "sad",
                "every",
                "day",
                "because",
                "work",
                "keeps",
                "me",
                "awake",
                "at",
                "night",
            ]
        ),
        min_size=3,
        max_size=25,
    ),
    positions=st.lists(st.integers(0, 30), min_size=1, max_size=3),
    seed=st.integers(0, 10_000),
)
def test_protected_terms_survive_every_augmenter(words, positions, seed) -> None:
    words = list(words)
    for k, pos in enumerate(positions):
        words.insert(min(pos, len(words)), ["not", "never", "suicidal", "self harm"][k % 4])
    text = " ".join(words)
    protect = Protection.build(["suicidal", "self harm"])
    res = _resources()
    expected = {w: text.split().count(w) for w in LOCKED_WORDS}
    for spec in SPECS:
        if not availability(spec.name, res).available or spec.kind == "model":
            continue
        tokens = Tokens.of(text, protect)
        build(spec.name, res).apply(tokens, random.Random(seed), budget=len(words))
        out = tokens.text().split()
        for w, n in expected.items():
            assert out.count(w) >= n, (spec.name, w, text, tokens.text())
        # locked words never move relative to each other (swaps skip them)
        locked_seq = [w for w in text.split() if w in expected]
        assert [w for w in out if w in expected][: len(locked_seq)] == locked_seq or spec.name in (
            "tfidf_insert",
            "eda_random_insertion",
        )


def test_antonyms_need_opt_in_and_unknown_names_are_config_errors(cli) -> None:
    res = cli("augment", "list", "augment.augmenters={wordnet_antonym: 1}")
    assert res.exit_code == 3
    assert "allow_antonyms" in res.stderr
    res = cli("augment", "list", "augment.augmenters={nope: 1}")
    assert res.exit_code == 3
    ok = cli(
        "augment", "list", "augment.augmenters={wordnet_antonym: 1}", "augment.allow_antonyms=true"
    )
    assert ok.exit_code == 0


def _dataset(tiny_backbone: Path, data: Path, prob: float = 0.5, pair: bool = False):
    from cea.augment.build import build_augmentation
    from cea.augment.dataset import AugmentedDataset
    from cea.config import load_config
    from cea.data.prepare import prepare_data
    from cea.model.build import load_tokenizer
    from cea.model.features import featurize

    cfg = load_config(
        "tiny",
        [
            f"data.path={data}",
            f"model.backbone={tiny_backbone}",
            "augment.enabled=true",
            f"augment.prob={prob}",
            "augment.ops_per_example=2",
            "augment.augmenters={char_keyboard: 1, word_swap: 1, word_delete: 1, spelling: 1, char_ocr: 1}",
            *(["task.level=sentence", "task.negatives=all"] if pair else []),
        ],
    )
    prepared = prepare_data(cfg)
    tok = load_tokenizer(str(tiny_backbone))
    kwargs = {
        "max_length": 64,
        "labels": prepared.labels,
        "descriptions": prepared.descriptions if pair else None,
        "chunking": not pair,
        "stride": 16,
        "max_chunks": 4,
    }
    feats = featurize(prepared.examples["train"], tok, **kwargs)
    aug = build_augmentation(cfg.augment, cfg.seed, Resources())
    return AugmentedDataset(feats, prepared.examples["train"], tok, aug, kwargs), prepared


def _epoch_rows(ds, epoch: int, workers: int) -> dict[int, list[int]]:
    from torch.utils.data import DataLoader

    from cea.model.features import BucketBatchSampler, collate

    sampler = BucketBatchSampler(ds.f.lengths(), 8, seed=3)
    sampler.set_epoch(epoch)
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)
    rows: dict[int, list[int]] = {}
    for batch in loader:
        for r, ids, mask in zip(
            batch["row"], batch["input_ids"], batch["attention_mask"], strict=True
        ):
            rows[int(r)] = ids[mask.bool()].tolist()
    return rows


def test_same_augmented_epoch_with_0_and_2_workers(tiny_backbone: Path, small_sample: Path) -> None:
    ds, _ = _dataset(tiny_backbone, small_sample)
    zero = _epoch_rows(ds, 1, 0)
    two = _epoch_rows(ds, 1, 2)
    assert zero == two
    assert len(zero) == len(ds)
    base = {i: ds.f.input_ids[i] for i in range(len(ds))}
    changed = [i for i in zero if zero[i] != base[i]]
    assert 0 < len(changed) < len(ds)  # prob 0.5: some rows, not all
    other = _epoch_rows(ds, 2, 0)
    assert other != zero  # a new draw every epoch


def test_only_augmented_examples_are_retokenized(tiny_backbone: Path, small_sample: Path) -> None:
    ds, _ = _dataset(tiny_backbone, small_sample, prob=0.0)
    rows = ds.__getitems__(list(range(len(ds))))
    assert all(r["input_ids"] is ds.f.input_ids[r["row"]] for r in rows)  # the base rows, as is
    assert all(r["aug"] is None for r in rows)


def test_training_with_augmentation_logs_statistics_and_leaves_eval_splits_alone(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    from cea.config import load_config
    from cea.tracking.base import RecordingTracker
    from cea.train.run import run_training

    cfg = load_config(
        "tiny",
        [
            f"data.path={small_sample}",
            f"model.backbone={tiny_backbone}",
            f"output.runs_dir={tmp_path}",
            "train.epochs=2",
            "augment.enabled=true",
            "augment.prob=1.0",
            "augment.protected_terms=[sleep]",
            "augment.augmenters={char_keyboard: 1, word_swap: 1, tfidf_substitute: 1}",
            *_cli_cache_args(tmp_path),
        ],
    )
    tracker = RecordingTracker()
    summary = run_training(cfg, tmp_path / "run", tracker=tracker)
    history = summary.meta["history"]
    n_train = summary.meta["examples"]["train"]
    for h in history:
        assert h["augment"]["examples"] == n_train  # the training split only
        assert h["augment"]["augmented"] == n_train  # prob 1.0
        assert sum(h["augment"]["per_augmenter"].values()) == n_train
        assert 0 < h["augment"]["changed_word_ratio"] <= cfg.augment.max_replace_ratio
    names = {k for k, _, _ in tracker.metrics}
    assert {"augment/augmented", "augment/changed_word_ratio"} <= names
    assert any(k.startswith("augment/count/tfidf_substitute") for k in names)
    assert not any("augmented_examples" in a for a, _ in tracker.artifacts)  # texts: opt-in
    # validation metrics come from unaugmented features: same as scoring the saved model
    assert summary.meta["metrics"]["validation"]["macro_f1"] >= 0.0


def test_tampered_tfidf_cache_is_refused_with_exit_8(
    cli, tmp_path: Path, small_sample: Path
) -> None:
    args = [
        "augment", "preview", "--config", "tiny", "-n", "2", "--json",
        f"data.path={small_sample}", "augment.prob=1.0",
        "augment.augmenters={tfidf_substitute: 1}", *_cli_cache_args(tmp_path),
    ]  # fmt: skip
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["resources"]["tfidf"] == "fitted"
    again = cli(*args)
    assert json.loads(again.stdout)["resources"]["tfidf"] == "loaded"
    (entry,) = (tmp_path / "cache" / "tfidf").glob("*.joblib")
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    joblib.dump(Evil(), entry)  # same name, old HMAC sidecar
    res = cli(*args)
    assert res.exit_code == 8
    assert "HMAC" in res.stderr and "refit" in res.stderr
    assert not marker.exists()
    foreign = cli(
        *args[:-2],
        f"augment.cache_dir={tmp_path / 'cache'}",
        f"augment.key_file={tmp_path / 'other-key'}",
    )
    assert foreign.exit_code == 8  # a valid entry signed with another key is foreign
    assert not marker.exists()
    refit = cli(*args, "--refit")
    assert refit.exit_code == 0, refit.stderr
    assert json.loads(refit.stdout)["resources"]["tfidf"] == "refitted"
    assert json.loads(cli(*args).stdout)["resources"]["tfidf"] == "loaded"
    assert not marker.exists()


def test_preview_shows_training_examples_only(cli, tmp_path: Path, small_sample: Path) -> None:
    from cea.config import load_config
    from cea.data.prepare import prepare_data

    res = cli("augment", "preview", "--config", "tiny", "-n", "50", "--json", f"data.path={small_sample}", "augment.prob=1.0")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    shown = json.loads(res.stdout)["examples"]
    prepared = prepare_data(load_config("tiny", [f"data.path={small_sample}"]))
    train_ids = {e.example_id for e in prepared.examples["train"]}
    assert {s["id"] for s in shown} <= train_ids
    assert any(s["original"] != s["augmented"] for s in shown)
    human = cli("augment", "preview", "--config", "tiny", "-n", "2", f"data.path={small_sample}")
    assert human.exit_code == 0 and "augmented" in human.stdout


def test_nlpaug_adapter_is_deterministic_and_respects_protection() -> None:
    from cea.augment.nlpaug_adapter import NlpaugAugmenter

    aug = NlpaugAugmenter("KeyboardAug")
    protect = Protection.build(["suicidal"])
    outs = []
    for _ in range(2):
        tokens = Tokens.of("I am not suicidal but I feel tired and sad all day long", protect)
        aug.apply(tokens, random.Random(7), budget=4)
        outs.append(tokens.text())
    assert outs[0] == outs[1]
    assert outs[0] != "I am not suicidal but I feel tired and sad all day long"
    assert "not" in outs[0].split() and "suicidal" in outs[0].split()
    with pytest.raises(ValueError, match="not supported"):
        NlpaugAugmenter("SynonymAug")


def test_masked_lm_augmenter_with_a_tiny_random_mlm(tiny_backbone: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig.from_pretrained(str(tiny_backbone))
    mlm = BertForMaskedLM(cfg)
    folder = tmp_path / "mlm"
    mlm.save_pretrained(str(folder))
    for f in tiny_backbone.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special")):
            (folder / f.name).write_bytes(f.read_bytes())
    res = Resources(mlm_path=folder)
    assert availability("contextual_mlm", res).available
    aug = build("contextual_mlm", res)
    tokens = Tokens.of("i feel tired and sad every day because of work", Protection.build([]))
    changed = aug.apply(tokens, random.Random(1), budget=2)
    assert changed >= 1
    assert tokens.text() != "i feel tired and sad every day because of work"


def test_wordnet_provisioning(tmp_path: Path) -> None:
    from cea.augment.wordnet import main, provision

    with pytest.raises(FileNotFoundError):
        provision(tmp_path / "nothing", tmp_path / "root")
    assert main([str(tmp_path / "nothing")]) == 0  # optional: the install goes on
    if not (SYSTEM_DICT / "data.noun").is_file():
        pytest.skip("Debian wordnet-base is not installed (make install provisions it)")
    target = provision(SYSTEM_DICT, tmp_path / "nltk_data")
    assert find_wordnet([tmp_path / "nltk_data"]) == target
    assert len((target / "lexnames").read_text().splitlines()) == 45
    assert not any(p.is_symlink() for p in target.iterdir())
    res = Resources(wordnet_folder=target)
    assert "unhappy" in res.wordnet().antonyms("happy")
    assert res.wordnet().synonyms("tired")


@pytest.mark.parametrize("pair", [False, True])
def test_identity_augmentation_retokenizes_to_the_base_rows(
    tiny_backbone: Path, small_sample: Path, pair: bool
) -> None:
    from cea.augment.base import IdentityAugmenter

    ds, _ = _dataset(tiny_backbone, small_sample, prob=1.0, pair=pair)
    ident = IdentityAugmenter()
    ds.aug.augmenters, ds.aug.weights = [ident], [1.0]
    rows = ds.__getitems__(list(range(len(ds))))
    # every example went through augment -> re-tokenize; chunk k of the new text is row k
    assert [r["input_ids"] for r in rows] == ds.f.input_ids
    assert [r["token_type_ids"] for r in rows] == (ds.f.token_type_ids or [None] * len(rows))
    # and the Python path (featurize) gives the same rows as the Rust backend path
    ds._backend = None
    assert [r["input_ids"] for r in ds.__getitems__(list(range(len(ds))))] == ds.f.input_ids
    assert ident.calls and all(r["aug"] is not None for r in rows if ds.chunk[r["row"]] == 0)


# ---- issue #16: augmentation keeps the label (criteria lexicon) ---------------------------

from cea.augment.lexicon import build_lexicon  # noqa: E402
from cea.augment.policy import Augmentation  # noqa: E402

_LEX_DESCRIPTIONS = {
    "DEPRESSED_MOOD": "Feels sad, empty or hopeless, numb.",
    "FATIGUE": "Feels tired, exhausted, without energy.",
    "APPETITE_CHANGE": "Appetite or weight changes; clothes no longer fit; food tastes of cardboard.",
}
_LEX_WORDS = ["sad", "empty", "hopeless", "numb", "tired", "exhausted", "energy", "appetite",
              "weight", "clothes", "fit", "longer", "cardboard", "tastes", "grieving"]  # fmt: skip
_NEUTRAL = ["the", "bus", "was", "late", "today", "tried", "my", "parents", "called", "weeks",
            "fine", "work", "shift", "movie", "kitchen", "rain"]  # fmt: skip


def _lexicon():  # type: ignore[no-untyped-def]
    texts = ["I was grieving all week", "grieving is hard", "still grieving my dad"]
    texts += [f"a fine day number {i} at work" for i in range(17)]
    pos = [["DEPRESSED_MOOD"]] * 3 + [[]] * 17
    return build_lexicon(_LEX_DESCRIPTIONS, texts, pos)


def test_lexicon_holds_descriptions_and_words_associated_in_training() -> None:
    lx = _lexicon()
    for w in ("sad", "Numb,", "tiredness", "cardboard", "grieving"):  # grieving: from the data
        assert w in lx
    for w in ("tried", "parents", "weeks", "fine", "bus"):
        assert w not in lx
    assert lx.introduced("I tried hard", "I tired hard") == ("tir",)


class _Writer:
    """An adversarial augmenter: writes whatever word it is given, bypassing every check
    an augmenter could forget (as nlpaug or a masked LM would)."""

    name, kind = "writer", "word"

    def __init__(self, words: list[str]) -> None:
        self.words = words

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        for _ in range(budget):
            i = rng.randrange(len(tokens.words))
            tokens.words[i] = rng.choice(self.words)
        return budget


_GUARDED = ["writer", "char_swap", "word_swap", "word_delete", "spelling", "tfidf_substitute",
            "tfidf_insert"]  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    words=st.lists(st.sampled_from(_NEUTRAL + _LEX_WORDS), min_size=3, max_size=30),
    seed=st.integers(0, 10_000),
    which=st.sampled_from(_GUARDED),
)
def test_no_augmented_text_gains_a_lexicon_word(words: list[str], seed: int, which: str) -> None:
    from cea.augment.tfidf import TfidfModel

    lx = _lexicon()
    vocab = _NEUTRAL + _LEX_WORDS
    res = Resources(tfidf=TfidfModel({w: 1.0 + (i % 4) for i, w in enumerate(vocab)}))
    aug = _Writer(vocab) if which == "writer" else build(which, res)
    policy = Augmentation(1.0, 3, 0.5, [aug], [1.0], Protection.build([], True, lx), seed, lx)
    text = " ".join(words)
    out = policy.augment(text, random.Random(seed))
    assert not lx.introduced(text, out.text), (text, out.text)
    # lexicon words of the original stay (locked: never replaced or dropped)
    assert lx.counts(out.text) == lx.counts(text) or out.refused


def test_the_issues_tfidf_examples_are_refused() -> None:
    """'tastes grieving cardboard', 'The numb parents', 'no longer fit' -> 'no weeks fit'."""
    from cea.augment.tfidf import TfidfModel

    lx = _lexicon()
    res = Resources(tfidf=TfidfModel({w: 2.0 for w in ["grieving", "numb", "weeks", "bus"]}))
    policy = Augmentation(1.0, 2, 0.5, [build("tfidf_substitute", res)], [1.0],
                          Protection.build([], True, lx), 0, lx)  # fmt: skip
    for text in ("The food tastes like paper", "The happy parents", "My clothes no longer fit"):
        for s in range(30):
            out = policy.augment(text, random.Random(s))
            assert not lx.introduced(text, out.text)
            assert "longer" in out.text or "longer" not in text  # a lexicon word stays


def test_preview_marks_near_misses(cli, small_sample: Path, tmp_path: Path) -> None:
    res = cli("augment", "preview", "--config", "tiny", "-n", "60", "--json",
              f"data.path={small_sample}", "augment.prob=1.0", "augment.ops_per_example=3",
              "augment.augmenters={tfidf_substitute: 1.0, tfidf_insert: 1.0}",
              *_cli_cache_args(tmp_path))  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lexicon"]["FATIGUE"]  # the lexicon is shown
    misses = [e for e in out["examples"] if e["near_misses"]]
    assert misses  # the TF-IDF vocabulary of symptom posts is full of symptom words
    human = cli("augment", "preview", "--config", "tiny", "-n", "60", f"data.path={small_sample}",
                "augment.prob=1.0", "augment.ops_per_example=3",
                "augment.augmenters={tfidf_substitute: 1.0, tfidf_insert: 1.0}",
                *_cli_cache_args(tmp_path))  # fmt: skip
    assert "near-miss" in human.stdout


def test_config_catalog_names_exactly_what_the_registry_builds() -> None:
    """`cea.catalog` (checked when a config loads) and `cea.augment.registry` (which builds
    the augmenters) live in different layers; they must name the same augmenters."""
    from cea import catalog
    from cea.augment.registry import SPECS

    assert [s.name for s in SPECS] == list(catalog.AUGMENTER_NAMES)
