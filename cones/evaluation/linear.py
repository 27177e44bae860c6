"""The learned-linear baseline: the target as one least-squares combination of the normalized sources.

Copying T1 and mean imputation learn nothing, so beating them says little. The cheapest baseline
that *learns* is a voxel-wise linear map: the normalized target (on [0, 1], as the metrics see
it) fitted as ``sum_i a_i * source_i + b`` of the sources normalized as the models' inputs are
([-1, 1], :func:`~cones.data.normalize_volume`). A network that does not beat it gains nothing
from its spatial context. (A degree-2 polynomial of the sources was measured worse on the real
held-out case, so there is none.)

The fit runs inside the brain where the target exists, on at most :data:`MAX_VOXELS_PER_CASE`
voxels per case drawn with a fixed seed, so memory does not grow with the volume. Each case
contributes its own normal equations (``X^T X``, ``X^T y``); their sum is the fit on all cases,
and subtracting one case's share gives the leave-one-out fit without a second pass over the data.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from cones.config import NormalizationConfig
from cones.data import foreground_mask, normalize_volume
from cones.evaluation.methods import CaseVolumes
from cones.sequences import Sequence

__all__ = [
    "FIT_SEED",
    "MAX_VOXELS_PER_CASE",
    "LearnedLinear",
    "LinearCeiling",
    "LinearMap",
    "NormalEquations",
    "case_equations",
    "fit_linear_map",
    "fit_voxels",
    "leave_one_out_maps",
    "solve_linear_map",
]

MAX_VOXELS_PER_CASE = 200_000
"""Brain voxels one case contributes to the fit: seven per cent of a 1 mm brain, plenty for four unknowns."""

FIT_SEED = 0
"""Seed of every case's voxel sample; each case draws with its own fresh generator, so what it
contributes does not depend on which other cases are fitted with it (leave-one-out stays exact)."""


@dataclass(frozen=True)
class LinearMap:
    """``target = sum_i coefficients[i] * normalized source i + bias``, clipped to [0, 1].

    Attributes:
        sources: the source sequences, in the order of ``coefficients``.
        coefficients: one weight per source, applied to the source normalized to [-1, 1].
        bias: the constant term.
        normalization: how the sources are normalized and their foreground (the brain) found.
    """

    sources: tuple[Sequence, ...]
    coefficients: tuple[float, ...]
    bias: float
    normalization: NormalizationConfig

    def __post_init__(self) -> None:
        if not self.sources or len(self.coefficients) != len(self.sources):
            raise ValueError(
                f"LinearMap needs one coefficient per source, got {len(self.coefficients)} for sources "
                f"{[s.value for s in self.sources]}"
            )

    def predict(self, sources: Mapping[Sequence, np.ndarray]) -> np.ndarray:
        """The normalized target on [0, 1] (0 outside the sources' foreground), of the sources' shape.

        The clip matches the real target, which its normalization clips to [0, 1] as well.

        Raises:
            ValueError: a source of the map is missing, or a source is unusable (see
                :func:`~cones.data.normalize_volume`).
        """
        missing = [sequence.value for sequence in self.sources if sequence not in sources]
        if missing:
            raise ValueError(f"the linear map needs source sequences {missing}, which were not given")
        mask = foreground_mask([sources[sequence] for sequence in self.sources], self.normalization)
        prediction = np.full(mask.shape, self.bias)
        for sequence, coefficient in zip(self.sources, self.coefficients, strict=True):
            prediction += coefficient * normalize_volume(sources[sequence], mask, self.normalization, sequence.value)
        return np.where(mask, np.clip(prediction, 0.0, 1.0), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The map as JSON: coefficients by source name, and the bias."""
        coefficients = {s.value: c for s, c in zip(self.sources, self.coefficients, strict=True)}
        return {"coefficients": coefficients, "bias": self.bias}


@dataclass(frozen=True)
class NormalEquations:
    """One or more cases' share of a least-squares fit: ``X^T X``, ``X^T y`` and the voxel count.

    ``X`` has one column per source and a last column of ones (the bias).
    """

    gram: np.ndarray
    moment: np.ndarray
    voxels: int

    def __add__(self, other: NormalEquations) -> NormalEquations:
        return NormalEquations(self.gram + other.gram, self.moment + other.moment, self.voxels + other.voxels)

    def __sub__(self, other: NormalEquations) -> NormalEquations:
        return NormalEquations(self.gram - other.gram, self.moment - other.moment, self.voxels - other.voxels)


def fit_voxels(case: CaseVolumes, max_voxels: int = MAX_VOXELS_PER_CASE, seed: int = FIT_SEED) -> np.ndarray:
    """Sorted flat indices of the voxels a case contributes to a fit: its brain, sampled down to ``max_voxels``.

    The brain is where the sources and the real target are both foreground
    (:attr:`CaseVolumes.target_brain`): a voxel the target lacks would pull the fit towards 0.

    Raises:
        ValueError: ``max_voxels`` is below 1, or the case's brain is empty.
    """
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be at least 1, got {max_voxels!r}")
    voxels = np.flatnonzero(case.target_brain)
    if voxels.size == 0:
        raise ValueError(f"case {case.case_id}: no brain voxel where the target is foreground, nothing to fit")
    if voxels.size > max_voxels:
        voxels = np.sort(np.random.default_rng(seed).choice(voxels, max_voxels, replace=False))
    return voxels


def case_equations(
    case: CaseVolumes,
    sources: SequenceOf[Sequence],
    normalization: NormalizationConfig,
    max_voxels: int = MAX_VOXELS_PER_CASE,
    seed: int = FIT_SEED,
) -> NormalEquations:
    """One case's normal equations, from the voxels :func:`fit_voxels` draws of its brain.

    Raises:
        ValueError: ``max_voxels`` is below 1, or the case's brain is empty.
    """
    voxels = fit_voxels(case, max_voxels, seed)
    columns = [
        normalize_volume(case.sources[s], case.mask, normalization, f"case {case.case_id} {s.value}").ravel()[voxels]
        for s in sources
    ]
    design = np.column_stack([*columns, np.ones(voxels.size)]).astype(np.float64)
    target = case.target.ravel()[voxels].astype(np.float64)
    return NormalEquations(design.T @ design, design.T @ target, int(voxels.size))


def solve_linear_map(
    equations: NormalEquations, sources: SequenceOf[Sequence], normalization: NormalizationConfig
) -> LinearMap:
    """The least-squares map of summed normal equations.

    ``lstsq`` rather than ``solve``: a source that duplicates another makes ``X^T X`` singular, and
    the minimum-norm solution still predicts as well as any other.

    Raises:
        ValueError: fewer voxels than unknowns, or equations of another number of sources.
    """
    unknowns = len(sources) + 1
    if equations.gram.shape != (unknowns, unknowns):
        raise ValueError(f"normal equations of shape {equations.gram.shape} do not fit {len(sources)} sources")
    if equations.voxels < unknowns:
        raise ValueError(f"the linear map needs at least {unknowns} voxels, got {equations.voxels}")
    solution = np.linalg.lstsq(equations.gram, equations.moment, rcond=None)[0]
    return LinearMap(tuple(sources), tuple(float(c) for c in solution[:-1]), float(solution[-1]), normalization)


def fit_linear_map(
    cases: Iterable[CaseVolumes],
    sources: SequenceOf[Sequence],
    normalization: NormalizationConfig,
    max_voxels: int = MAX_VOXELS_PER_CASE,
    seed: int = FIT_SEED,
) -> LinearMap:
    """Fit one map on all ``cases`` (e.g. the training data); a generator keeps one case in memory at a time.

    Raises:
        ValueError: no case, or a case that cannot be fitted (see :func:`case_equations`).
    """
    parts = [case_equations(case, sources, normalization, max_voxels, seed) for case in cases]
    if not parts:
        raise ValueError("fit_linear_map needs at least one case")
    return solve_linear_map(reduce(operator.add, parts), sources, normalization)


def leave_one_out_maps(
    equations: Mapping[str, NormalEquations], sources: SequenceOf[Sequence], normalization: NormalizationConfig
) -> dict[str, LinearMap]:
    """Per case id, the map fitted on every other case: nothing of a case's target leaks into its prediction.

    Raises:
        ValueError: fewer than two cases.
    """
    if len(equations) < 2:
        raise ValueError(f"leave-one-out needs at least two cases, got {len(equations)}")
    total = reduce(operator.add, equations.values())
    return {case_id: solve_linear_map(total - own, sources, normalization) for case_id, own in equations.items()}


class LearnedLinear:
    """The learned-linear baseline as an evaluation method (:class:`~cones.evaluation.methods.Method`).

    Args:
        maps: per evaluated case id, the map to predict it with (fitted on other cases: the
            training data, or the other evaluated cases).
    """

    name = "linear"
    description = "least-squares linear map of the normalized sources (+ bias), fitted on other cases"

    def __init__(self, maps: Mapping[str, LinearMap]) -> None:
        self.maps = dict(maps)

    def predict(self, case: CaseVolumes) -> np.ndarray:
        if case.case_id not in self.maps:
            raise ValueError(f"the linear baseline has no map for case {case.case_id}")
        return self.maps[case.case_id].predict(case.sources)


class LinearCeiling:
    """The best voxel-wise linear map of the sources for each case, fitted on that case's own target.

    Not a method (it reads the answer) but a ceiling: what any recalibration of the sources'
    intensities, global per case, could reach at best. Beside the learned-linear baseline it splits
    a fold's gap into what the training cases fail to tell about this case's intensities (linear
    against ceiling) and what only spatial context could add (a model above the ceiling).

    Args:
        sources: the source sequences the map reads.
        normalization: how the sources are normalized (the models').
    """

    name = "linear_ceiling"
    description = "ceiling, not a method: the least-squares linear map of the sources fitted on the case's own target"

    def __init__(self, sources: SequenceOf[Sequence], normalization: NormalizationConfig) -> None:
        self.sources, self.normalization = tuple(sources), normalization

    def predict(self, case: CaseVolumes) -> np.ndarray:
        return fit_linear_map([case], self.sources, self.normalization).predict(case.sources)
