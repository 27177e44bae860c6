"""``cones evaluate``, ``cones train --arch`` and ``cones bench --arch``: files, contents and refusals."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_cases import train_arguments, write_dataset

from cones.checkpoint import ModelCard, load_model, load_training_state, make_provenance, save_model
from cones.cli import main
from cones.config import NormalizationConfig
from cones.data import find_cases
from cones.demo import BUNDLED_MODEL
from cones.evaluation import (
    CopySource,
    IntensityProtocol,
    LinearMap,
    MeanImputation,
    fit_baselines,
    fit_linear_map,
    load_case_volumes,
    markdown_table,
    on_protocol,
    summarize,
)
from cones.evaluation.intensity import ContrastRegions, brain_intensity, enhancement_contrast
from cones.metrics import Region, evaluation_regions, region_scores
from cones.metrics.brasyn import brasyn_ssim
from cones.model import build_generator, generator_config
from cones.precision import CANDIDATE_PATHS
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
METHODS = ["cones", "pix2pix", "asapnet", "copy_t1", "zero_imputation", "mean_imputation", "linear"]
PROTOCOLS = ["model_scale", "own_percentiles"]


def save_random_model(
    path: Path, arch: str, sources: tuple[str, ...] = SOURCES, targets: tuple[str, ...] = ("t1ce",)
) -> Path:
    torch.manual_seed(0)
    card = ModelCard(
        architecture=arch,
        preset="lite",
        generator=generator_config("lite", 3, len(targets), arch),
        sources=sources,
        targets=targets,
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "sha256:test"),
    )
    return save_model(path, build_generator("lite", 3, len(targets), arch), card)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    paths = {"data": write_dataset(root / "data", cases=3, shape=(10, 36, 32)), "root": root}
    for arch in ("cones", "pix2pix", "asapnet"):
        paths[arch] = save_random_model(root / f"{arch}.pt", arch)
    return paths


def evaluate_arguments(setup: dict[str, Path], output: Path, *archs: str) -> list[str]:
    models = [argument for arch in archs for argument in ("--model", str(setup[arch]))]
    return ["evaluate", *models, "--data", str(setup["data"]), "--output", str(output), "--device", "cpu"]


@pytest.fixture(scope="module")
def evaluation(setup: dict[str, Path]) -> Path:
    output = setup["root"] / "evaluation"
    assert main(evaluate_arguments(setup, output, "cones", "pix2pix", "asapnet")) == 0
    return output


def read_rows(evaluation: Path) -> list[dict[str, str]]:
    with (evaluation / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_evaluate_writes_scores_per_case_protocol_method_and_region(evaluation: Path) -> None:
    rows = read_rows(evaluation)
    regions = {"whole", "brain", "tumour_bbox", "enhancing_tumour", "tumour_core", "whole_tumour"}
    assert len(rows) == 3 * len(PROTOCOLS) * len(METHODS) * len(regions)
    assert {row["method"] for row in rows} == set(METHODS)
    assert {row["protocol"] for row in rows} == set(PROTOCOLS)
    assert {row["region"] for row in rows} == regions
    whole = [row for row in rows if row["region"] == "whole" and row["protocol"] == "model_scale"]
    zero_whole = [float(row["ssim"]) for row in whole if row["method"] == "zero_imputation"]
    copy_whole = [float(row["ssim"]) for row in whole if row["method"] == "copy_t1"]
    assert max(zero_whole) < min(copy_whole)  # the anatomy of T1 is closer to T1ce than an empty image
    for name in ("spectrum.png", "examples.png"):
        assert (evaluation / name).stat().st_size > 10_000


@pytest.mark.parametrize("protocol", list(IntensityProtocol))
def test_evaluate_scores_are_the_region_metrics_of_each_method(
    setup: dict[str, Path], evaluation: Path, protocol: IntensityProtocol
) -> None:
    rows = [
        row
        for row in read_rows(evaluation)
        if row["case"] == "CASE-001" and row["method"] == "copy_t1" and row["protocol"] == protocol.value
    ]
    case = next(case for case in find_cases(setup["data"]) if case.case_id == "CASE-001")
    volumes = load_case_volumes(case, SOURCES, Sequence.T1CE, NormalizationConfig())
    prediction = on_protocol(CopySource(Sequence.T1, NormalizationConfig()).predict(volumes), volumes.mask, protocol)
    real = on_protocol(volumes.target, volumes.mask, protocol)
    expected = region_scores(prediction, real, evaluation_regions(volumes.mask, volumes.labels), axis=0)
    assert {row["region"] for row in rows} == {region.value for region in expected}
    for row in rows:
        for metric, value in expected[Region(row["region"])].items():
            assert float(row[metric.value]) == pytest.approx(value)


def test_protocols_differ_where_a_method_is_off_in_brightness_only(setup: dict[str, Path]) -> None:
    """A darker copy of the real target loses on the model scale and is perfect on its own percentiles."""
    case = find_cases(setup["data"])[0]
    volumes = load_case_volumes(case, SOURCES, Sequence.T1CE, NormalizationConfig())
    darker = 0.6 * volumes.target
    brain = {Region.BRAIN: volumes.mask}
    scores = {
        protocol: region_scores(
            on_protocol(darker, volumes.mask, protocol), on_protocol(volumes.target, volumes.mask, protocol), brain
        )[Region.BRAIN]
        for protocol in IntensityProtocol
    }
    assert scores[IntensityProtocol.MODEL_SCALE]["mae"] > 0.05
    assert scores[IntensityProtocol.OWN_PERCENTILES]["mae"] < 1e-6  # float32 rounding


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_evaluate_summary_has_statistics_between_every_pair(evaluation: Path, protocol: str) -> None:
    summary = json.loads((evaluation / "summary.json").read_text())
    assert list(summary["methods"]) == METHODS and summary["target"] == "t1ce"
    assert summary["cases"] == ["CASE-000", "CASE-001", "CASE-002"]
    assert list(summary["protocols"]) == PROTOCOLS
    section = summary["protocols"][protocol]
    whole = section["scores"]["whole"]["cones"]["psnr"]
    assert whole["n"] == 3 and whole["std"] > 0
    tests = section["wilcoxon"]["tumour_bbox"]["ssim"]
    assert len(tests) == len(METHODS) * (len(METHODS) - 1) // 2
    assert all(test["pairs"] == 3 and 0 < test["p_value"] <= 1 for test in tests)
    tables = (evaluation / "table.md").read_text().split("## ")[1:]
    assert len(tables) == len(PROTOCOLS)
    table = [line for line in tables[PROTOCOLS.index(protocol)].splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(METHODS) and table[2].startswith("| cones |") and "(p=" not in table[2]
    assert ("spectral distance" in table[0]) == (protocol == "model_scale")
    p_value = next(t["p_value"] for t in section["wilcoxon"]["whole"]["psnr"] if t["second"] == "pix2pix")
    mean = section["scores"]["whole"]["pix2pix"]["psnr"]["mean"]
    assert table[3].split("|")[2].strip().startswith(f"{mean:.2f} ± ") and f"(p={p_value:.3g})" in table[3]


def test_evaluate_summary_has_spectra_on_the_model_scale(evaluation: Path) -> None:
    summary = json.loads((evaluation / "summary.json").read_text())
    distances = summary["spectrum"]["distances"]
    assert set(distances) == set(METHODS)
    assert distances["zero_imputation"]["all"] > distances["copy_t1"]["all"]
    with (evaluation / "spectrum.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["frequency_cycles_per_pixel", "real", *METHODS]


def assert_same_map(mine: LinearMap, expected: LinearMap) -> None:
    """Equal up to rounding: a leave-one-out map is a total minus a share, not a sum of the others."""
    assert mine.sources == expected.sources
    assert mine.coefficients == pytest.approx(expected.coefficients, rel=1e-9)
    assert mine.bias == pytest.approx(expected.bias, rel=1e-9)


def test_fitted_baselines_leave_the_case_out_or_use_the_given_cases(setup: dict[str, Path]) -> None:
    cases = find_cases(setup["data"])
    normalization = NormalizationConfig()
    volumes = [load_case_volumes(case, SOURCES, Sequence.T1CE, normalization) for case in cases]
    means = [float(v.target[v.mask].mean()) for v in volumes]
    left_out = fit_baselines(cases, None, SOURCES, Sequence.T1CE, normalization)
    prediction = left_out.mean.predict(volumes[0])
    assert prediction[volumes[0].mask] == pytest.approx(np.mean(means[1:]))
    assert np.all(prediction[~volumes[0].mask] == 0)
    assert_same_map(left_out.linear.maps["CASE-000"], fit_linear_map(volumes[1:], SOURCES, normalization))
    assert left_out.fitted_on == "leave-one-out over the evaluated cases"
    given = fit_baselines(cases[:1], setup["data"], SOURCES, Sequence.T1CE, normalization)
    assert given.mean.values == {"CASE-000": pytest.approx(np.mean(means))}
    assert list(given.linear.maps) == ["CASE-000"]
    assert_same_map(given.linear.maps["CASE-000"], fit_linear_map(volumes, SOURCES, normalization))
    assert given.fitted_on.startswith(str(setup["data"])) and "3 cases" in given.fitted_on
    assert fit_baselines(cases[:1], None, SOURCES, Sequence.T1CE, normalization) is None
    with pytest.raises(ValueError, match="no value for case"):
        MeanImputation({}).predict(volumes[0])
    with pytest.raises(ValueError, match="no map for case"):
        left_out.linear.predict(replace(volumes[0], case_id="CASE-009"))


def test_fitted_baselines_refuse_an_empty_fit_folder(setup: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no case found in"):
        fit_baselines(find_cases(setup["data"]), tmp_path, SOURCES, Sequence.T1CE, NormalizationConfig())


def test_evaluate_scores_the_linear_baseline_above_the_floors(evaluation: Path) -> None:
    """The generated cases make T1ce a near-linear function of T1, T2 and FLAIR: the learned map must find it."""
    brain = {
        (row["case"], row["method"]): float(row["psnr"])
        for row in read_rows(evaluation)
        if row["region"] == "brain" and row["protocol"] == "model_scale"
    }
    for case in ("CASE-000", "CASE-001", "CASE-002"):
        floors = [brain[(case, method)] for method in ("copy_t1", "mean_imputation", "zero_imputation")]
        assert brain[(case, "linear")] > max(floors) + 3.0
    summary = json.loads((evaluation / "summary.json").read_text())
    assert summary["baselines"]["fitted_on"] == "leave-one-out over the evaluated cases"
    maps = summary["baselines"]["linear"]
    assert set(maps) == {"CASE-000", "CASE-001", "CASE-002"} and set(maps["CASE-000"]["coefficients"]) == set(SOURCES)


def test_evaluate_writes_the_intensity_calibration(evaluation: Path) -> None:
    with (evaluation / "calibration.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * (len(METHODS) + 1) and {row["method"] for row in rows} == {"real", *METHODS}
    values = {(row["case"], row["method"]): (float(row["median"]), float(row["p90"])) for row in rows}
    assert values[("CASE-000", "zero_imputation")] == (0.0, 0.0)
    median, p90 = values[("CASE-000", "real")]
    assert 0 < median < p90 <= 1
    mean = values[("CASE-000", "mean_imputation")]
    assert mean[0] == pytest.approx(mean[1])  # one constant fills the brain
    assert (evaluation / "calibration.png").stat().st_size > 10_000
    summary = json.loads((evaluation / "summary.json").read_text())
    reals = [values[(case, "real")][0] for case in summary["cases"]]
    assert summary["calibration"]["mean"]["real"]["median"] == pytest.approx(np.mean(reals))
    contrasts = {(row["case"], row["method"]): row["enhancement_contrast"] for row in rows}
    assert contrasts[("CASE-000", "zero_imputation")] == ""  # no normal-appearing brain above 0
    assert float(contrasts[("CASE-000", "mean_imputation")]) == pytest.approx(1.0)
    assert float(contrasts[("CASE-000", "real")]) > 1.2  # the generated T1ce enhances


def test_enhancement_contrast_is_the_enhancing_median_over_the_normal_brain_median() -> None:
    brain = np.zeros((4, 6, 6), dtype=bool)
    brain[:, 1:5, 1:5] = True
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[1, 2, 2:4], labels[2, 2, 2] = 4, 2
    volume = np.where(brain, 0.4, 0.0)
    volume[labels == 4] = 1.0
    volume[labels == 2] = 5.0  # oedema is not normal-appearing brain: it must not move the denominator
    regions = ContrastRegions.of(evaluation_regions(brain, labels))
    assert enhancement_contrast(volume, regions) == pytest.approx(2.5)
    brats_2023 = ContrastRegions.of(evaluation_regions(brain, np.where(labels == 4, 3, labels)))
    assert enhancement_contrast(volume, brats_2023) == pytest.approx(2.5)
    assert ContrastRegions.of(evaluation_regions(brain, np.where(labels == 4, 1, labels))) is None
    assert ContrastRegions.of(evaluation_regions(brain)) is None
    assert brain_intensity(volume, brain).enhancement_contrast is None
    assert brain_intensity(volume, brain, regions).enhancement_contrast == pytest.approx(2.5)


def test_evaluate_writes_brasyn_ssim_for_cases_with_labels(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", cases=2, shape=(12, 36, 32))
    model = save_random_model(tmp_path / "cones.pt", "cones")
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--output", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "brasyn_ssim.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["method"] for row in rows} == {"cones", "copy_t1", "mean_imputation", "linear"}  # not the constant
    case = load_case_volumes(find_cases(data)[0], SOURCES, Sequence.T1CE, NormalizationConfig())
    copied = CopySource(Sequence.T1, NormalizationConfig()).predict(case)
    expected = brasyn_ssim(copied, case.raw_target, case.labels > 0)
    row = next(row for row in rows if row["case"] == case.case_id and row["method"] == "copy_t1")
    assert (float(row["tumour"]), float(row["non_tumour"])) == pytest.approx((expected.tumour, expected.non_tumour))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["brasyn_ssim"]["cases"] == 2


def test_evaluate_refuses_what_it_cannot_compare(
    setup: dict[str, Path], evaluation: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(evaluate_arguments(setup, evaluation, "cones")) == 2
    assert "already holds an evaluation" in capsys.readouterr().err
    flair = save_random_model(tmp_path / "flair.pt", "cones", sources=("t1", "t1ce", "t2"), targets=("flair",))
    arguments = evaluate_arguments(setup, tmp_path / "out", "cones")
    assert main([*arguments, "--model", str(flair)]) == 2
    assert "differ in targets" in capsys.readouterr().err
    assert main([*arguments, "--cases", "CASE-009"]) == 2
    assert "CASE-009" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--fit-from", "--mean-from"])
def test_evaluate_one_case_fits_the_baselines_on_the_given_cases(
    setup: dict[str, Path], tmp_path: Path, option: str
) -> None:
    arguments = evaluate_arguments(setup, tmp_path / "one", "pix2pix")
    assert main([*arguments, "--cases", "CASE-001", option, str(setup["data"])]) == 0
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert list(summary["methods"]) == ["pix2pix", "copy_t1", "zero_imputation", "mean_imputation", "linear"]
    assert summary["baselines"]["fitted_on"].startswith(str(setup["data"]))
    for section in summary["protocols"].values():
        assert section["wilcoxon"]["whole"]["psnr"][0]["p_value"] is None  # one pair: no test
        assert section["scores"]["whole"]["pix2pix"]["psnr"]["std"] is None  # one case: no deviation
    table = (tmp_path / "one" / "table.md").read_text()
    assert "±" not in table and "(p=" not in table


def test_evaluate_ceiling_scores_the_per_case_linear_map_at_or_above_the_learned_one(
    setup: dict[str, Path], tmp_path: Path, snapshot
) -> None:
    """On the cases it was fitted on, the ceiling's squared error is the lowest any linear map reaches."""
    arguments = evaluate_arguments(setup, tmp_path / "ceiling", "pix2pix")
    cases = snapshot(setup["data"])
    assert main([*arguments, "--ceiling"]) == 0
    assert snapshot(setup["data"]) == cases, "the evaluation changed a case file"
    summary = json.loads((tmp_path / "ceiling" / "summary.json").read_text())
    assert list(summary["methods"])[-1] == "linear_ceiling"
    assert "ceiling, not a method" in summary["methods"]["linear_ceiling"]
    rows = [
        row for row in read_rows(tmp_path / "ceiling") if row["protocol"] == "model_scale" and row["region"] == "brain"
    ]
    psnr = {(row["case"], row["method"]): float(row["psnr"]) for row in rows}
    for case in {row["case"] for row in rows}:
        assert psnr[case, "linear_ceiling"] >= psnr[case, "linear"] - 0.05
        assert psnr[case, "linear_ceiling"] > psnr[case, "mean_imputation"]


