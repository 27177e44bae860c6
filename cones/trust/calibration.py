"""Does an uncertainty map point at the errors? Rank correlation and the error of its most uncertain voxels.

The error is fixed so that numbers stay comparable between models and cases: the absolute
difference between the synthesized and the real target after each is normalized by its own 0.5 and
99.5 percentiles inside the brain (:func:`cones.metrics.own_scale.normalize_by_own_percentiles`),
the brain being where the real target is foreground. Two figures say whether the map is worth
showing: the Spearman correlation of uncertainty and error over the brain's voxels, and how much
more error the most uncertain tenth of the brain carries than the least uncertain half. The mean
error per uncertainty decile is the calibration curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from cones.metrics.own_scale import normalize_by_own_percentiles

__all__ = ["DECILES", "UncertaintyCalibration", "calibrate_uncertainty", "plot_calibration", "synthesis_error"]

DECILES = 10

MAX_CORRELATION_VOXELS = 200_000
"""Voxels the Spearman correlation ranks (an even subsample of the brain): the correlation of a
whole brain's 1.5 million voxels moves by less than 0.01 against this, at a tenth of the time."""


def synthesis_error(synthesized: np.ndarray, real: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """|own-scale synthesized - own-scale real| on the volume's grid (0 outside ``brain``)."""
    brain = np.asarray(brain, dtype=bool)
    return np.abs(normalize_by_own_percentiles(synthesized, brain) - normalize_by_own_percentiles(real, brain))


@dataclass(frozen=True)
class UncertaintyCalibration:
    """How one uncertainty map relates to the error of its synthesis.

    Attributes:
        spearman: rank correlation of uncertainty and error over the brain.
        top_decile_ratio: mean error of the 10 % most uncertain brain voxels over that of the 50 % least uncertain.
        decile_errors: mean error per uncertainty decile, least uncertain first.
        mean_uncertainty: mean uncertainty inside the brain (the map's units).
    """

    spearman: float
    top_decile_ratio: float
    decile_errors: tuple[float, ...]
    mean_uncertainty: float

    def to_dict(self) -> dict[str, float | list[float]]:
        values = asdict(self)
        values["decile_errors"] = list(self.decile_errors)
        return values


def calibrate_uncertainty(uncertainty: np.ndarray, error: np.ndarray, brain: np.ndarray) -> UncertaintyCalibration:
    """Compare an uncertainty map with the error map of the same synthesis inside ``brain``.

    Raises:
        ValueError: the shapes differ, or the brain has fewer voxels than deciles.
    """
    brain = np.asarray(brain, dtype=bool)
    if not uncertainty.shape == error.shape == brain.shape:
        raise ValueError(f"shapes differ: uncertainty {uncertainty.shape}, error {error.shape}, brain {brain.shape}")
    values, errors = uncertainty[brain].astype(np.float64), error[brain].astype(np.float64)
    if values.size < DECILES:
        raise ValueError(f"the brain holds {values.size} voxels; the calibration needs at least {DECILES}")
    step = max(1, values.size // MAX_CORRELATION_VOXELS)
    spearman = float(spearmanr(values[::step], errors[::step]).statistic)
    # Ranks, not value thresholds: a map with many equal values (0 at the brain's edge) still splits into deciles.
    order = np.argsort(values, kind="stable")
    ranked_errors = errors[order]
    deciles = tuple(float(chunk.mean()) for chunk in np.array_split(ranked_errors, DECILES))
    least_uncertain_half = ranked_errors[: values.size // 2].mean()
    most_uncertain_tenth = ranked_errors[values.size - values.size // DECILES :].mean()
    ratio = float(most_uncertain_tenth / least_uncertain_half) if least_uncertain_half > 0 else float("inf")
    return UncertaintyCalibration(spearman, ratio, deciles, float(values.mean()))


def plot_calibration(calibrations: Mapping[str, UncertaintyCalibration], path: Path, title: str) -> Path:
    """Write the calibration plot: mean error per uncertainty decile, one line per case (and model).

    Args:
        calibrations: by label (e.g. ``"case / model"``).
        path: the PNG to write.
        title: the plot's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    deciles = np.arange(1, DECILES + 1)
    for label, calibration in calibrations.items():
        axes.plot(
            deciles,
            calibration.decile_errors,
            marker="o",
            label=f"{label} (Spearman {calibration.spearman:.2f}, top 10 % {calibration.top_decile_ratio:.1f}x)",
        )
    axes.set_xticks(deciles)
    axes.set_xlabel("uncertainty decile (1: least uncertain tenth of the brain)")
    axes.set_ylabel("mean error (own-percentile scale)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
