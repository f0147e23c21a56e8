"""A synthetic dataset in the ReDSM5 layout, written in our own words.

Every label gets evidence sentences (status 1) and explicit-absence sentences (status 0, a
clinician marking that the topic comes up but the symptom is not there); about a fifth of the
posts are symptom-free; lengths vary from a few sentences to long rambling posts, so that
truncation and chunking have something to do. Nothing here is real patient text.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

from cea.data.schema import ANNOTATIONS_FILE, POSTS_FILE
from cea.security.io import atomic_write_text

_WHEN = [
    "lately",
    "for weeks now",
    "since the spring",
    "most days",
    "these past months",
    "every single day",
    "since I moved",
    "for a while now",
    "again this month",
    "all winter",
]

POSITIVE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "I feel empty and sad {when}.",
        "Everything feels hopeless {when} and I cry without knowing why.",
        "There is a heavy grey cloud over me {when}.",
        "I have been so down {when} that nothing lifts my mood.",
        "Most mornings I wake up already feeling miserable.",
        "I just feel numb and low {when}.",
    ],
    "ANHEDONIA": [
        "I stopped enjoying the games I used to love {when}.",
        "Nothing is fun anymore, not even music.",
        "I used to paint every weekend but now I can't be bothered.",
        "Going out with friends gives me no pleasure {when}.",
        "Hobbies that once excited me feel pointless now.",
        "I don't care about anything I used to be into.",
    ],
    "APPETITE_CHANGE": [
        "I barely eat {when} and I have lost a lot of weight.",
        "I keep eating all night and gained almost ten kilos.",
        "Food tastes like cardboard and I skip most meals.",
        "My appetite is gone {when}.",
        "I have been stress eating {when} and my clothes no longer fit.",
        "I forget to eat for whole days.",
    ],
    "SLEEP_ISSUES": [
        "I lie awake until four in the morning {when}.",
        "I sleep twelve hours and still want to stay in bed.",
        "My insomnia is terrible {when}.",
        "I wake up at 3am every night and can't fall back asleep.",
        "I have been sleeping through entire afternoons {when}.",
        "Sleep just won't come no matter how tired I am.",
    ],
    "PSYCHOMOTOR": [
        "I move so slowly {when} that people ask if I am okay.",
        "I can't sit still and keep pacing around my room.",
        "My body feels like it is moving through mud.",
        "I fidget constantly and my hands won't stop shaking.",
        "Even talking feels slowed down {when}.",
        "I feel restless and agitated all the time.",
    ],
    "FATIGUE": [
        "I am exhausted all the time {when}.",
        "Even a shower wipes me out for the day.",
        "I have no energy to do anything {when}.",
        "I feel drained from the moment I get up.",
        "Climbing the stairs leaves me completely worn out.",
        "My whole body feels heavy and tired {when}.",
    ],
    "WORTHLESSNESS": [
        "I feel like a complete failure and a burden to everyone.",
        "I am worthless and everyone would be better off without me around.",
        "I keep blaming myself for things that are not my fault.",
        "I hate myself {when}.",
        "The guilt eats at me over every small mistake.",
        "I don't deserve the people in my life.",
    ],
    "COGNITIVE_ISSUES": [
        "I can't concentrate on anything {when}.",
        "I read the same page five times and nothing sticks.",
        "Making even small decisions feels impossible.",
        "My mind is foggy and I forget what I was saying.",
        "I can't focus at work {when} and my boss noticed.",
        "My thoughts are slow and scattered.",
    ],
    "SUICIDAL_THOUGHTS": [
        "I keep thinking about ending my life.",
        "Sometimes I wish I could just not wake up.",
        "I have been thinking about death {when}.",
        "I looked up ways to kill myself last night.",
        "I think everyone would be fine if I died.",
        "The thought of disappearing forever comes back {when}.",
    ],
    "SPECIAL_CASE": [
        "My grandmother passed away last month and I miss her terribly.",
        "A few weeks ago I barely slept for days and felt unstoppable, buying things I can't afford.",
        "Since my dog died the house feels so quiet.",
        "Last year I had a stretch where my thoughts raced and I felt on top of the world.",
        "I am grieving my father and some days are harder than others.",
    ],
}

NEGATIVE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "My mood has actually been pretty good {when}.",
        "I don't feel sad, just busy.",
    ],
    "ANHEDONIA": [
        "I still enjoy playing guitar with my friends.",
        "I love my hobbies as much as ever.",
    ],
    "APPETITE_CHANGE": [
        "My appetite is normal and I eat regular meals.",
        "My weight hasn't changed at all.",
    ],
    "SLEEP_ISSUES": [
        "I sleep fine, about eight hours a night.",
        "Sleep has never been a problem for me.",
    ],
    "PSYCHOMOTOR": [
        "I feel calm and move around normally.",
        "Nobody has noticed anything odd about how I move.",
    ],
    "FATIGUE": [
        "I have plenty of energy for work and the gym.",
        "I'm not tired, I go running most mornings.",
    ],
    "WORTHLESSNESS": [
        "I know I am a good friend and I like who I am.",
        "I don't blame myself for what happened.",
    ],
    "COGNITIVE_ISSUES": [
        "I can focus on my studies without trouble.",
        "My memory and concentration are fine.",
    ],
    "SUICIDAL_THOUGHTS": [
        "I have never thought about hurting myself.",
        "I would never end my life, I want to live.",
    ],
    "SPECIAL_CASE": [
        "Nobody close to me has died recently.",
        "I have never had days where I felt unstoppable.",
    ],
}

FILLER = [
    "I work at a warehouse and my shifts change every week.",
    "My sister visited over the weekend.",
    "I'm a second year student studying biology.",
    "We adopted a cat named Pickles in March.",
    "The weather here has been rainy and cold.",
    "I have been thinking about changing jobs.",
    "My roommate is moving out at the end of the month.",
    "I started a new medication a few weeks ago but I'm not sure it does anything.",
    "I saw my doctor on Tuesday.",
    "My parents live about two hours away.",
    "I'm not sure this is the right subreddit for this.",
    "Sorry for the long post, I just needed to write this down.",
    "Thanks for reading if you got this far.",
    "I tried journaling like my therapist suggested.",
    "The bus to work takes almost an hour.",
    "My team at work is small but friendly.",
    "I've been watching a lot of old movies.",
    "My birthday is coming up next week.",
    "I used to live near the coast.",
    "I go to the library on Saturdays.",
    "My brother just had a baby.",
    "I cooked pasta for dinner tonight.",
    "The rent went up again this year.",
    "I finally fixed the leaking tap in the kitchen.",
]

OPENERS = [
    "Throwaway account because people I know use this site.",
    "I don't really know how to start this.",
    "First time posting here.",
    "Long time lurker.",
    "Not sure what I'm looking for by posting this.",
]

CLOSERS = [
    "Does anyone else feel this way?",
    "Any advice would help.",
    "I don't know what to do anymore.",
    "Thanks for listening.",
    "Has anyone been through something like this?",
]

LABELS = tuple(POSITIVE)


@dataclass(frozen=True)
class SampleStats:
    posts: int
    annotations: int
    label_counts: dict[str, int]
    symptom_free: int


def _fill(template: str, rng: random.Random) -> str:
    return template.format(when=rng.choice(_WHEN)) if "{when}" in template else template


PROFILES = ("short", "long", "hard")  # hard: cea.data.sample_hard


def _filler_count(rng: random.Random, profile: str) -> int:
    if profile == "long":
        # lengths of real posts (ReDSM5: mean ~295 words, median ~200, a tail to thousands):
        # lognormal sentence counts of ~9 words each, mean ~30, capped at 600
        return min(600, int(rng.lognormvariate(3.1, 0.8)))
    length_class = rng.random()
    if length_class < 0.6:
        return rng.randint(0, 3)
    if length_class < 0.92:
        return rng.randint(4, 10)
    return rng.randint(25, 60)  # the long tail of real posts


def generate_sample(
    n_posts: int, seed: int, profile: str = "short"
) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Return (posts [(post_id, text)], annotation rows) of a synthetic ReDSM5-style dataset.
    `profile="long"` draws post lengths like real posts (mean ~280 words, a long tail), with
    the evidence in one or two places of the post. `profile="hard"`: the real data's
    difficulties (sparse evidence, co-occurring and rare criteria, distractors), see
    `cea.data.sample_hard`."""
    if profile == "hard":
        from cea.data.sample_hard import generate_hard

        return generate_hard(n_posts, seed)
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not cryptography
    posts: list[tuple[str, str]] = []
    rows: list[list[str]] = []
    for i in range(n_posts):
        pid = f"s_{seed}_{i:04d}"
        symptom_free = rng.random() < 0.2
        n_symptoms = 0 if symptom_free else rng.choices([1, 2, 3, 4], weights=[4, 3, 2, 1])[0]
        # cycle labels so that every label appears even in small samples
        chosen = set(rng.sample(LABELS, n_symptoms))
        if not symptom_free and i < len(LABELS):
            chosen.add(LABELS[i])
        negated = set(
            rng.sample([lab for lab in LABELS if lab not in chosen], rng.choice([0, 1, 1, 2]))
        )
        sentences: list[tuple[str, str | None, int | None]] = []
        # label order, not set order: set order of strings changes with each process's hash
        # seed, and with it every later draw (the same seed must give the same data anywhere)
        for lab in sorted(chosen, key=LABELS.index):
            for tmpl in rng.sample(POSITIVE[lab], rng.choice([1, 1, 2])):
                sentences.append((_fill(tmpl, rng), lab, 1))
        for lab in sorted(negated, key=LABELS.index):
            sentences.append((_fill(rng.choice(NEGATIVE[lab]), rng), lab, 0))
        n_filler = _filler_count(rng, profile)
        for _ in range(n_filler):
            sentences.append((rng.choice(FILLER), None, None))
        if not sentences:
            sentences.append((rng.choice(FILLER), None, None))
        rng.shuffle(sentences)
        if rng.random() < 0.5:
            sentences.insert(0, (rng.choice(OPENERS), None, None))
        if rng.random() < 0.6:
            sentences.append((rng.choice(CLOSERS), None, None))
        text_parts: list[str] = []
        for j, (sent, label, status) in enumerate(sentences):
            text_parts.append(sent)
            if label is not None and status is not None:
                rows.append([pid, f"{pid}_{j}", sent, label, str(status), ""])
        # paragraph breaks now and then, as in real posts
        text = ""
        for j, part in enumerate(text_parts):
            sep = "" if j == 0 else ("\n\n" if rng.random() < 0.15 else " ")
            text += sep + part
        posts.append((pid, text))
    return posts, rows


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_sample(out: Path, n_posts: int, seed: int, profile: str = "short") -> SampleStats:
    posts, rows = generate_sample(n_posts, seed, profile)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / POSTS_FILE, _csv_text(["post_id", "text"], [list(p) for p in posts]))
    atomic_write_text(
        out / ANNOTATIONS_FILE,
        _csv_text(
            ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"],
            rows,
        ),
    )
    counts: dict[str, int] = dict.fromkeys(LABELS, 0)
    with_pos: set[str] = set()
    for r in rows:
        if r[4] == "1":
            counts[r[3]] += 1
            with_pos.add(r[0])
    return SampleStats(len(posts), len(rows), counts, len(posts) - len(with_pos))
