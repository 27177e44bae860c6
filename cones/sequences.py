"""Canonical MRI sequence names and the aliases real datasets use for them.

BraTS 2018-2021 writes ``t1ce`` and ``flair``, BraTS 2023 writes ``t1c`` and ``t2f``; users type
either. Everything inside the package speaks :class:`Sequence`, and this module is the only place
that knows the spellings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

__all__ = [
    "Sequence",
    "parse_input_series",
    "parse_sequence",
    "parse_sequence_inputs",
    "parse_sequences",
    "split_sequence_input",
]


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

    @staticmethod
    def label(sequence: Sequence) -> str:
        """The text of a sequence in a combo box: Slicer's parameter node GUI connector looks for a ``label``
        function on an enum and shows the member names ("T1CE") without one."""
        return sequence.display_name


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


def parse_sequence_inputs(pairs: Iterable[str]) -> dict[Sequence, Path]:
    """Parse ``SEQUENCE=PATH`` arguments (``cones synthesize --input``, the batch script's ``--input``).

    A sequence given twice (``t1=a t1=b``, or ``flair=a t2f=b``) is refused rather than resolved by
    order: the two files may belong to different patients, and picking one would go unnoticed.

    Returns:
        The paths keyed by canonical sequence, in the order given.

    Raises:
        ValueError: a pair is not ``SEQUENCE=PATH``, a name is no known sequence, or a sequence is
            given twice (naming both arguments).
    """
    given: dict[Sequence, str] = {}
    paths: dict[Sequence, Path] = {}
    for pair in pairs:
        name, path = split_sequence_input(pair)
        sequence = parse_sequence(name)
        if sequence in given:
            raise ValueError(
                f"{sequence.display_name} is given twice ({given[sequence]!r} and {pair!r}); give each sequence once"
            )
        given[sequence], paths[sequence] = pair, path
    return paths


def parse_input_series(pairs: Iterable[str], inputs: Mapping[Sequence, Path]) -> dict[Sequence, str]:
    """Parse ``SEQUENCE=SERIES_UID`` arguments (``--series``): which series of a DICOM folder input to read.

    A separate option rather than ``PATH:UID`` in ``--input``, which would break on Windows paths.

    Returns:
        The series UIDs keyed by canonical sequence.

    Raises:
        ValueError: a pair is not ``SEQUENCE=SERIES_UID``, names an unknown sequence, one given
            twice, one that is no input, or one whose input is a file rather than a DICOM folder.
    """
    chosen: dict[Sequence, str] = {}
    for pair in pairs:
        name, uid = _split_pair(pair, "SEQUENCE=SERIES_UID")
        sequence = parse_sequence(name)
        if sequence in chosen:
            raise ValueError(f"--series gives {sequence.display_name} twice; give each sequence once")
        if sequence not in inputs:
            raise ValueError(f"--series {pair!r} names {sequence.display_name}, which is not an --input")
        if not inputs[sequence].is_dir():
            raise ValueError(
                f"--series {pair!r}: the {sequence.display_name} input {str(inputs[sequence])!r} is not a DICOM folder"
            )
        chosen[sequence] = uid
    return chosen


def split_sequence_input(pair: str) -> tuple[str, Path]:
    """``"t1=a.nii.gz"`` as ``("t1", Path("a.nii.gz"))``; the name is not checked here.

    Raises:
        ValueError: ``pair`` is not ``SEQUENCE=PATH`` with both parts non-empty.
    """
    name, path = _split_pair(pair, "SEQUENCE=PATH")
    return name, Path(path)


def _split_pair(pair: str, form: str) -> tuple[str, str]:
    name, separator, value = pair.partition("=")
    if not separator or not name or not value:
        raise ValueError(f"expected {form}, got {pair!r}")
    return name, value
