"""The baselines fitted on data: mean imputation and the learned-linear map.

Both are fitted on the ``fit_from`` cases when given (the models' training data: the fair
comparison, since the models saw those and only those); otherwise leave-one-out over the evaluated
cases, so that no case's own target leaks into its prediction. One pass reads every case once and
keeps only its mean and its normal equations (:mod:`cones.evaluation.linear`).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from cones.config import NormalizationConfig
from cones.data import CaseFiles, find_cases, require_sequences
from cones.evaluation.cases import load_case_volumes
from cones.evaluation.linear import LearnedLinear, NormalEquations, case_equations, leave_one_out_maps, solve_linear_map
from cones.evaluation.methods import MeanImputation
from cones.sequences import Sequence

__all__ = ["FittedBaselines", "fit_baselines"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FittedBaselines:
    """The fitted methods and, for the report, where they were fitted."""

    mean: MeanImputation
    linear: LearnedLinear
    fitted_on: str

    def to_dict(self) -> dict[str, Any]:
        """Where the baselines were fitted, each case's mean and linear map."""
        return {
            "fitted_on": self.fitted_on,
            "mean_imputation": self.mean.values,
            "linear": {case_id: linear_map.to_dict() for case_id, linear_map in self.linear.maps.items()},
        }


def _case_fits(
    cases: SequenceOf[CaseFiles], sources: SequenceOf[Sequence], target: Sequence, normalization: NormalizationConfig
) -> dict[str, tuple[float, NormalEquations]]:
    """Per case: the real target's mean inside the brain (unit scale) and its normal equations."""
    fits = {}
    for case in cases:
        volumes = load_case_volumes(case, sources, target, normalization)
        mean = float(volumes.target[volumes.mask].mean())
        fits[case.case_id] = (mean, case_equations(volumes, sources, normalization))
    return fits


def fit_baselines(
    cases: SequenceOf[CaseFiles],
    fit_from: Path | None,
    sources: SequenceOf[Sequence],
    target: Sequence,
    normalization: NormalizationConfig,
) -> FittedBaselines | None:
    """Mean imputation and the learned-linear map for every case of ``cases``.

    Args:
        cases: the evaluated cases.
        fit_from: folder of cases to fit on; ``None``: leave-one-out over ``cases``.
        sources, target, normalization: the models' (see :func:`cones.evaluation.evaluate`).

    Returns:
        The baselines, or ``None`` (with a warning) for a single case and no ``fit_from``.

    Raises:
        ValueError: ``fit_from`` holds no case, or a case without ``sources`` and ``target``.
    """
    if fit_from is not None:
        reference = require_sequences(find_cases(fit_from), (*sources, target))
        fits = _case_fits(reference, sources, target, normalization)
        mean = float(np.mean([value for value, _ in fits.values()]))
        linear = solve_linear_map(reduce(operator.add, (eq for _, eq in fits.values())), sources, normalization)
        return FittedBaselines(
            MeanImputation({case.case_id: mean for case in cases}),
            LearnedLinear({case.case_id: linear for case in cases}),
            f"{fit_from} ({len(fits)} cases: {', '.join(fits)})",
        )
    if len(cases) < 2:
        logger.warning("mean imputation and the linear baseline skipped: one case and no --fit-from folder")
        return None
    fits = _case_fits(cases, sources, target, normalization)
    means = {
        case_id: float(np.mean([value for other, (value, _) in fits.items() if other != case_id])) for case_id in fits
    }
    maps = leave_one_out_maps({case_id: eq for case_id, (_, eq) in fits.items()}, sources, normalization)
    return FittedBaselines(MeanImputation(means), LearnedLinear(maps), "leave-one-out over the evaluated cases")
