"""French collation for indexes: accents ignored first, ligatures expanded, numbers by value."""

from __future__ import annotations

import re
import unicodedata

_LIGATURES = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS", "ﬁ": "fi", "ﬂ": "fl"}
)
_NUMBER = re.compile(r"(\d+)")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Lower case without accents, ligatures expanded, punctuation as single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", bare.casefold()).strip()


def sort_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], str, str]:
    """Key sorting as a French index does: base letters, then numbers by value, ties by accents.

    "Rue de la Paix" sorts as written (under R); "2 Mai" comes before "10 Mai"; "Église" sorts
    with "Eglise", just after it; "Œuvre" with "Oeuvre".
    """
    folded = fold(text)
    parts: list[tuple[int, int | str]] = []
    for piece in _NUMBER.split(folded):
        if not piece:
            continue
        if piece.isdigit():
            parts.append((0, int(piece)))
        else:
            parts.append((1, piece))
    # French secondary level: accents compared from the end of the word (as in a dictionary).
    accents = unicodedata.normalize("NFD", text.translate(_LIGATURES).casefold())[::-1]
    return tuple(parts), accents, text


def heading(text: str) -> str:
    """The index heading a name is listed under: its first letter, or "0-9" for numbers."""
    folded = fold(text)
    if not folded:
        return "#"
    first = folded[0]
    if first.isdigit():
        return "0-9"
    return first.upper()
