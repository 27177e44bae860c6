"""Finding cases and their sequences in a dataset folder, whatever naming convention it uses.

A dataset is a folder of case folders. BraTS 2018-2021 names files ``<case>/<case>_t1ce.nii.gz``,
BraTS 2023 ``<case>/<case>-t1c.nii.gz``; both resolve through the one alias table of
:mod:`cones.sequences`, so a new spelling is added there and nowhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cones.sequences import Sequence, parse_sequence

__all__ = ["IMAGE_SUFFIXES", "LABEL_NAMES", "CaseFiles", "find_cases", "require_sequences"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
"""File endings read as images (those SimpleITK reads with full geometry)."""

LABEL_NAMES = ("seg", "predseg")
"""Suffixes of label maps: ``seg`` (BraTS expert labels) and ``predseg`` (a model's prediction)."""

_KEY = re.compile(r"[_-]([A-Za-z0-9]+)$")


@dataclass(frozen=True)
class CaseFiles:
    """The image files of one case.

    Attributes:
        case_id: the case folder's name, which identifies the patient in logs and caches.
        sequences: one file per recognised sequence.
        label: the label map, if the case has one (``seg`` preferred over ``predseg``).
    """

    case_id: str
    sequences: dict[Sequence, Path]
    label: Path | None = None


def _split_name(name: str) -> tuple[str, str] | None:
    """``TCGA-DU-7294_t1ce.nii.gz`` -> (``TCGA-DU-7294``, ``t1ce``); ``t1.nii.gz`` -> ("", ``t1``).

    Hidden files (``.x``) are skipped: they are editor or OS artefacts, or the temporary files of
    :func:`cones.data.io.write_image`.
    """
    suffix = next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None or name.startswith("."):
        return None
    stem = name[: -len(suffix)]
    match = _KEY.search(stem)
    return (stem[: match.start()], match.group(1).lower()) if match else ("", stem.lower())


def _classify(name: str) -> Sequence | str | None:
    """The sequence or label name a file holds, or None when it is neither."""
    parts = _split_name(name)
    if parts is None:
        return None
    if parts[1] in LABEL_NAMES:
        return parts[1]
    try:
        return parse_sequence(parts[1])
    except ValueError:
        return None


def _read_case(folder: Path) -> CaseFiles | None:
    found: dict[Sequence | str, Path] = {}
    for path in sorted(folder.iterdir()):
        kind = _classify(path.name) if path.is_file() else None
        if kind is None:
            continue
        if kind in found:
            shown = kind.display_name if isinstance(kind, Sequence) else f"label {kind!r}"
            raise ValueError(f"case {folder.name}: both {found[kind].name} and {path.name} are {shown}")
        found[kind] = path
    sequences = {kind: path for kind, path in found.items() if isinstance(kind, Sequence)}
    if not sequences:
        logger.debug("skipping %s: no recognised sequence file", folder)
        return None
    label = next((found[name] for name in LABEL_NAMES if name in found), None)
    return CaseFiles(folder.name, sequences, label)


def find_cases(root: str | Path) -> list[CaseFiles]:
    """Every case folder under ``root`` that holds at least one recognised sequence, sorted by id.

    Sorting makes the case order, and so the train/validation split and the cache, independent of
    the file system's listing order.

    Args:
        root: the dataset folder (a folder of case folders).

    Returns:
        The cases, sorted by ``case_id``.

    Raises:
        ValueError: ``root`` is not a folder, holds no case with a recognisable sequence file, or a
            case has two files for the same sequence (``_t1ce`` and ``-t1c``) or label.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {str(root)!r} does not exist or is not a folder")
    cases = [case for folder in sorted(root.iterdir()) if folder.is_dir() and (case := _read_case(folder))]
    if not cases:
        hint = ""
        if any(isinstance(_classify(path.name), Sequence) for path in root.iterdir() if path.is_file()):
            hint = "; it looks like a single case folder, pass the folder that contains it"
        raise ValueError(
            f"no case found in {str(root)!r}: expected case folders with files like <case>_t1.nii.gz "
            f"(BraTS 2018-2021) or <case>-t1n.nii.gz (BraTS 2023), ending in {', '.join(IMAGE_SUFFIXES)}{hint}"
        )
    return sorted(cases, key=lambda case: case.case_id)


def require_sequences(cases: Iterable[CaseFiles], required: Iterable[Sequence | str]) -> list[CaseFiles]:
    """Check that every case has every required sequence, before any long job starts.

    Args:
        cases: the cases to use, e.g. from :func:`find_cases`.
        required: the sources and targets of the run, in any known spelling.

    Returns:
        The cases, as a list, unchanged.

    Raises:
        ValueError: a required name is unknown, ``cases`` is empty, or a case lacks a sequence
            (the message names the case and the missing sequence).
    """
    cases = list(cases)
    required = tuple(parse_sequence(name) for name in required)
    if not cases:
        raise ValueError("cases must not be empty")
    for case in cases:
        missing = [seq.display_name for seq in required if seq not in case.sequences]
        if missing:
            have = ", ".join(seq.display_name for seq in case.sequences)
            raise ValueError(f"case {case.case_id} has no {', '.join(missing)} image (it has {have})")
    return cases
