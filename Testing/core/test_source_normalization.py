"""The source-normalization probe (Testing/experiments/source_normalization.py): exact fits and its table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from experiment_scripts import load_experiment
from synthetic_cases import write_case, write_dataset

from cones.evaluation import CaseVolumes


@pytest.fixture(scope="module")
def probe():
    return load_experiment("source_normalization")


def _linear_case(probe, case_id: str, seed: int, normalizer) -> CaseVolumes:
    """A ball whose target on the unit scale is an exact linear map of the sources under ``normalizer``."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, 16) for _ in range(3)), indexing="ij")
    mask = z**2 + y**2 + x**2 < 0.9
    sources = {s: np.where(mask, rng.uniform(100, 1000, mask.shape), 0.0) for s in probe.SOURCES}
    weights = zip((0.05, -0.03, 0.04), probe.SOURCES, strict=True)
    target = 0.5 + sum(weight * normalizer(sources[s], mask) for weight, s in weights)
    return CaseVolumes(case_id, sources, np.where(mask, np.clip(target, 0, 1), 0.0), mask, labels=None)


@pytest.mark.parametrize("name", ["brain median", "brain z-score"])
def test_a_relation_under_one_normalization_is_recovered_exactly_by_that_normalization(probe, name: str) -> None:
    normalizer = probe.NORMALIZERS[name]
    cases = [_linear_case(probe, f"C{seed}", seed, normalizer) for seed in range(3)]
    rows = {case.case_id: probe.design(case, normalizer) for case in cases}
    weights = probe.fit(cases[:2], rows)
    assert weights[:-1] == pytest.approx([0.05, -0.03, 0.04], abs=1e-9)
    psnr_b, ssim_b = probe.scores(cases[2], rows["C2"], weights)[probe.IntensityProtocol.MODEL_SCALE]
    assert psnr_b > 60 and ssim_b > 0.999
    other = probe.NORMALIZERS["histogram peak"]
    other_rows = {case.case_id: probe.design(case, other) for case in cases}
    assert (
        probe.scores(cases[2], other_rows["C2"], probe.fit(cases[:2], other_rows))[probe.IntensityProtocol.MODEL_SCALE][
            0
        ]
        < psnr_b
    )


def test_the_probe_prints_one_row_per_choice_and_case_and_refuses_one_case(
    probe, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_dataset(tmp_path / "data", cases=2, shape=(10, 36, 32))
    assert probe.main(["--real", str(data)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "CASE-" in line]
    assert len(lines) == 2 * len(probe.NORMALIZERS)
    write_dataset(tmp_path / "one", cases=1, shape=(10, 36, 32))
    assert probe.main(["--real", str(tmp_path / "one")]) == 2


def test_with_fit_cases_one_case_is_scored_by_the_map_fitted_on_them(
    probe, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    training = write_dataset(tmp_path / "training", cases=2, shape=(10, 36, 32))
    validation = tmp_path / "validation"
    write_case(validation, "CASE-HELD-OUT", shape=(10, 36, 32), seed=5)
    assert probe.main(["--real", str(validation), "--fit-from", str(training)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "CASE-" in line]
    assert len(rows) == len(probe.NORMALIZERS)
    case = probe.load(str(validation))[0]
    fitted = probe.load(str(training))
    name, normalizer = next(iter(probe.NORMALIZERS.items()))
    design = {item.case_id: probe.design(item, normalizer) for item in [case, *fitted]}
    scores = probe.scores(case, design[case.case_id], probe.fit(fitted, design))
    psnr_b = scores[probe.IntensityProtocol.MODEL_SCALE][0]
    assert rows[0].startswith(f"| {name} | {case.case_id} | {psnr_b:.2f} /")
