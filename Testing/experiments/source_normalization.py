"""How the sources are normalized, measured on the real cases with the learned-linear map as the probe.

The models read each source mapped by its own 0.5-99.5 brain percentiles to [-1, 1]. The upper
percentile sits on the brightest few voxels (vessels, enhancement, oedema on FLAIR), which differ
between patients more than the parenchyma does, so the same tissue can land at different input
values. Training a network per choice costs an hour of CPU per fold; the linear map costs a second,
and a choice that does not help it is unlikely to help the network read intensities either.

For each choice the script fits the linear map (normalized sources + bias -> the target on the
fixed unit scale, inside the brain) leave-one-case-out over the real cases, and scores it on the
case left out under both protocols, beside the map fitted on that case itself (the ceiling). The
target's normalization is the fixed meaning of the output scale and does not change.

With ``--fit-from`` the map is fitted once on those cases (a training split) and scored on every
case of ``--real`` (its validation cases), as ``cones evaluate --fit-from`` fits its baselines.

Examples::

    python Testing/experiments/source_normalization.py --real ../shared/data/coregistered
    python Testing/experiments/source_normalization.py --real runs/yardstick/validation \
        --fit-from runs/yardstick/training
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from collections.abc import Sequence as SequenceOf

import numpy as np

from cones.config import NormalizationConfig
from cones.data import find_cases, normalize_volume, require_sequences
from cones.evaluation import CaseVolumes, IntensityProtocol, load_case_volumes, on_protocol
from cones.evaluation.linear import fit_voxels
from cones.metrics import psnr, ssim
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
TARGET = Sequence.T1CE
NORMALIZATION = NormalizationConfig()

Normalizer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _percentiles(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    return normalize_volume(volume, brain, NORMALIZATION).astype(np.float64)


def _median(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    return volume / np.median(volume[brain])


def _z_score(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    return (volume - volume[brain].mean()) / volume[brain].std()


def _histogram_mode(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Scaled by the brain histogram's peak: white matter on T1, the parenchyma on T2 and FLAIR."""
    values = volume[brain]
    counts, edges = np.histogram(values, bins=200, range=tuple(np.percentile(values, [1, 99])))
    peak = np.argmax(counts)
    return volume / ((edges[peak] + edges[peak + 1]) / 2)


NORMALIZERS: dict[str, Normalizer] = {
    "percentiles 0.5-99.5 (the models')": _percentiles,
    "brain median": _median,
    "brain z-score": _z_score,
    "histogram peak": _histogram_mode,
}


def design(case: CaseVolumes, normalizer: Normalizer) -> np.ndarray:
    """Rows: the case's brain voxels (where the target exists); columns: the normalized sources and 1."""
    brain = case.target_brain
    columns = [normalizer(case.sources[s].astype(np.float64), case.mask)[brain] for s in SOURCES]
    return np.column_stack([*columns, np.ones(int(brain.sum()))])


def fit(cases: SequenceOf[CaseVolumes], rows: dict[str, np.ndarray]) -> np.ndarray:
    """Least-squares weights over the voxels ``cones evaluate``'s linear map is fitted on (``rows``: each
    case's :func:`design`), so the percentile rows reproduce its linear scores, to within 0.05 dB (here
    the prediction is 0 where the target is background, there the sources' brain decides)."""
    samples = {case.case_id: np.searchsorted(np.flatnonzero(case.target_brain), fit_voxels(case)) for case in cases}
    design_rows = np.concatenate([rows[case.case_id][samples[case.case_id]] for case in cases])
    values = np.concatenate([case.target[case.target_brain][samples[case.case_id]] for case in cases])
    return np.linalg.lstsq(design_rows, values, rcond=None)[0]


def scores(case: CaseVolumes, rows: np.ndarray, weights: np.ndarray) -> dict[IntensityProtocol, tuple[float, float]]:
    """PSNR and SSIM in the brain of the map ``weights`` on the case, under both protocols."""
    prediction = np.zeros(case.mask.shape)
    prediction[case.target_brain] = np.clip(rows @ weights, 0.0, 1.0)
    result = {}
    for protocol in IntensityProtocol:
        real, predicted = on_protocol(case.target, case.mask, protocol), on_protocol(prediction, case.mask, protocol)
        result[protocol] = (psnr(predicted, real, case.mask), ssim(predicted, real, case.mask))
    return result


def load(folder: str) -> list[CaseVolumes]:
    """Every case of ``folder`` with the three sources and the target."""
    return [
        load_case_volumes(case, SOURCES, TARGET, NORMALIZATION)
        for case in require_sequences(find_cases(folder), (*SOURCES, TARGET))
    ]


def main(argv: SequenceOf[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="folder of the real co-registered cases")
    parser.add_argument("--fit-from", help="fit on these cases instead of leave-one-out over --real")
    args = parser.parse_args(argv)
    cases = load(args.real)
    training = load(args.fit_from) if args.fit_from else None
    if len(cases) < 2 and training is None:
        print(f"error: {args.real}: leave-one-out needs two real cases or more, found {len(cases)}")
        return 2
    print("| sources normalized by | left out | PSNR / SSIM (b) | PSNR / SSIM (a) | ceiling PSNR (b) |")
    print("|---|---|---:|---:|---:|")
    for name, normalizer in NORMALIZERS.items():
        rows = {case.case_id: design(case, normalizer) for case in [*cases, *(training or [])]}
        shared = fit(training, rows) if training is not None else None
        for case in cases:
            fitted = shared if shared is not None else fit([other for other in cases if other is not case], rows)
            own = fit([case], rows)
            loo, ceiling = scores(case, rows[case.case_id], fitted), scores(case, rows[case.case_id], own)
            b, a = loo[IntensityProtocol.MODEL_SCALE], loo[IntensityProtocol.OWN_PERCENTILES]
            print(
                f"| {name} | {case.case_id} | {b[0]:.2f} / {b[1]:.3f} | {a[0]:.2f} / {a[1]:.3f} "
                f"| {ceiling[IntensityProtocol.MODEL_SCALE][0]:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
