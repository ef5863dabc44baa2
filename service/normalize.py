"""Text normalisation before scoring, so that Unicode tricks get the decision of the plain text.

Abusive users disguise words with characters a reader sees through and a model does not:
fullwidth or mathematical letters (NFKC folds them), invisible characters inside words (removed),
combining marks stacked on letters (removed from ASCII letters), look-alike letters from other
scripts (Cyrillic `\u043e` for `o`: folded with the Unicode confusables table shipped by
`confusable-homoglyphs`, not a hand-written one) and words spelt out letter by letter (`f u c k`:
joined). The result is for the model only; nothing of it is returned or logged.

It suits models of Latin-script text (folding turns look-alike letters of other scripts into
Latin ones); a catalog model sets `normalize: false` to be given the text as sent.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from confusable_homoglyphs.utils import load as load_confusables

# Invisible characters that are not Unicode format characters (category Cf, removed as a whole):
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors.
_INVISIBLE_EXTRA = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Three or more single letters or digits, each followed by one space: `f u c k`.
_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[^\W_] ){2,}[^\W_](?!\S)")


def _is_invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or char in _INVISIBLE_EXTRA


@cache
def _fold_table() -> dict[int, str]:
    """Non-ASCII character -> the ASCII letter or digit it is confusable with (str.translate).

    From Unicode's confusables.txt as packaged; a character confusable with several ASCII
    characters maps to a lowercase letter first, then an uppercase one, then a digit.
    """
    table: dict[int, str] = {}
    for char, homoglyphs in load_confusables("confusables.json").items():
        if len(char) != 1 or char.isascii():
            continue
        candidates = [
            glyph["c"] for glyph in homoglyphs if glyph["c"].isascii() and glyph["c"].isalnum()
        ]
        if candidates:
            table[ord(char)] = min(candidates, key=lambda c: (not c.islower(), not c.isupper(), c))
    return table


def _strip_marks_on_ascii(text: str) -> str:
    """Drop combining marks that sit on ASCII letters (struck-through or accented letters); other
    scripts keep theirs."""
    kept: list[str] = []
    base_is_ascii = False
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char) or unicodedata.category(char) == "Mn":
            if base_is_ascii:
                continue
        else:
            base_is_ascii = char.isascii() and char.isalpha()
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def normalize(text: str) -> str:
    """The text as a reader sees it: NFKC, no invisibles, no marks on ASCII letters, look-alikes
    folded to ASCII, spelt-out words joined."""
    if not text.isascii():  # the common case skips the per-character steps
        # Folded before NFKC too: NFKC maps some look-alikes (Greek lunate sigma) to others.
        text = unicodedata.normalize("NFKC", text.translate(_fold_table()))
        text = "".join(char for char in text if not _is_invisible(char))
        text = _strip_marks_on_ascii(text)
        text = text.translate(_fold_table())
    return _SPACED_LETTERS.sub(lambda match: match.group().replace(" ", ""), text)
