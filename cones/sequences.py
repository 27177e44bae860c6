"""Canonical MRI sequence names and the aliases real datasets use for them.

BraTS 2018-2021 writes ``t1ce`` and ``flair``, BraTS 2023 writes ``t1c`` and ``t2f``; users type
either. Everything inside the package speaks :class:`Sequence`, and this module is the only place
that knows the spellings.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Sequence", "parse_sequence", "parse_sequences"]


class Sequence(StrEnum):
    """A structural brain MRI sequence, named by its canonical (BraTS 2018-2021) spelling."""

    T1 = "t1"
    T1CE = "t1ce"
    T2 = "t2"
    FLAIR = "flair"

    @property
    def display_name(self) -> str:
        """The name a radiologist reads in a GUI or a report."""
        return _DISPLAY_NAMES[self]


_DISPLAY_NAMES = {Sequence.T1: "T1", Sequence.T1CE: "T1ce", Sequence.T2: "T2", Sequence.FLAIR: "FLAIR"}

_ALIASES: dict[str, Sequence] = {
    "t1": Sequence.T1,
    "t1n": Sequence.T1,
    "t1w": Sequence.T1,
    "t1native": Sequence.T1,
    "t1ce": Sequence.T1CE,
    "t1c": Sequence.T1CE,
    "t1gd": Sequence.T1CE,
    "t1post": Sequence.T1CE,
    "t2": Sequence.T2,
    "t2w": Sequence.T2,
    "flair": Sequence.FLAIR,
    "t2f": Sequence.FLAIR,
    "t2flair": Sequence.FLAIR,
}


def parse_sequence(name: str | Sequence) -> Sequence:
    """Map any known spelling (``t1c``, ``T1-CE``, ``t2f`` ...) to its canonical :class:`Sequence`.

    Raises:
        ValueError: the name is not a known sequence; the message lists the accepted names.
    """
    if isinstance(name, Sequence):
        return name
    key = "".join(ch for ch in str(name).lower() if ch.isalnum())
    try:
        return _ALIASES[key]
    except KeyError:
        known = ", ".join(sorted(_ALIASES))
        raise ValueError(f"unknown sequence name {name!r}; known names: {known}") from None


def parse_sequences(names: list[str] | tuple[str, ...]) -> tuple[Sequence, ...]:
    """Parse several names, refusing duplicates (``t1c`` and ``t1ce`` are the same sequence).

    Raises:
        ValueError: a name is unknown, or two names denote the same sequence.
    """
    parsed = tuple(parse_sequence(name) for name in names)
    duplicates = sorted({seq for seq in parsed if parsed.count(seq) > 1})
    if duplicates:
        raise ValueError(f"sequence listed more than once: {', '.join(duplicates)} (from {list(names)!r})")
    return parsed
