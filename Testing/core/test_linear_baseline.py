"""The learned-linear baseline: exact recovery, voxel sampling, leave-one-out and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from cones.config import NormalizationConfig
from cones.data import normalize_volume
from cones.evaluation.linear import (
    LinearCeiling,
    LinearMap,
    case_equations,
    fit_linear_map,
    leave_one_out_maps,
    solve_linear_map,
)
from cones.evaluation.methods import CaseVolumes
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
NORMALIZATION = NormalizationConfig()
RELATION = ((0.2, -0.1, 0.15), 0.5)
"""Coefficients and bias; with sources on [-1, 1] the target stays inside [0.05, 0.95], so no clipping."""


def linear_case(case_id: str, seed: int, relation=RELATION, shape=(6, 20, 20)) -> CaseVolumes:
    """A ball of random source intensities whose normalized target is exactly ``relation`` of the sources."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    mask = z**2 + y**2 + x**2 < 0.9
    sources = {s: np.where(mask, rng.uniform(100, 1000, shape), 0.0).astype(np.float32) for s in SOURCES}
    coefficients, bias = relation
    target = np.full(shape, bias)
    for sequence, coefficient in zip(SOURCES, coefficients, strict=True):
        target += coefficient * normalize_volume(sources[sequence], mask, NORMALIZATION).astype(np.float64)
    return CaseVolumes(case_id, sources, np.where(mask, target, 0.0), mask, labels=None)


def test_linear_map_recovers_known_coefficients_and_predicts_the_target() -> None:
    cases = [linear_case(f"CASE-{n}", seed=n) for n in range(2)]
    fitted = fit_linear_map(cases, SOURCES, NORMALIZATION)
    assert fitted.coefficients == pytest.approx(RELATION[0], abs=1e-9)
    assert fitted.bias == pytest.approx(RELATION[1], abs=1e-9)
    fresh = linear_case("CASE-9", seed=9)
    assert np.abs(fitted.predict(fresh.sources) - fresh.target).max() < 1e-6
    t1, t2, flair = fitted.coefficients
    assert fitted.to_dict() == {"coefficients": {"t1": t1, "t2": t2, "flair": flair}, "bias": fitted.bias}


def test_linear_map_prediction_is_clipped_to_the_unit_range_and_zero_outside_the_brain() -> None:
    case = linear_case("CASE-0", seed=0)
    prediction = LinearMap(SOURCES, (2.0, 0.0, 0.0), 0.5, NORMALIZATION).predict(case.sources)
    brain = prediction[case.mask]
    assert brain.min() == 0.0 and brain.max() == 1.0 and 0 < ((brain > 0) & (brain < 1)).mean() < 1
    assert np.all(prediction[~case.mask] == 0)


def test_each_case_contributes_a_fixed_sample_of_at_most_max_voxels() -> None:
    case = linear_case("CASE-0", seed=0)
    assert case_equations(case, SOURCES, NORMALIZATION).voxels == int(case.mask.sum())
    sampled = case_equations(case, SOURCES, NORMALIZATION, max_voxels=300)
    again = case_equations(case, SOURCES, NORMALIZATION, max_voxels=300)
    other_seed = case_equations(case, SOURCES, NORMALIZATION, max_voxels=300, seed=1)
    assert sampled.voxels == 300 and sampled.gram[-1, -1] == 300  # the bias column counts the voxels
    assert np.array_equal(sampled.gram, again.gram) and not np.array_equal(sampled.gram, other_seed.gram)
    # an exact relation is recovered from any sample
    assert solve_linear_map(sampled, SOURCES, NORMALIZATION).coefficients == pytest.approx(RELATION[0], abs=1e-9)


def test_leave_one_out_excludes_the_held_out_case() -> None:
    """Two cases follow one relation and a third another: only the third's own map is blind to it."""
    other = ((0.05, 0.3, -0.05), 0.4)
    cases = [linear_case("A-0", 0), linear_case("A-1", 1), linear_case("B", 2, relation=other)]
    equations = {case.case_id: case_equations(case, SOURCES, NORMALIZATION) for case in cases}
    maps = leave_one_out_maps(equations, SOURCES, NORMALIZATION)
    assert maps["B"].coefficients == pytest.approx(RELATION[0], abs=1e-9)
    assert maps["B"].bias == pytest.approx(RELATION[1], abs=1e-9)
    expected = fit_linear_map([cases[1], cases[2]], SOURCES, NORMALIZATION)
    assert maps["A-0"].coefficients == pytest.approx(expected.coefficients, rel=1e-9)
    assert maps["A-0"].coefficients != pytest.approx(RELATION[0], abs=1e-3)  # B pulled it away


def test_a_duplicated_source_still_fits() -> None:
    """A singular X^T X (two identical columns) has a least-squares solution that predicts as well."""
    case = linear_case("CASE-0", seed=0)
    sources = {**case.sources, Sequence.T1CE: case.sources[Sequence.T1]}
    twice = (*SOURCES, Sequence.T1CE)
    fitted = fit_linear_map([CaseVolumes("CASE-0", sources, case.target, case.mask, None)], twice, NORMALIZATION)
    assert np.abs(fitted.predict(sources) - case.target).max() < 1e-6


def test_linear_baseline_refuses_what_it_cannot_fit() -> None:
    case = linear_case("CASE-0", seed=0)
    with pytest.raises(ValueError, match="one coefficient per source"):
        LinearMap(SOURCES, (1.0,), 0.0, NORMALIZATION)
    with pytest.raises(ValueError, match=r"needs source sequences \['flair'\]"):
        LinearMap(SOURCES, (1.0, 1.0, 1.0), 0.0, NORMALIZATION).predict({s: case.sources[s] for s in SOURCES[:2]})
    with pytest.raises(ValueError, match="at least one case"):
        fit_linear_map([], SOURCES, NORMALIZATION)
    with pytest.raises(ValueError, match="max_voxels must be at least 1"):
        case_equations(case, SOURCES, NORMALIZATION, max_voxels=0)
    with pytest.raises(ValueError, match="at least 4 voxels, got 3"):
        solve_linear_map(case_equations(case, SOURCES, NORMALIZATION, max_voxels=3), SOURCES, NORMALIZATION)
    with pytest.raises(ValueError, match="do not fit 2 sources"):
        solve_linear_map(case_equations(case, SOURCES, NORMALIZATION), SOURCES[:2], NORMALIZATION)
    with pytest.raises(ValueError, match="at least two cases, got 1"):
        leave_one_out_maps({"CASE-0": case_equations(case, SOURCES, NORMALIZATION)}, SOURCES, NORMALIZATION)
    empty_target = CaseVolumes("CASE-0", case.sources, case.target, case.mask, None, np.zeros_like(case.mask))
    with pytest.raises(ValueError, match="CASE-0: no brain voxel where the target is foreground"):
        case_equations(empty_target, SOURCES, NORMALIZATION)


def test_the_ceiling_fits_each_case_on_its_own_target() -> None:
    """Two cases with two relations: a map fitted on one misses the other, each case's ceiling is exact."""
    other = ((0.05, 0.3, -0.05), 0.4)
    first, second = linear_case("A", 0), linear_case("B", 1, relation=other)
    ceiling = LinearCeiling(SOURCES, NORMALIZATION)
    transferred = fit_linear_map([first], SOURCES, NORMALIZATION).predict(second.sources)
    assert np.abs(transferred - second.target)[second.mask].mean() > 0.05
    for case in (first, second):
        prediction = ceiling.predict(case)
        assert np.abs(prediction - case.target).max() < 1e-6
        assert np.all(prediction[~case.mask] == 0)
