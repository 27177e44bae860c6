"""Intensity calibration: where each method puts the brain's intensities, against the real target.

A PSNR gap does not say whether a method draws the wrong structure or the right structure too dark.
The median and the 90th percentile of a prediction inside the brain, on the model scale
(:class:`~cones.evaluation.protocols.IntensityProtocol`), next to the real target's, show a global
intensity bias at a glance: on the real held-out case the bundled model's median lies below the real
one, the linear baseline's above it. Where the case has an expert label map, the *enhancement
contrast* (median of the enhancing tumour over the median of normal-appearing brain, i.e. the brain
outside the whole tumour) says whether a T1ce-like prediction draws the enhancement as bright as
the contrast agent does, independently of any global scale.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cones.metrics import Region

__all__ = [
    "BrainIntensity",
    "ContrastRegions",
    "brain_intensity",
    "enhancement_contrast",
    "write_intensity_calibration",
]


@dataclass(frozen=True)
class BrainIntensity:
    """The median and 90th percentile of a volume inside the brain (unit scale), and its enhancement contrast.

    ``enhancement_contrast`` is ``None`` without labels, without an enhancing tumour, or where the
    normal-appearing brain's median is 0 (a prediction that is empty there).
    """

    median: float
    p90: float
    enhancement_contrast: float | None = None


@dataclass(frozen=True)
class ContrastRegions:
    """Where the enhancement contrast is read: the enhancing tumour and the normal-appearing brain.

    Taken from the regions the case is scored in (:meth:`of`), so the label map's BraTS regions
    are found once per case and shared by every method.
    """

    enhancing: np.ndarray
    normal: np.ndarray

    @classmethod
    def of(cls, regions: Mapping[Region, np.ndarray]) -> ContrastRegions | None:
        """The enhancing tumour inside the brain and the brain outside the whole tumour.

        Args:
            regions: the case's :func:`~cones.metrics.evaluation_regions`.

        Returns:
            The two masks, or ``None`` when the case has no enhancing tumour (or no labels).
        """
        enhancing = regions.get(Region.ENHANCING_TUMOUR)
        if enhancing is None:
            return None
        brain = regions[Region.BRAIN]
        return cls(enhancing=enhancing & brain, normal=brain & ~regions[Region.WHOLE_TUMOUR])


def enhancement_contrast(volume: np.ndarray, regions: ContrastRegions) -> float | None:
    """Median of ``volume`` in the enhancing tumour over its median in the brain outside the whole tumour.

    Returns:
        The ratio, or ``None`` when the labels hold no enhancing voxel inside the brain, the brain has
        no voxel outside the tumour, or that median is not positive.
    """
    if not regions.enhancing.any() or not regions.normal.any():
        return None
    normal_median = float(np.median(volume[regions.normal]))
    return float(np.median(volume[regions.enhancing])) / normal_median if normal_median > 0 else None


def brain_intensity(
    volume: np.ndarray, brain: np.ndarray, contrast_regions: ContrastRegions | None = None
) -> BrainIntensity:
    """:class:`BrainIntensity` of ``volume`` inside ``brain`` (with the enhancement contrast given its regions).

    Raises:
        ValueError: the shapes differ or the brain is empty.
    """
    brain = np.asarray(brain, dtype=bool)
    if volume.shape != brain.shape:
        raise ValueError(f"volume shape {volume.shape} differs from the brain's {brain.shape}")
    if not brain.any():
        raise ValueError("the brain mask is empty")
    median, p90 = np.percentile(volume[brain], [50.0, 90.0])
    contrast = enhancement_contrast(volume, contrast_regions) if contrast_regions is not None else None
    return BrainIntensity(float(median), float(p90), contrast)


def write_intensity_calibration(
    output_dir: Path, intensities: Mapping[tuple[str, str], BrainIntensity], real: str, title: str
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write ``calibration.csv`` and ``calibration.png``; return them and the summary's section.

    Args:
        output_dir: the evaluation's folder (exists).
        intensities: by (case, method), the real target's under the method name ``real`` included.
        real: the name of the real target among the methods.
        title: the figure's title.

    Returns:
        The files by name, and ``{"quantity", "per_case", "mean"}``: the mean over cases of each
        method's median, 90th percentile and enhancement contrast (over the cases that have one).
    """
    files = {name: output_dir / name for name in ("calibration.csv", "calibration.png")}
    with files["calibration.csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "method", "median", "p90", "enhancement_contrast"])
        for (case, method), value in intensities.items():
            contrast = "" if value.enhancement_contrast is None else value.enhancement_contrast
            writer.writerow([case, method, value.median, value.p90, contrast])
    methods = list(dict.fromkeys(method for _, method in intensities))
    means = {method: _means([v for (_, m), v in intensities.items() if m == method]) for method in methods}
    _plot(intensities, real, files["calibration.png"], title)
    section = {
        "quantity": "median and 90th percentile inside the brain, model scale ([0, 1]), and the enhancement "
        "contrast (enhancing-tumour median over normal-appearing-brain median); 'real' is the real target",
        "per_case": [{"case": case, "method": method, **asdict(v)} for (case, method), v in intensities.items()],
        "mean": means,
    }
    return files, section


def _means(values: list[BrainIntensity]) -> dict[str, float | None]:
    contrasts = [v.enhancement_contrast for v in values if v.enhancement_contrast is not None]
    return {
        "median": float(np.mean([v.median for v in values])),
        "p90": float(np.mean([v.p90 for v in values])),
        "enhancement_contrast": float(np.mean(contrasts)) if contrasts else None,
    }


def _plot(intensities: Mapping[tuple[str, str], BrainIntensity], real: str, path: Path, title: str) -> None:
    """Each method's median and 90th percentile per case against the real target's; the diagonal is calibrated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    methods = [m for m in dict.fromkeys(method for _, method in intensities) if m != real]
    for axis, (field, label) in zip(axes, (("median", "median"), ("p90", "90th percentile")), strict=True):
        for method in methods:
            pairs = [
                (getattr(intensities[(case, real)], field), getattr(value, field))
                for (case, name), value in intensities.items()
                if name == method
            ]
            axis.scatter(*zip(*pairs, strict=True), label=method, s=30)
        axis.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel(f"real target: brain {label}")
        axis.set_ylabel(f"prediction: brain {label}")
        axis.set_title(f"{label} inside the brain (model scale)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
