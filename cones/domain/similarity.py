"""The similarity measure that the input checks and the registration of ``--prepare`` share.

Both decide whether two sequences show the same head in the same place, so both must score it the
same way; it lives here, below both, so that neither imports the other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HISTOGRAM_BINS", "normalized_mutual_information_of_values"]

HISTOGRAM_BINS = 32
"""Bins per axis of the joint histogram (the registration metric uses as many)."""


def normalized_mutual_information_of_values(a: np.ndarray, b: np.ndarray, bins: int = HISTOGRAM_BINS) -> float:
    """Normalized mutual information (H(a) + H(b)) / H(a, b) of paired intensity samples (1.0 when there are none).

    Each axis of the joint histogram spans its samples' 0.5-99.5 percentiles, so a few extreme voxels
    do not squeeze the brain into a handful of bins.
    """
    if a.size == 0:
        return 1.0
    joint, _, _ = np.histogram2d(a, b, bins=bins, range=[_robust_range(a), _robust_range(b)])
    joint /= joint.sum()
    return float((_entropy(joint.sum(axis=1)) + _entropy(joint.sum(axis=0))) / _entropy(joint))


def _robust_range(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def _entropy(probabilities: np.ndarray) -> float:
    p = probabilities[probabilities > 0]
    return float(-(p * np.log(p)).sum())
