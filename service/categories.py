"""OpenAI Moderation API categories: every response carries all, so strict clients parse it."""

from typing import Literal, get_args

Category = Literal[
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
]

CATEGORIES: tuple[Category, ...] = get_args(Category)
