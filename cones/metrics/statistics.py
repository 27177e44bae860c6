"""Paired significance tests between two methods scored on the same cases (paper: Wilcoxon signed-rank)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import wilcoxon

__all__ = ["WilcoxonResult", "mean_and_std", "wilcoxon_signed_rank"]


class WilcoxonResult(NamedTuple):
    """Outcome of a two-sided Wilcoxon signed-rank test on paired scores."""

    statistic: float
    """The smaller rank sum (scipy's two-sided statistic); NaN when the test cannot run."""
    p_value: float
    """Two-sided p-value; NaN when there are fewer than two pairs, 1.0 when every pair is tied."""
    pairs: int
    """Number of paired scores used."""


def wilcoxon_signed_rank(first: Sequence[float], second: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of paired per-case scores of two methods.

    The test makes no normality assumption, which suits a handful of cases, but it has a floor: with
    ``n`` pairs the smallest exact two-sided p-value is ``2 / 2^n`` (0.125 for four cases), so a
    small test set cannot show significance however large the difference. The exact distribution
    is used for small ``n`` (scipy's ``method="auto"``).

    Args:
        first: scores of the first method, one per case.
        second: scores of the second method on the same cases, in the same order.

    Raises:
        ValueError: the sequences differ in length or hold non-finite values.
    """
    first_array, second_array = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first_array.shape != second_array.shape or first_array.ndim != 1:
        raise ValueError(
            f"paired scores must be two 1D sequences of one length, got {first_array.shape} and {second_array.shape}"
        )
    if not (np.isfinite(first_array).all() and np.isfinite(second_array).all()):
        raise ValueError("paired scores must be finite")
    pairs = len(first_array)
    if pairs < 2:
        return WilcoxonResult(math.nan, math.nan, pairs)
    if np.all(first_array == second_array):
        return WilcoxonResult(0.0, 1.0, pairs)
    result = wilcoxon(first_array, second_array, alternative="two-sided")
    return WilcoxonResult(float(result.statistic), float(result.pvalue), pairs)


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``, as papers report).

    The sample deviation of a single value is undefined: NaN, which the report shows as no ``±``
    rather than a misleading ``± 0``.

    Raises:
        ValueError: ``values`` is empty.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("values must not be empty")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else math.nan
