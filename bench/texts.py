"""The benchmark's text mix: what a moderation endpoint receives, drawn with a fixed seed.

Mostly chat-length messages (one or two sentences), some paragraphs (a review, a forum reply), a
few long posts (several paragraphs, up to the model's 512-token truncation). About one in five
texts is abusive, so the model sees both kinds. The same seed gives the same texts in the same
order, so every contestant of one run, and every run, scores the same work.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

SEED = 20261128

_CLEAN = (
    "Have a nice day!",
    "Thanks for the quick reply, the package arrived this morning in perfect condition.",
    "The meeting is moved to Thursday at 10:00; please bring the quarterly figures with you.",
    "Could you recommend a good book about the history of the Roman empire for a beginner?",
    "Honestly this is the best pizza place in town, the crust is thin and the sauce is fresh.",
    "Does anyone know whether the new update fixes the battery drain on older phones?",
    "I moved here last spring and I still get lost in the old town every single weekend.",
    "Great match yesterday, the second half was much better than the first one.",
    "Please remember to water the plants while I am away, twice a week should be enough.",
    "The train was late again, so I missed the first ten minutes of the lecture.",
    "My grandmother's recipe uses twice as much butter, and it is worth every calorie.",
    "Is the library open on public holidays, or only on weekdays?",
    "We are looking for volunteers to help clean up the park on Saturday morning.",
    "The customer service agent was patient and solved my problem in five minutes.",
    "I finally finished the marathon, slower than planned but without walking.",
    "lol same, my cat does exactly that at 5 am every day",
)
_ABUSIVE = (
    "You are an idiot and nobody likes you.",
    "I can't believe how stupid this whole discussion has become, shut up already.",
    "What a load of crap, you absolute moron.",
    "People like you should not be allowed anywhere near a keyboard, you worthless clown.",
    "Get lost, nobody asked for your pathetic opinion.",
    "If you say that again I will find you and make you regret it.",
    "This is the dumbest post I have read all week, delete your account.",
    "Go back to wherever you came from, your kind is not welcome here.",
)


@dataclass(frozen=True)
class Mix:
    """Shares of each kind of text, and how many sentences each kind has."""

    chat: float = 0.80  # 1-2 sentences
    paragraph: float = 0.15  # 4-8 sentences
    # the rest: long posts, 20-40 sentences
    abusive: float = 0.2


def _sentences(rng: random.Random, count: int, abusive: float) -> str:
    return " ".join(
        rng.choice(_ABUSIVE if rng.random() < abusive else _CLEAN) for _ in range(count)
    )


def moderation_texts(count: int, seed: int = SEED, mix: Mix = Mix()) -> list[str]:
    """`count` texts of the mix, the same for the same seed."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        kind = rng.random()
        if kind < mix.chat:
            sentences = rng.randint(1, 2)
        elif kind < mix.chat + mix.paragraph:
            sentences = rng.randint(4, 8)
        else:
            sentences = rng.randint(20, 40)
        texts.append(_sentences(rng, sentences, mix.abusive))
    return texts


def corpus() -> Sequence[str]:
    """Every sentence the mix draws from: what the benchmark model's tokenizer is trained on."""
    return (*_CLEAN, *_ABUSIVE)