def test_evaluate_one_case_without_fit_cases_skips_the_fitted_baselines(
    setup: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    arguments = evaluate_arguments(setup, tmp_path / "one", "pix2pix")
    assert main([*arguments, "--cases", "CASE-001"]) == 0
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert list(summary["methods"]) == ["pix2pix", "copy_t1", "zero_imputation"] and summary["baselines"] is None
    assert "skipped" in caplog.text


@pytest.mark.parametrize(
    ("arch", "feature_matching", "perceptual"),
    [("pix2pix", 0.0, 0.0), ("asapnet", 10.0, 0.0), ("pgan", 0.0, 100.0), ("resvit", 0.0, 0.0)],
)
def test_train_arch_writes_a_baseline_with_its_published_losses(
    tmp_path: Path, arch: str, feature_matching: float, perceptual: float
) -> None:
    data = write_dataset(tmp_path / "data", cases=2)
    assert main([*train_arguments(data, tmp_path / "run", iterations=1), "--arch", arch]) == 0
    model = load_model(tmp_path / "run" / "last.pt")
    assert model.card.architecture == arch and model.card.generator == generator_config("lite", 3, 1, arch)
    weights = load_training_state(tmp_path / "run" / "last.pt")["train_config"]["loss_weights"]
    assert weights["feature_matching"] == feature_matching and weights["latent_regularization"] == 0.0
    assert weights["perceptual"] == perceptual
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all((entry["perceptual"] > 0) is (perceptual > 0) for entry in log if entry["kind"] == "train")


def test_bench_prints_one_row_per_architecture(capsys: pytest.CaptureFixture) -> None:
    archs = ["pix2pix", "asapnet", "pgan", "resvit"]
    assert main(["bench", "--preset", "lite", "--arch", *archs, "--no-volume", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == archs
    assert all(float(row.split("|")[6]) > 0 for row in rows), "every architecture's FLOPs are counted"
    parameters = sum(p.numel() for p in build_generator("lite", 3, 1, "pix2pix").parameters())
    assert rows[0].split("|")[5].strip() == f"{parameters:,}"


def test_bench_times_a_volume_with_the_requested_batch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import cones.bench

    batches = []
    synthesize = cones.bench.synthesize_volume

    def recording(*args, **kwargs):
        batches.append(args[5].batch_size)
        return synthesize(*args, **kwargs)

    monkeypatch.setattr(cones.bench, "synthesize_volume", recording)
    arguments = ["bench", "--preset", "lite", "--arch", "pix2pix", "--size", "48x40x6", "--batch-size", "2"]
    assert main([*arguments, "--repeats", "1"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pix2pix")]
    assert row.split("|")[8].strip() == "48x40x6" and float(row.split("|")[9]) >= 0  # rounded: 0.0 when fast
    assert batches == [2]


def test_bench_compare_starts_with_the_authors_whole_slices(capsys: pytest.CaptureFixture) -> None:
    arguments = ["bench", "--model", str(BUNDLED_MODEL), "--compare", "--size", "64x56x6", "--repeats", "1"]
    assert main(arguments) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    paths = [row[4].strip() for row in rows]
    assert paths[0] == "fp32, whole slices" and [path.removesuffix(" (chosen)") for path in paths[1:]] == [
        path.name for path in CANDIDATE_PATHS
    ]
    assert sum(path.endswith("(chosen)") for path in paths) == 1
    skipped_background_psnr = float(rows[1][11])
    assert skipped_background_psnr >= 60.0, "the foreground-only neural field must reproduce whole slices"


def test_markdown_table_of_label_regions_scores_each_present_region_against_the_reference() -> None:
    cases = ("A", "B", "C", "D", "E", "F")
    rows = [
        {"case": case, "method": method, "region": region, "psnr": psnr, "ssim": psnr / 100, "mae": 0.1}
        for index, case in enumerate(cases)
        for method, psnr in (("model", 20.0 + index), ("linear", 18.0 + index / 2))
        for region in ("brain", "enhancing_tumour")
    ]
    summary = {
        "methods": {"model": "a model", "linear": "the linear map"},
        "protocols": {IntensityProtocol.MODEL_SCALE.value: summarize(rows, ["model", "linear"])},
    }
    regions = (Region.BRAIN, Region.ENHANCING_TUMOUR, Region.TUMOUR_CORE)
    table = markdown_table(summary, "model", IntensityProtocol.MODEL_SCALE, regions=regions).splitlines()
    assert table[0] == "| method | PSNR brain | SSIM brain | PSNR enhancing tumour | SSIM enhancing tumour |"
    assert table[2].startswith("| model | 22.50 ± 1.87 | 0.225 ± 0.019 |") and "p=" not in table[2]
    assert table[3].startswith("| linear | 19.25 ± 0.94 (p=0.0312) |"), "six cases all lost: the exact p is 2/64"
