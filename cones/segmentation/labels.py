"""BraTS tumour labels and the evaluation regions built from them.

BraTS labels three tissue classes, necrosis (NCR), oedema (ED) and enhancing tumour (ET), but
scores the nested regions a surgeon cares about: the enhancing tumour (ET), the tumour core
(TC = NCR + ET) and the whole tumour (WT = NCR + ED + ET). The enhancing label is 4 in BraTS
2018-2021 and 3 in BraTS 2023 (and in brainles ``-predseg`` files), so regions are always built
from label *names*, and a reference map's convention is read from the values it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

__all__ = ["BRATS_2018_LABELS", "BRATS_2023_LABELS", "BratsRegion", "LabelSet", "detect_labels", "region_masks"]


class BratsRegion(StrEnum):
    """The nested BraTS evaluation regions, in the order tables show them."""

    ET = "ET"
    TC = "TC"
    WT = "WT"


_TISSUES = ("NCR", "ED", "ET")
_REGION_TISSUES: Mapping[BratsRegion, tuple[str, ...]] = {
    BratsRegion.ET: ("ET",),
    BratsRegion.TC: ("NCR", "ET"),
    BratsRegion.WT: ("NCR", "ED", "ET"),
}


@dataclass(frozen=True)
class LabelSet:
    """Names and values of a label map's classes, background first.

    Attributes:
        names: class names; ``names[0]`` is the background and the tumour classes use the BraTS names
            NCR, ED and ET (each at most once).
        values: the voxel value of each class in the label map, in the same order.
    """

    names: tuple[str, ...]
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        names, values = tuple(str(name) for name in self.names), tuple(int(value) for value in self.values)
        if len(names) != len(values) or len(names) < 2:
            raise ValueError(f"LabelSet needs >= 2 names and as many values, got names={names!r}, values={values!r}")
        if len(set(names)) != len(names) or len(set(values)) != len(values):
            raise ValueError(f"LabelSet names and values must be unique, got names={names!r}, values={values!r}")
        if values[0] != 0:
            raise ValueError(f"LabelSet: the first class is the background and must have value 0, got {values[0]}")
        missing = [name for name in _TISSUES if name not in names]
        if missing:
            raise ValueError(f"LabelSet names {names!r} lack the BraTS class(es) {missing}; regions need all three")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "values", values)

    def value_of(self, name: str) -> int:
        """The voxel value of class ``name``."""
        return self.values[self.names.index(name)]


BRATS_2018_LABELS = LabelSet(("background", "NCR", "ED", "ET"), (0, 1, 2, 4))
"""BraTS 2018-2021 (and ``cones sample-data``): enhancing tumour is 4."""
BRATS_2023_LABELS = LabelSet(("background", "NCR", "ED", "ET"), (0, 1, 2, 3))
"""BraTS 2023 and brainles ``-predseg`` maps: enhancing tumour is 3."""


def detect_labels(labels: np.ndarray) -> LabelSet:
    """The BraTS convention of a reference label map, read from the values it holds.

    A map with neither 3 nor 4 (no enhancing tumour) is read as BraTS 2018; both conventions give it
    the same regions.

    Raises:
        ValueError: the map holds both 3 and 4, or values outside 0-4.
    """
    present = set(np.unique(np.asarray(labels)).tolist())
    unknown = sorted(present - {0, 1, 2, 3, 4})
    if unknown:
        raise ValueError(f"labels hold values {unknown}; BraTS maps hold only 0, 1, 2 and 3 or 4")
    if {3, 4} <= present:
        raise ValueError("labels hold both 3 and 4: cannot tell which one is the enhancing tumour")
    return BRATS_2023_LABELS if 3 in present else BRATS_2018_LABELS


def region_masks(labels: np.ndarray, label_set: LabelSet) -> dict[BratsRegion, np.ndarray]:
    """One boolean mask per BraTS region (ET, TC, WT) of a label map.

    Args:
        labels: an integer label map.
        label_set: which values are NCR, ED and ET in it.
    """
    labels = np.asarray(labels)
    return {
        region: np.isin(labels, [label_set.value_of(name) for name in tissues])
        for region, tissues in _REGION_TISSUES.items()
    }
