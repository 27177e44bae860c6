"""The real leave-one-out yardstick (Testing/experiments/real_loo.py): fold data and the bar each fold must meet."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_scripts import load_experiment
from synthetic_cases import write_case

from cones.data import find_cases


@pytest.fixture(scope="module")
def real_loo():
    return load_experiment("real_loo")


def _rows(fold: str, psnr: dict[tuple[str, str], float], ssim: float = 0.5) -> list[dict[str, str]]:
    return [
        {"case": fold, "method": method, "protocol": protocol, "region": "brain", "psnr": str(value),
         "ssim": str(ssim + (0.1 if method == "cones" else 0.0)), "mae": "0.1"}
        for (method, protocol), value in psnr.items()
    ]  # fmt: skip


def _scores(rows: list[dict[str, str]]) -> dict:
    return {(row["method"], row["protocol"], row["region"]): row for row in rows}


def test_a_fold_meets_the_bar_only_by_a_full_decibel_under_both_protocols(real_loo) -> None:
    psnr = {
        ("cones", "model_scale"): 19.0, ("linear", "model_scale"): 17.5,
        ("cones", "own_percentiles"): 15.0, ("linear", "own_percentiles"): 14.5,
        ("copy_t1", "model_scale"): 12.0, ("copy_t1", "own_percentiles"): 12.0,
        ("mean_imputation", "model_scale"): 13.0, ("mean_imputation", "own_percentiles"): 13.0,
    }  # fmt: skip
    verdict = real_loo._meets_bar(_scores(_rows("CASE", psnr)))
    assert verdict.startswith("no:")
    assert "(a) +0.50 dB vs linear" in verdict
    assert "(b)" not in verdict
    psnr[("cones", "own_percentiles")] = 16.0
    assert real_loo._meets_bar(_scores(_rows("CASE", psnr))) == "yes"
    psnr[("copy_t1", "model_scale")] = 19.5
    assert "(b) PSNR vs copy_t1" in real_loo._meets_bar(_scores(_rows("CASE", psnr)))


def test_a_missing_score_fails_the_bar(real_loo) -> None:
    verdict = real_loo._meets_bar(_scores(_rows("CASE", {("cones", "model_scale"): 30.0})))
    assert verdict.startswith("no:")


def test_fold_data_holds_the_generated_cases_once_and_each_real_training_case_repeated(
    real_loo, tmp_path: Path
) -> None:
    generated, real = tmp_path / "generated", tmp_path / "real"
    for index in range(2):
        write_case(generated, f"GEN-{index}", shape=(8, 8, 4), seed=index)
    for name in ("REAL-A", "REAL-B"):
        write_case(real, name, shape=(8, 8, 4), seed=7)
    recipe = real_loo.Recipe(iterations=1, real_copies=3)
    data = real_loo.fold_data(generated, [real / "REAL-A"], recipe, tmp_path / "fold")
    ids = sorted(case.case_id for case in find_cases(data))
    assert ids == ["GEN-0", "GEN-1", "REAL-A-copy1", "REAL-A-copy2", "REAL-A-copy3"]
    assert (data / "REAL-A-copy2").resolve() == (real / "REAL-A").resolve()
    fit_from = real_loo.fit_cases([real / "REAL-A"], tmp_path / "fold")
    assert [case.case_id for case in find_cases(fit_from)] == ["REAL-A"]


def test_fold_data_can_leave_the_generated_cases_out_of_training_but_keeps_the_validation_case(
    real_loo, tmp_path: Path
) -> None:
    generated, real = tmp_path / "generated", tmp_path / "real"
    for case_id in ("GEN-0", "GEN-1", real_loo.VALIDATION_CASE):
        write_case(generated, case_id, shape=(8, 8, 4), seed=1)
    write_case(real, "REAL-A", shape=(8, 8, 4), seed=7)
    for training_cases, expected in ((0, []), (1, ["GEN-0"])):
        recipe = real_loo.Recipe(iterations=1, generated_training_cases=training_cases, real_copies=2)
        data = real_loo.fold_data(generated, [real / "REAL-A"], recipe, tmp_path / f"fold-{training_cases}")
        ids = sorted(case.case_id for case in find_cases(data))
        assert ids == sorted([*expected, real_loo.VALIDATION_CASE, "REAL-A-copy1", "REAL-A-copy2"])


def test_the_table_lists_the_ceiling_without_a_verdict(real_loo) -> None:
    psnr = {
        (method, protocol): 15.0
        for method in ("cones", "linear", "copy_t1", "mean_imputation", "linear_ceiling")
        for protocol in ("model_scale", "own_percentiles")
    }
    tables = {"metrics": _rows("CASE", psnr), "calibration": [], "uncertainty": []}
    lines = real_loo.render_table({"CASE": tables}, real_loo.Recipe()).splitlines()
    ceiling = next(line for line in lines if "| linear_ceiling |" in line)
    assert "15.00" in ceiling and ceiling.rstrip().endswith("|  |")
