"""The `hard` synthetic profile: a ReDSM5-shaped dataset with the real data's difficulties.

What makes real ReDSM5 hard, reproduced here in our own words (nothing is real patient text):

- **long posts**: sentence counts drawn lognormally (mean ~300 words, a tail to thousands);
- **sparse evidence**: a post meets a criterion through one or two sentences among many, so
  that for each common criterion 1–3 % of all sentences are evidence;
- **co-occurring labels**: criteria are drawn jointly (a Gaussian copula with a general
  severity factor and an affective and a somatic cluster), so sleep problems come with
  fatigue, worthlessness with suicidal thoughts;
- **rare criteria**: PSYCHOMOTOR and SPECIAL_CASE are in ~1 % of posts (under 15 positive
  posts in a 70 % train split of the default 1,484 posts);
- **distractors**: negated mentions ("I sleep fine"), the same words in other senses ("this
  commute is killing me", "my phone battery is drained"), and evidence for one criterion
  written in a neighbouring criterion's words ("I'm tired because I lie awake until four" is
  sleep, not fatigue). A clinician marks some of them as absence (status 0 rows), as in the
  real annotations;
- **implicit evidence**: some evidence sentences carry none of the criterion's keywords.

Deterministic per seed: one `random.Random(seed)` and no iteration over sets.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from cea.data.criteria import DSM5_LABELS

LABELS = DSM5_LABELS  # the ten ReDSM5 labels, in their order

HARD_POSTS = 1484  # the size of ReDSM5
# share of posts that meet each criterion (the rare two: ~1 %, under 15 posts in a 70 % split)
PREVALENCE = {
    "DEPRESSED_MOOD": 0.36,
    "ANHEDONIA": 0.26,
    "APPETITE_CHANGE": 0.25,
    "SLEEP_ISSUES": 0.26,
    "PSYCHOMOTOR": 0.008,
    "FATIGUE": 0.26,
    "WORTHLESSNESS": 0.34,
    "COGNITIVE_ISSUES": 0.25,
    "SUICIDAL_THOUGHTS": 0.26,
    "SPECIAL_CASE": 0.008,
}
RARE = ("PSYCHOMOTOR", "SPECIAL_CASE")
_CLUSTER = {
    "DEPRESSED_MOOD": "affect",
    "ANHEDONIA": "affect",
    "WORTHLESSNESS": "affect",
    "SUICIDAL_THOUGHTS": "affect",
    "APPETITE_CHANGE": "somatic",
    "SLEEP_ISSUES": "somatic",
    "PSYCHOMOTOR": "somatic",
    "FATIGUE": "somatic",
    "COGNITIVE_ISSUES": "somatic",
    "SPECIAL_CASE": "special",
}
_GENERAL, _SPECIFIC = 0.55, 0.5  # loadings of the copula's severity and cluster factors
# a clinician marks absence (status 0) for this share of each kind of distractor
STATUS0_SHARE = {"negated": 0.5, "other_sense": 0.2, "neighbour": 0.4}

_WHEN = [
    "lately",
    "for weeks now",
    "since the spring",
    "most days",
    "these past few months",
    "nearly every day",
    "since I moved out",
    "for a while now",
    "again this month",
    "all winter",
    "since the breakup",
    "ever since I started this job",
    "for the last year or so",
    "more and more",
]
_HEDGE = ["", "", "", "", "Honestly, ", "I guess ", "To be fair, ", "And ", "But ", "Also "]

# evidence: explicit (the criterion's own words) and implicit (none of them)
EVIDENCE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "I feel empty and sad {when}.",
        "Everything feels hopeless {when} and I cry without knowing why.",
        "There is a heavy grey cloud over me {when}.",
        "I have been so down {when} that nothing lifts my mood.",
        "Most mornings I wake up already feeling miserable.",
        "I just feel numb and low {when}.",
        "I have been depressed {when} and it is not getting better.",
        "The sadness never really leaves, it just gets quieter sometimes.",
        "I end up crying in the car before work {when}.",
        "It feels like I am looking at my life through dirty glass.",
        "Some days the only thing I feel is a dull ache in my chest.",
    ],
    "ANHEDONIA": [
        "I stopped enjoying the games I used to love {when}.",
        "Nothing is fun anymore, not even music.",
        "I used to paint every weekend but now I can't be bothered.",
        "Going out with friends gives me no pleasure {when}.",
        "Hobbies that once excited me feel pointless now.",
        "I don't care about anything I used to be into.",
        "I have lost interest in basically everything {when}.",
        "My guitar has been collecting dust since the summer.",
        "When my friends invite me to the lake I just say I'm busy and stare at the wall.",
        "Even my favourite shows feel like background noise now.",
    ],
    "APPETITE_CHANGE": [
        "I barely eat {when} and I have lost a lot of weight.",
        "I keep eating all night and gained almost ten kilos.",
        "Food tastes like cardboard and I skip most meals.",
        "My appetite is gone {when}.",
        "I have been stress eating {when} and my clothes no longer fit.",
        "I forget to eat for whole days.",
        "My jeans are falling off me and my mom keeps asking if I'm eating.",
        "I finish a whole family pack of crisps most nights without noticing.",
        "I have to force myself to eat anything {when}.",
    ],
    "SLEEP_ISSUES": [
        "I lie awake until four in the morning {when}.",
        "I sleep twelve hours and still want to stay in bed.",
        "My insomnia is terrible {when}.",
        "I wake up at three every night and can't fall back asleep.",
        "I have been sleeping through entire afternoons {when}.",
        "Sleep just won't come no matter how late it gets.",
        "I watch the ceiling for hours and see the sky turn light.",
        "My alarm goes off and I have had maybe two hours of rest.",
        "I keep napping after class and then I'm up all night.",
    ],
    "PSYCHOMOTOR": [
        "I move so slowly {when} that people ask if I am okay.",
        "I can't sit still and keep pacing around my room.",
        "My body feels like it is moving through mud.",
        "I fidget constantly and my hands won't stop shaking.",
        "Even talking feels slowed down {when}.",
        "I feel restless and agitated all the time.",
        "My coworker said I speak so slowly now that it worries her.",
    ],
    "FATIGUE": [
        "I am exhausted all the time {when}.",
        "Even a shower wipes me out for the day.",
        "I have no energy to do anything {when}.",
        "I feel drained from the moment I get up.",
        "Climbing the stairs leaves me completely worn out.",
        "My whole body feels heavy and tired {when}.",
        "Carrying the groceries up to my flat feels like running a marathon.",
        "By lunch I have nothing left in the tank.",
        "I'm so tired {when} that I sit in the car for ten minutes before going inside.",
    ],
    "WORTHLESSNESS": [
        "I feel like a complete failure and a burden to everyone.",
        "I am worthless and everyone would be better off without me around.",
        "I keep blaming myself for things that are not my fault.",
        "I hate myself {when}.",
        "The guilt eats at me over every small mistake.",
        "I don't deserve the people in my life.",
        "Everyone around me is moving forward and I am just dead weight.",
        "I replay every stupid thing I have ever said and feel disgusting.",
        "My family would be proud of anyone except me.",
        "I'm a waste of space {when}.",
    ],
    "COGNITIVE_ISSUES": [
        "I can't concentrate on anything {when}.",
        "I read the same page five times and nothing sticks.",
        "Making even small decisions feels impossible.",
        "My mind is foggy and I forget what I was saying.",
        "I can't focus at work {when} and my boss noticed.",
        "My thoughts are slow and scattered.",
        "I stood in the supermarket for twenty minutes unable to pick a cereal.",
        "I missed three deadlines because my head is full of static.",
        "In lectures the words just slide past me {when}.",
    ],
    "SUICIDAL_THOUGHTS": [
        "I keep thinking about ending my life.",
        "Sometimes I wish I could just not wake up.",
        "I have been thinking about death {when}.",
        "I looked up ways to kill myself last night.",
        "I think everyone would be fine if I died.",
        "The thought of disappearing forever comes back {when}.",
        "I wrote a goodbye note and hid it in a drawer.",
        "When I drive over the bridge I think about how easy it would be.",
        "I don't want to be here anymore {when}.",
    ],
    "SPECIAL_CASE": [
        "My grandmother passed away last month and I miss her terribly.",
        "A few weeks ago I barely slept for days and felt unstoppable, buying things I can't afford.",
        "Since my dog died the house feels so quiet.",
        "Last year I had a stretch where my thoughts raced and I felt on top of the world.",
        "I am grieving my father and some days are harder than others.",
        "For a week in June I felt invincible and started five projects at once.",
    ],
}

# the symptom as a verb phrase in the base form: said of oneself now it is evidence; denied,
# in the past, or of someone else it is a distractor with the very same words
CORE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "feel sad and empty",
        "feel hopeless about everything",
        "cry myself to sleep",
        "feel down all the time",
        "feel miserable from the moment I wake up",
        "feel like a grey cloud follows me around",
        "feel low for no reason",
        "feel depressed",
        "feel numb inside",
        "feel a heaviness in my chest that won't lift",
    ],
    "ANHEDONIA": [
        "enjoy anything anymore",
        "get any pleasure from my hobbies",
        "care about the things I used to love",
        "feel excited about weekends",
        "look forward to seeing my friends",
        "find music or games fun",
        "have any interest in going out",
        "feel joy when good things happen",
    ],
    "APPETITE_CHANGE": [
        "skip meals without noticing",
        "eat way more than usual",
        "lose weight without trying",
        "binge on snacks every night",
        "have any appetite",
        "gain weight from stress eating",
        "forget to eat for a whole day",
        "feel sick at the thought of food",
    ],
    "SLEEP_ISSUES": [
        "lie awake until four in the morning",
        "wake up at three and can't get back to sleep",
        "sleep twelve hours a day",
        "have insomnia",
        "sleep through the whole afternoon",
        "toss and turn all night",
        "struggle to fall asleep",
        "oversleep and miss my alarms",
    ],
    "PSYCHOMOTOR": [
        "move in slow motion",
        "pace around the room for hours",
        "feel restless and fidgety",
        "talk so slowly people notice",
        "feel agitated and unable to sit still",
    ],
    "FATIGUE": [
        "feel exhausted",
        "feel drained after the smallest task",
        "have no energy",
        "feel worn out by lunchtime",
        "feel physically heavy and tired",
        "need to rest after a shower",
        "run out of energy halfway through the day",
        "feel tired all the time",
    ],
    "WORTHLESSNESS": [
        "feel like a failure",
        "feel worthless",
        "blame myself for everything",
        "feel like a burden to my family",
        "hate myself",
        "feel guilty over tiny mistakes",
        "think I don't deserve my friends",
        "feel like a disappointment",
    ],
    "COGNITIVE_ISSUES": [
        "struggle to concentrate",
        "forget what I was saying mid sentence",
        "have trouble making simple decisions",
        "read the same paragraph over and over",
        "lose focus in every meeting",
        "feel like my mind is in a fog",
        "struggle to remember appointments",
    ],
    "SUICIDAL_THOUGHTS": [
        "think about ending my life",
        "wish I could go to sleep and not wake up",
        "think about killing myself",
        "think everyone would be better off if I was dead",
        "have thoughts of suicide",
        "imagine disappearing for good",
        "think about how I would do it",
    ],
    "SPECIAL_CASE": [
        "grieve my grandmother every day",
        "feel unstoppable and barely sleep for days",
        "miss my dad since the funeral",
        "go through weeks of racing thoughts and spending sprees",
    ],
}
# said of oneself, now: evidence
SELF_FRAMES = [
    "I {core} {when}.",
    "I {core} and I don't know why.",
    "Lately I {core}.",
    "I {core} {when} and it keeps getting worse.",
    "It's gotten to the point where I {core}.",
    "I honestly {core} most days.",
]
# the same words denied, past, or someone else's (anhedonia's cores read negatively: "enjoy
# anything anymore" is evidence only after "I don't"; its frames swap, see _core_sentence)
OTHER_FRAMES = [
    "I don't {core}, if that matters.",
    "Thankfully I never {core}.",
    "I used to {core} in high school but that passed years ago.",
    "My {who} tends to {core} but I'm okay.",
    "My doctor asked whether I {core} and I said no.",
    "My {who} told me she would {core} when she was my age.",
]
_WHO_LOWER = ["sister", "mom", "roommate", "best friend", "cousin", "aunt", "coworker"]

# evidence for the key criterion written in a neighbour's words: (key, neighbour, sentence)
NEIGHBOUR: list[tuple[str, str, str]] = [
    ("SLEEP_ISSUES", "FATIGUE", "I'm tired all day because I lie awake until four."),
    ("SLEEP_ISSUES", "FATIGUE", "I'm exhausted since I only get three hours of sleep {when}."),
    ("FATIGUE", "SLEEP_ISSUES", "I sleep nine hours and still wake up completely drained."),
    ("FATIGUE", "ANHEDONIA", "I don't have the energy for my hobbies {when}."),
    ("ANHEDONIA", "DEPRESSED_MOOD", "I don't feel sad exactly, I just don't enjoy anything."),
    ("ANHEDONIA", "APPETITE_CHANGE", "Even my favourite food gives me no joy {when}."),
    ("APPETITE_CHANGE", "ANHEDONIA", "I have lost interest in food and skip dinner most days."),
    ("DEPRESSED_MOOD", "WORTHLESSNESS", "I feel so sad and low that I can't see any way up."),
    ("DEPRESSED_MOOD", "FATIGUE", "I feel heavy and grey inside {when}, like a weight on me."),
    ("WORTHLESSNESS", "DEPRESSED_MOOD", "I feel so down on myself, like I'm worth nothing."),
    ("WORTHLESSNESS", "SUICIDAL_THOUGHTS", "Everyone would be better off if I was never born."),
    ("SUICIDAL_THOUGHTS", "WORTHLESSNESS", "I'm a burden and I want to end it {when}."),
    ("COGNITIVE_ISSUES", "FATIGUE", "I'm too tired to think straight and I keep losing my keys."),
    ("COGNITIVE_ISSUES", "SLEEP_ISSUES", "My brain is so foggy I can't follow a conversation."),
    ("PSYCHOMOTOR", "FATIGUE", "My body feels slowed down, like every move takes effort."),
    ("SPECIAL_CASE", "DEPRESSED_MOOD", "I have been sad since my uncle died in March."),
]

# vague sentences that annotators mark as evidence only sometimes (real annotations are not
# consistent): (criterion, share of occurrences marked evidence, sentence)
AMBIGUOUS: list[tuple[str, float, str]] = [
    ("FATIGUE", 0.3, "I'm so tired of all of this."),
    ("FATIGUE", 0.35, "Some days I can't get out of bed."),
    ("WORTHLESSNESS", 0.45, "I can't do anything right."),
    ("SUICIDAL_THOUGHTS", 0.35, "I don't know how much longer I can keep going."),
    ("SUICIDAL_THOUGHTS", 0.25, "I just don't see the point."),
    ("DEPRESSED_MOOD", 0.4, "Everything is too much right now."),
    ("DEPRESSED_MOOD", 0.3, "I don't feel like myself anymore."),
    ("COGNITIVE_ISSUES", 0.3, "My head is a mess."),
    ("APPETITE_CHANGE", 0.3, "I eat when I'm bored, which is always."),
    ("SLEEP_ISSUES", 0.3, "I'm always up late on my phone."),
    ("ANHEDONIA", 0.3, "I haven't touched my camera in ages."),
]
# evidence-like sentences a clinician did not mark (the post does not count as meeting the
# criterion): the share of (post, absent criterion) that get one
MISSED_SHARE = 0.1
# the share of a post's further evidence sentences for a criterion that annotators mark too
UNMARKED_KEEP = 0.5

# the criterion named and denied (a clinician's status 0 when annotated)
NEGATED: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "My mood has actually been pretty good {when}.",
        "I don't feel sad, just busy.",
        "I'm not depressed or anything, I just want advice.",
    ],
    "ANHEDONIA": [
        "I still enjoy playing guitar with my friends.",
        "I love my hobbies as much as ever.",
        "I still have fun at the climbing gym twice a week.",
    ],
    "APPETITE_CHANGE": [
        "My appetite is normal and I eat regular meals.",
        "My weight hasn't changed at all.",
        "I eat fine, that part is not a problem.",
    ],
    "SLEEP_ISSUES": [
        "I sleep fine, about eight hours a night.",
        "Sleep has never been a problem for me.",
        "I fall asleep easily and wake up rested.",
    ],
    "PSYCHOMOTOR": [
        "I feel calm and move around normally.",
        "Nobody has noticed anything odd about how I move.",
    ],
    "FATIGUE": [
        "I have plenty of energy for work and the gym.",
        "I'm not tired, I go running most mornings.",
        "Physically I feel strong and rested.",
    ],
    "WORTHLESSNESS": [
        "I know I am a good friend and I like who I am.",
        "I don't blame myself for what happened.",
        "I'm actually proud of how I handled the move.",
    ],
    "COGNITIVE_ISSUES": [
        "I can focus on my studies without trouble.",
        "My memory and concentration are fine.",
        "Work is busy but my head is clear.",
    ],
    "SUICIDAL_THOUGHTS": [
        "I have never thought about hurting myself.",
        "I would never end my life, I want to live.",
        "To be clear I'm not suicidal at all.",
    ],
    "SPECIAL_CASE": [
        "Nobody close to me has died recently.",
        "I have never had days where I felt unstoppable.",
    ],
}

# the criterion's words in another sense
OTHER_SENSE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "The housing market here is pretty depressed right now.",
        "That film had such a sad ending that the whole cinema went quiet.",
        "The forecast says grey clouds all week.",
    ],
    "ANHEDONIA": [
        "I don't enjoy spicy food, never have.",
        "My brother lost interest in football when he was twelve.",
        "The bank stopped paying interest on my savings.",
    ],
    "APPETITE_CHANGE": [
        "My dog has a huge appetite and eats everything.",
        "I'm starving, we are ordering pizza tonight.",
        "My cat gained weight after we moved.",
        "I have no appetite for risk when it comes to money.",
    ],
    "SLEEP_ISSUES": [
        "I put my laptop in sleep mode and went out.",
        "My baby nephew finally sleeps through the night.",
        "I stayed up late once to watch the meteor shower.",
    ],
    "PSYCHOMOTOR": [
        "Traffic was moving so slowly this morning.",
        "My hands were shaking from the cold at the bus stop.",
        "The dog was restless before the storm.",
    ],
    "FATIGUE": [
        "I'm sick and tired of my landlord ignoring my emails.",
        "My phone battery is drained by noon.",
        "The tires on my bike are worn out.",
        "We were exhausted after the hike but it was worth it.",
    ],
    "WORTHLESSNESS": [
        "My old car is basically worthless now.",
        "I blame the weather app for my wet shoes.",
        "I felt a bit guilty for eating the last slice of cake.",
    ],
    "COGNITIVE_ISSUES": [
        "The camera would not focus in the dark.",
        "I can't decide between two phone plans.",
        "I forgot my umbrella at work again.",
    ],
    "SUICIDAL_THOUGHTS": [
        "This commute is killing me, honestly.",
        "I could kill for a coffee right now.",
        "I'm dying to see the new season.",
        "My plants died while I was away.",
    ],
    "SPECIAL_CASE": [
        "My coworker's grandfather passed away and we sent flowers.",
        "The team was on top of the world after the win.",
        "I bought way too many things in the sale last week.",
    ],
}

_WHO = [
    "My sister",
    "My roommate",
    "My manager",
    "My cousin",
    "Our neighbour",
    "My best friend",
    "My dad",
    "My mom",
    "My landlord",
    "A coworker",
    "A friend from school",
    "My partner",
    "My therapist",
    "My brother",
]
_DID = [
    "started a new job at a bakery",
    "moved to another city for university",
    "got a puppy from the shelter",
    "bought a used car that keeps breaking down",
    "is planning a big wedding for next year",
    "asked me to help with a moving van",
    "had knee surgery",
    "got promoted to team lead",
    "started learning Spanish online",
    "went back to college to study nursing",
    "keeps texting me about the group trip",
    "borrowed my laptop and never gave it back",
    "suggested I try a meditation app",
    "is renovating the kitchen",
    "signed up for a half marathon",
]
_I_DID = [
    "took the train to see my grandparents",
    "had to renew my passport",
    "spent the afternoon fixing my bike",
    "went to a concert with some coworkers",
    "cleaned out the garage",
    "applied for two jobs in the city",
    "switched to a cheaper phone plan",
    "finally booked a dentist appointment",
    "started a course on spreadsheets",
    "helped my neighbour carry a sofa",
    "watched a documentary about octopuses",
    "cooked a curry from a recipe online",
    "filled in my tax forms",
    "rearranged the furniture in my room",
    "walked the dog around the park",
]
_WHEN_FILLER = [
    "last week",
    "a few days ago",
    "in the summer",
    "this month",
    "back in March",
    "yesterday",
    "over the holidays",
    "on Sunday",
    "after work",
    "this morning",
]
_CONTEXT = [
    "I'm twenty four and I work in a warehouse with rotating shifts.",
    "I'm a second year student studying biology.",
    "We adopted a cat named Pickles in March.",
    "The weather here has been rainy and cold.",
    "I have been thinking about changing jobs.",
    "My roommate is moving out at the end of the month.",
    "I started a new medication a few weeks ago but I'm not sure it does anything.",
    "I saw my doctor on Tuesday and she wants to run some tests.",
    "My parents live about two hours away.",
    "I'm not sure this is the right subreddit for this.",
    "Sorry for the long post, I just needed to write this down.",
    "The bus to work takes almost an hour each way.",
    "My team at work is small but friendly.",
    "The rent went up again this year.",
    "I finally fixed the leaking tap in the kitchen.",
    "We were together for three years before things changed.",
    "My family doesn't really talk about feelings.",
    "I have a presentation coming up that I've been putting off.",
    "Money has been tight since the car broke down.",
    "I live in a small town where everyone knows everyone.",
    "I tried journaling like my therapist suggested.",
    "I don't really have anyone to talk to about this.",
    "Some context about me first.",
    "My exams start in three weeks.",
    "I used to play football at school.",
]
_BUT = [
    "but it didn't go as planned",
    "and it took much longer than I expected",
    "because nobody else was free to do it",
    "and honestly it was fine",
    "although I'm not sure why I'm telling you this",
    "so the weekend was pretty full",
    "which cost more than I wanted",
]
_OPENERS = [
    "Throwaway account because people I know use this site.",
    "I don't really know how to start this.",
    "First time posting here.",
    "Long time lurker, first post.",
    "Not sure what I'm looking for by posting this.",
    "Mods please remove if this is not allowed.",
]
_CLOSERS = [
    "Does anyone else feel this way?",
    "Any advice would help.",
    "I don't know what to do anymore.",
    "Thanks for listening.",
    "Has anyone been through something like this?",
    "Thanks for reading if you got this far.",
]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(when=rng.choice(_WHEN)) if "{when}" in template else template


def _hedged(sentence: str, rng: random.Random) -> str:
    hedge = rng.choice(_HEDGE)
    if not hedge:
        return sentence
    first = sentence.split(" ", 1)[0]
    keep = first == "I" or first.startswith("I'")
    return hedge + (sentence if keep else sentence[0].lower() + sentence[1:])


def _core_sentence(lab: str, evidence: bool, rng: random.Random) -> str:
    """A sentence built on one of the criterion's core phrases: evidence (said of oneself,
    now) or a distractor with the same words (denied, past, someone else's)."""
    core = rng.choice(CORE[lab])
    if lab == "ANHEDONIA":  # the cores name the pleasure: evidence is its absence
        evidence_frames = ["I don't {core} {when}.", "I just can't {core}.", "I no longer {core}."]
        other = ["I still {core}, that part is fine.", "My {who} says she doesn't {core}."]
        frames = evidence_frames if evidence else other
    else:
        frames = SELF_FRAMES if evidence else OTHER_FRAMES
    text = rng.choice(frames).format(core=core, when=rng.choice(_WHEN), who=rng.choice(_WHO_LOWER))
    return _hedged(text, rng) if evidence else text


def _filler(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        core = f"{rng.choice(_WHO)} {rng.choice(_DID)} {rng.choice(_WHEN_FILLER)}"
    elif kind < 0.7:
        core = f"I {rng.choice(_I_DID)} {rng.choice(_WHEN_FILLER)}"
    else:
        return rng.choice(_CONTEXT)
    if rng.random() < 0.7:
        core += " " + rng.choice(_BUT)
    return core + "."


def _draw_labels(rng: random.Random) -> list[str]:
    """The criteria a post meets: a Gaussian copula with these marginals (PREVALENCE)."""
    nd = NormalDist()
    general = rng.gauss(0.0, 1.0)
    cluster = {name: rng.gauss(0.0, 1.0) for name in ("affect", "somatic", "special")}
    chosen = []
    for lab in LABELS:
        loading = 0.0 if lab == "SPECIAL_CASE" else _GENERAL  # grief and mania: their own
        own = math.sqrt(1.0 - loading**2 - _SPECIFIC**2)
        z = loading * general + _SPECIFIC * cluster[_CLUSTER[lab]] + own * rng.gauss(0.0, 1.0)
        if z > nd.inv_cdf(1.0 - PREVALENCE[lab]):
            chosen.append(lab)
    return chosen


def _sentence_count(rng: random.Random) -> int:
    """Sentences of ~12 words: lognormal counts, mean ~25 (~300 words), a tail to thousands
    of words."""
    return max(3, min(450, round(rng.lognormvariate(2.95, 0.72))))


Row = tuple[str, str | None, int | None]  # (sentence, criterion annotated, status)


def generate_hard(n_posts: int, seed: int) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """(posts [(post_id, text)], annotation rows) of the hard profile."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not cryptography
    neighbours: dict[str, list[tuple[str, str]]] = {}
    for key, other, text in NEIGHBOUR:
        neighbours.setdefault(key, []).append((other, text))
    posts: list[tuple[str, str]] = []
    rows: list[list[str]] = []
    for i in range(n_posts):
        pid = f"h_{seed}_{i:04d}"
        chosen = _draw_labels(rng)
        # one sentence may carry several annotations (evidence for one criterion, marked absent
        # for its neighbour): a list of (criterion, status) per sentence
        items: list[tuple[str, list[tuple[str, int]]]] = []
        for lab in chosen:
            for k in range(rng.choices([1, 2, 3], weights=[5, 4, 1])[0]):
                # annotators mark the clearest sentence; a further one only sometimes
                mark = [(lab, 1)] if k == 0 or rng.random() < UNMARKED_KEEP else []
                if lab in neighbours and rng.random() < 0.25:
                    other, tmpl = rng.choice(neighbours[lab])
                    if other not in chosen and rng.random() < STATUS0_SHARE["neighbour"]:
                        mark = [*mark, (other, 0)]
                    items.append((_fill(tmpl, rng), mark))
                elif rng.random() < 0.75:
                    items.append((_core_sentence(lab, True, rng), mark))
                else:
                    items.append((_hedged(_fill(rng.choice(EVIDENCE[lab]), rng), rng), mark))
        for lab in LABELS:
            if lab not in chosen and rng.random() < 0.2:
                marks = [(lab, 0)] if rng.random() < STATUS0_SHARE["negated"] else []
                if rng.random() < 0.6:
                    items.append((_core_sentence(lab, False, rng), marks))
                else:
                    items.append((_hedged(_fill(rng.choice(NEGATED[lab]), rng), rng), marks))
        for lab in LABELS:
            if lab not in chosen and lab not in RARE and rng.random() < MISSED_SHARE:
                items.append((_hedged(_fill(rng.choice(EVIDENCE[lab]), rng), rng), []))
        for _ in range(rng.choices([0, 1, 2], weights=[4, 4, 2])[0]):
            lab, share, text = rng.choice(AMBIGUOUS)
            items.append((text, [(lab, 1)] if rng.random() < share else []))
        for _ in range(rng.choices([0, 1, 2, 3], weights=[3, 4, 2, 1])[0]):
            lab = rng.choice(LABELS)
            marks = (
                [(lab, 0)]
                if lab not in chosen and rng.random() < STATUS0_SHARE["other_sense"]
                else []
            )
            items.append((rng.choice(OTHER_SENSE[lab]), marks))
        n_total = max(_sentence_count(rng), len(items) + 1)
        for _ in range(n_total - len(items)):
            items.append((_filler(rng), []))
        rng.shuffle(items)
        if rng.random() < 0.5:
            items.insert(0, (rng.choice(_OPENERS), []))
        if rng.random() < 0.6:
            items.append((rng.choice(_CLOSERS), []))
        # a sentence twice in one post would be labelled twice: drop repeats of unannotated
        # sentences, keep the first of annotated ones
        seen: set[str] = set()
        kept: list[tuple[str, list[tuple[str, int]]]] = []
        for text, marks in items:
            if text in seen:
                continue
            seen.add(text)
            kept.append((text, marks))
        body = ""
        for j, (text, marks) in enumerate(kept):
            body += ("" if j == 0 else ("\n\n" if rng.random() < 0.12 else " ")) + text
            for lab, status in marks:
                rows.append([pid, f"{pid}_{j}", text, lab, str(status), ""])
        posts.append((pid, body))
    return posts, rows
