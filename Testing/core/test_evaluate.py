"""``cones evaluate``, ``cones train --arch`` and ``cones bench --arch``: files, contents and refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_cases import train_arguments, write_dataset

from cones.checkpoint import ModelCard, load_model, load_training_state, make_provenance, save_model
from cones.cli import main
from cones.config import NormalizationConfig
from cones.data import find_cases
from cones.evaluation import CopySource, MeanImputation, load_case_volumes
from cones.evaluation.evaluate import _mean_imputation
from cones.metrics import Region, evaluation_regions, region_scores
from cones.model import build_generator, generator_config
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
METHODS = ["cones", "pix2pix", "asapnet", "copy_t1", "zero_imputation", "mean_imputation"]


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


def test_evaluate_writes_scores_per_case_method_and_region(evaluation: Path) -> None:
    with (evaluation / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * len(METHODS) * 3
    assert {row["method"] for row in rows} == set(METHODS)
    assert {row["region"] for row in rows} == {"whole", "brain", "tumour_bbox"}
    whole = [row for row in rows if row["region"] == "whole"]
    zero_whole = [float(row["ssim"]) for row in whole if row["method"] == "zero_imputation"]
    copy_whole = [float(row["ssim"]) for row in whole if row["method"] == "copy_t1"]
    assert max(zero_whole) < min(copy_whole)  # the anatomy of T1 is closer to T1ce than an empty image
    for name in ("spectrum.png", "examples.png"):
        assert (evaluation / name).stat().st_size > 10_000


def test_evaluate_scores_are_the_region_metrics_of_each_method(setup: dict[str, Path], evaluation: Path) -> None:
    with (evaluation / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["case"] == "CASE-001" and row["method"] == "copy_t1"]
    case = next(case for case in find_cases(setup["data"]) if case.case_id == "CASE-001")
    volumes = load_case_volumes(case, SOURCES, Sequence.T1CE, NormalizationConfig())
    prediction = CopySource(Sequence.T1, NormalizationConfig()).predict(volumes)
    expected = region_scores(prediction, volumes.target, evaluation_regions(volumes.mask, volumes.labels), axis=0)
    assert {row["region"] for row in rows} == {region.value for region in expected}
    for row in rows:
        for metric, value in expected[Region(row["region"])].items():
            assert float(row[metric.value]) == pytest.approx(value)


def test_evaluate_summary_has_statistics_between_every_pair(evaluation: Path) -> None:
    summary = json.loads((evaluation / "summary.json").read_text())
    assert list(summary["methods"]) == METHODS and summary["target"] == "t1ce"
    assert summary["cases"] == ["CASE-000", "CASE-001", "CASE-002"]
    whole = summary["scores"]["whole"]["cones"]["psnr"]
    assert whole["n"] == 3 and whole["std"] > 0
    tests = summary["wilcoxon"]["tumour_bbox"]["ssim"]
    assert len(tests) == len(METHODS) * (len(METHODS) - 1) // 2
    assert all(test["pairs"] == 3 and 0 < test["p_value"] <= 1 for test in tests)
    distances = summary["spectrum"]["distances"]
    assert set(distances) == set(METHODS)
    assert distances["zero_imputation"]["all"] > distances["copy_t1"]["all"]
    table = (evaluation / "table.md").read_text().splitlines()
    assert len(table) == 2 + len(METHODS) and table[2].startswith("| cones |") and "(p=" not in table[2]
    p_value = next(t["p_value"] for t in summary["wilcoxon"]["whole"]["psnr"] if t["second"] == "pix2pix")
    mean = summary["scores"]["whole"]["pix2pix"]["psnr"]["mean"]
    assert table[3].split("|")[2].strip().startswith(f"{mean:.2f} ± ") and f"(p={p_value:.3g})" in table[3]
    with (evaluation / "spectrum.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["frequency_cycles_per_pixel", "real", *METHODS]


def test_mean_imputation_leaves_the_case_out_or_uses_the_given_cases(setup: dict[str, Path]) -> None:
    cases = find_cases(setup["data"])
    normalization = NormalizationConfig()
    volumes = [load_case_volumes(case, SOURCES, Sequence.T1CE, normalization) for case in cases]
    means = [float(v.target[v.mask].mean()) for v in volumes]
    left_out = _mean_imputation(cases, None, SOURCES, Sequence.T1CE, normalization)
    prediction = left_out.predict(volumes[0])
    assert prediction[volumes[0].mask] == pytest.approx(np.mean(means[1:]))
    assert np.all(prediction[~volumes[0].mask] == 0)
    given = _mean_imputation(cases[:1], setup["data"], SOURCES, Sequence.T1CE, normalization)
    assert given.values == {"CASE-000": pytest.approx(np.mean(means))}
    assert _mean_imputation(cases[:1], None, SOURCES, Sequence.T1CE, normalization) is None
    with pytest.raises(ValueError, match="no value for case"):
        MeanImputation({}).predict(volumes[0])


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


def test_evaluate_one_case_with_mean_from(setup: dict[str, Path], tmp_path: Path) -> None:
    arguments = evaluate_arguments(setup, tmp_path / "one", "pix2pix")
    assert main([*arguments, "--cases", "CASE-001", "--mean-from", str(setup["data"])]) == 0
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert list(summary["methods"]) == ["pix2pix", "copy_t1", "zero_imputation", "mean_imputation"]
    assert summary["wilcoxon"]["whole"]["psnr"][0]["p_value"] is None  # one pair: no test
    assert summary["scores"]["whole"]["pix2pix"]["psnr"]["std"] is None  # one case: no deviation
    table = (tmp_path / "one" / "table.md").read_text()
    assert "±" not in table and "(p=" not in table


@pytest.mark.parametrize(("arch", "feature_matching"), [("pix2pix", 0.0), ("asapnet", 10.0)])
def test_train_arch_writes_a_baseline_with_its_published_losses(
    tmp_path: Path, arch: str, feature_matching: float
) -> None:
    data = write_dataset(tmp_path / "data", cases=2)
    assert main([*train_arguments(data, tmp_path / "run", iterations=1), "--arch", arch]) == 0
    model = load_model(tmp_path / "run" / "last.pt")
    assert model.card.architecture == arch and model.card.generator == generator_config("lite", 3, 1, arch)
    weights = load_training_state(tmp_path / "run" / "last.pt")["train_config"]["loss_weights"]
    assert weights["feature_matching"] == feature_matching and weights["latent_regularization"] == 0.0


def test_bench_prints_one_row_per_architecture(capsys: pytest.CaptureFixture) -> None:
    arguments = ["bench", "--preset", "lite", "--arch", "pix2pix", "asapnet", "--no-volume", "--repeats", "1"]
    assert main(arguments) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["pix2pix", "asapnet"]
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
