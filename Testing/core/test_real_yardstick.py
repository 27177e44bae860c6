"""The real-data yardstick (Testing/experiments/real_yardstick.py): the recorded split, its refusals, its verdicts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from experiment_scripts import load_experiment

PUBLIC_CASES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "public-brats" / "cases.tsv"


@pytest.fixture(scope="module")
def yardstick():
    return load_experiment("real_yardstick")


def test_the_split_holds_39_real_cases_once_with_mixed_institutions_validating(yardstick) -> None:
    split = yardstick.read_split()
    names = [case.case for case in split]
    assert len(names) == len(set(names)) == 39
    validation = [case for case in split if case.role == "validation"]
    assert len(validation) >= 8
    assert {case.institution for case in validation} == {"BraTS 2013", "CBICA", "TCIA"}
    assert {case.folder for case in split} == {"public-brats", "coregistered"}


@pytest.mark.skipif(not PUBLIC_CASES.is_file(), reason=f"{PUBLIC_CASES} is not here")
def test_the_split_uses_exactly_the_listed_public_cases(yardstick) -> None:
    with PUBLIC_CASES.open(newline="") as handle:
        listed = {row["case"] for row in csv.DictReader(handle, delimiter="\t")}
    public = {case.case for case in yardstick.read_split() if case.folder == "public-brats"}
    assert public == listed


def test_missing_cases_are_refused_with_how_to_get_them(yardstick, tmp_path: Path, capsys) -> None:
    assert yardstick.main(["--public", str(tmp_path / "none"), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "not found" in error and "public-brats/extract" in error
    assert not (tmp_path / "out").exists()


def test_the_split_is_linked_by_role(yardstick, tmp_path: Path) -> None:
    split = [
        yardstick.SplitCase("A", "training", "CBICA", "public-brats"),
        yardstick.SplitCase("B", "validation", "TCIA", "coregistered"),
    ]
    for folder, case in (("public", "A"), ("coregistered", "B")):
        (tmp_path / folder / case).mkdir(parents=True)
    located = yardstick.case_folders(
        split, {"public-brats": tmp_path / "public", "coregistered": tmp_path / "coregistered"}
    )
    halves = yardstick.link_split(split, located, tmp_path / "out")
    assert [path.name for path in halves["training"].iterdir()] == ["A"]
    assert (halves["validation"] / "B").resolve() == (tmp_path / "coregistered" / "B").resolve()


def _figures(model_psnr_b: float, model_psnr_a: float, cases: int = 4) -> dict:
    figures = {}
    for index in range(cases):
        common = {"ssim brain (b)": 0.5, "ssim brain (a)": 0.5, "brasyn_tumour": 0.99, "brasyn_non_tumour": 0.90}
        figures[f"CASE-{index}"] = {
            "cones": {
                **common, "psnr brain (b)": model_psnr_b, "psnr brain (a)": model_psnr_a, "ssim brain (b)": 0.6,
                "ssim brain (a)": 0.6, "median": 0.42, "enhancement_contrast": 1.8, "brasyn_tumour": 0.995,
                "brasyn_non_tumour": 0.95, "spearman": 0.4, "top_decile_ratio": 2.5,
            },
            "linear": {**common, "psnr brain (b)": 17.0, "psnr brain (a)": 10.0},
            "copy_t1": {**common, "psnr brain (b)": 13.0, "psnr brain (a)": 13.0},
            "real": {"median": 0.40, "enhancement_contrast": 2.0},
        }  # fmt: skip
    return figures


def test_verdicts_need_a_full_decibel_over_linear_under_both_protocols(yardstick) -> None:
    checks = yardstick.verdicts(_figures(18.5, 12.0), True, "cones")
    assert all(met for _, met, _ in checks), checks
    failed = {name for name, met, _ in yardstick.verdicts(_figures(17.9, 12.0), True, "cones") if not met}
    assert failed == {"mean brain PSNR (b) >= linear + 1.0 dB"}
    figures = _figures(18.5, 12.0)
    for case in list(figures)[:2]:
        figures[case]["cones"]["psnr brain (b)"] = 16.0
        figures[case]["cones"]["enhancement_contrast"] = 1.0
    failed = {name for name, met, _ in yardstick.verdicts(figures, False, "cones") if not met}
    assert failed == {
        "mean brain PSNR (b) >= linear + 1.0 dB",
        "beats linear on >= 3 of 4 cases (b)",
        "enhancement contrast within 25 % of the real one on average",
    }


def test_the_table_lists_every_case_and_the_cases_the_model_loses(yardstick) -> None:
    figures = _figures(18.5, 12.0)
    figures["CASE-1"]["cones"]["psnr brain (a)"] = 9.0
    for cases in figures.values():
        cases["other"] = {**cases["cones"], "psnr brain (b)": 16.0}
    checks = {name: yardstick.verdicts(figures, False, name) for name in ("cones", "other")}
    text = yardstick.render(figures, checks, "python x", {"cones": "model A", "other": "model B"})
    assert "Cases `cones` loses to the linear map (either protocol): CASE-1 (+1.50 dB (b), -1.00 dB (a))\n" in text
    assert "Cases `other` loses to the linear map (either protocol): CASE-0 (-1.00 dB (b), +2.00 dB (a))," in text
    assert "`cones`: model A; `other`: model B." in text
    assert text.count("| CASE-3 | ") == 5  # both models, linear, copy_t1 and the real target
