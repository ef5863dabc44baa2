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
import sys
import unicodedata
from functools import cache
from typing import NamedTuple

from confusable_homoglyphs.utils import load as load_confusables

# Invisible characters that are not Unicode format characters (category Cf, removed as a whole):
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors.
_INVISIBLE_EXTRA = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Unicode's stream-safe text format (UAX #15): at most 30 non-starters in a row. Normalisation
# reorders a run of non-starters by insertion, in time that grows with the square of the run
# ("a" + 10,000 marks took half a second); no reader sees the 31st mark on a letter anyway.
MAX_NON_STARTERS = 30
# Combining marks, invisibles and format characters live in planes 0, 1 and 14 only.
_MARK_PLANES = (range(0x20000), range(0xE0000, 0xE1000))
_LAST_BMP = 0xFFFF
NFKC_PIECE = 1024
# Three or more single letters or digits, each followed by one space: `f u c k`.
_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[^\W_] ){2,}[^\W_](?!\S)")


class _ByPlane(NamedTuple):
    """One pattern twice: for text of the Basic Multilingual Plane only (its character classes
    compile to a bitmap, ~20x faster) and for any text."""

    bmp: re.Pattern[str]
    any: re.Pattern[str]

    def for_text(self, text: str) -> re.Pattern[str]:
        return self.bmp if ord(max(text, default=" ")) <= _LAST_BMP else self.any


class _Tables(NamedTuple):
    invisible: dict[int, None]  # str.translate table that deletes them
    long_mark_run: _ByPlane  # a run of non-starters beyond MAX_NON_STARTERS
    marks_on_ascii: _ByPlane  # an ASCII letter and the marks on it
    # A character before which NFKC can cut the text (NFKC(a + b) == NFKC(a) + NFKC(b)): it
    # decomposes to a starter that composes with nothing before it, so neither canonical
    # reordering nor composition crosses it.
    nfkc_boundary: _ByPlane


def _character_class(code_points: list[int]) -> str:
    """`code_points` (ascending) as the ranges of a regular-expression class."""
    ranges: list[tuple[int, int]] = []
    for point in code_points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)


def _by_plane(template: str, members: list[int]) -> _ByPlane:
    """`template` with `{}` standing for the ranges of `members` (inside a class)."""

    def compiled(points: list[int]) -> re.Pattern[str]:
        return re.compile(template.replace("{}", _character_class(points)))

    return _ByPlane(compiled([point for point in members if point <= _LAST_BMP]), compiled(members))


@cache
def _tables() -> _Tables:
    """Built once (~0.1 s) from the Unicode database Python ships."""
    invisible: list[int] = []
    non_starters: list[int] = []  # combining class > 0, itself or at the start of its NFKD
    marks: list[int] = []
    # Hangul vowels and trailing consonants compose with the syllable before them.
    second_in_pair = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for point in (point for plane in _MARK_PLANES for point in plane):
        char = chr(point)
        category = unicodedata.category(char)
        if category == "Cf" or char in _INVISIBLE_EXTRA:
            invisible.append(point)
        decomposed = unicodedata.normalize("NFKD", char) if point > 0x7F else char
        if decomposed and unicodedata.combining(decomposed[0]):
            non_starters.append(point)
        if unicodedata.combining(char) or category == "Mn":
            marks.append(point)
        canonical = unicodedata.decomposition(char).split()
        if len(canonical) == 2 and not canonical[0].startswith("<"):
            second_in_pair.add(int(canonical[1], 16))
    # the first character of whose NFKD is a non-starter or composes with the one before it
    no_boundary = sorted(set(non_starters) | second_in_pair)
    no_boundary += [
        point
        for plane in _MARK_PLANES
        for point in plane
        if ord(unicodedata.normalize("NFKD", chr(point))[:1] or " ") in second_in_pair
    ]
    return _Tables(
        invisible=dict.fromkeys(invisible),
        long_mark_run=_by_plane(f"([{{}}]{{{MAX_NON_STARTERS}}})[{{}}]+", non_starters),
        marks_on_ascii=_by_plane("([A-Za-z])[{}]+", marks),
        nfkc_boundary=_by_plane("[^{}]", sorted(set(no_boundary))),
    )


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


def _nfkc_prefix(text: str, max_chars: int, tables: _Tables) -> str:
    """NFKC of `text` cut to `max_chars`, in pieces of about NFKC_PIECE characters, stopping once
    `max_chars` are out: a character NFKC turns into 18 costs 18 times as much."""
    boundary = tables.nfkc_boundary.for_text(text)
    pieces: list[str] = []
    size = start = 0
    while start < len(text) and size < max_chars:
        found = boundary.search(text, start + NFKC_PIECE)
        end = found.start() if found else len(text)
        pieces.append(unicodedata.normalize("NFKC", text[start:end]))
        size += len(pieces[-1])
        start = end
    return "".join(pieces)[:max_chars]


def normalize(text: str, max_chars: int = sys.maxsize) -> str:
    """The text as a reader sees it: NFKC, no invisibles, no marks on ASCII letters, look-alikes
    folded to ASCII, spelt-out words joined; at most `max_chars` characters.

    Linear in the length of `text`: runs of marks are capped before any normalisation, NFKC
    (which can make 18 characters of one) stops once `max_chars` are out, and every step is one
    pass of `str.translate`, `re` or `unicodedata` over the text.
    """
    if not text.isascii():  # the common case skips the per-character steps
        tables = _tables()
        text = text.translate(tables.invisible)
        text = tables.long_mark_run.for_text(text).sub(r"\1", text)
        # Folded before NFKC too: NFKC maps some look-alikes (Greek lunate sigma) to others.
        text = _nfkc_prefix(text.translate(_fold_table()), max_chars, tables)
        text = unicodedata.normalize("NFD", text.translate(tables.invisible))
        # Marks on ASCII letters (struck-through or accented letters) go; other scripts keep theirs.
        text = tables.marks_on_ascii.for_text(text).sub(r"\1", text)
        text = unicodedata.normalize("NFC", text).translate(_fold_table())
    return _SPACED_LETTERS.sub(lambda match: match.group().replace(" ", ""), text[:max_chars])
