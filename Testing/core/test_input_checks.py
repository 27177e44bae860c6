"""Input checks against the training domain (issue 18): each check fires on its case, and only there.

The domain is measured on generated cases (``synthetic_cases``, large enough to count as a brain);
a clean case of another seed must pass every check without a finding, and each broken variant must
be named by its check. The real cases are checked in Testing/real/test_input_checks_real.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import case_images, tissue_labels, train_arguments, write_dataset
from tiny_models import TINY_GENERATOR

from cones.checkpoint import ModelCard, read_model_card, save_model
from cones.checkpoint.card import make_provenance
from cones.checkpoint.layout import FORMAT_VERSION
from cones.cli import main
from cones.config import NormalizationConfig
from cones.data import find_cases
from cones.domain import (
    InputsRefused,
    Preparation,
    Severity,
    SourceStatistics,
    TrainingDomain,
    check_inputs,
    measure_cases,
)
from cones.model import CoNeSGenerator
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
BRAIN_SHAPE = (48, 112, 112)
"""(z, y, x) voxels at 1 mm: an ellipsoidal brain of about 170 cm3, which counts as a skull-stripped brain."""


def brain_case(seed: int, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[Sequence, sitk.Image]:
    images = case_images(shape=BRAIN_SHAPE, seed=seed, spacing=spacing)
    return {Sequence.T1: images["t1"], Sequence.T2: images["t2"], Sequence.FLAIR: images["flair"], "seg": images["seg"]}


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> TrainingDomain:
    data = write_dataset(tmp_path_factory.mktemp("domain"), cases=4, shape=BRAIN_SHAPE, spacing=(1.0, 1.0, 1.0))
    return measure_cases(find_cases(data), SOURCES, NormalizationConfig(), slice_axis=0)


@pytest.fixture(scope="module")
def card(domain: TrainingDomain) -> ModelCard:
    return ModelCard(
        architecture="cones",
        preset=None,
        generator=TINY_GENERATOR,
        sources=SOURCES,
        targets=(Sequence.T1CE,),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "test"),
        training_domain=domain,
    )


def sources_of(case: dict) -> dict[Sequence, sitk.Image]:
    return {sequence: case[sequence] for sequence in SOURCES}


def with_volume(image: sitk.Image, values: np.ndarray) -> sitk.Image:
    result = sitk.GetImageFromArray(values.astype(np.float32))
    result.CopyInformation(image)
    return result


def findings(card: ModelCard, images: dict, preparation: Preparation = Preparation.AS_GIVEN) -> dict[str, Severity]:
    return {result.check: result.severity for result in check_inputs(card, images, preparation).results}


def test_the_domain_measures_what_the_cases_are(domain: TrainingDomain) -> None:
    assert domain.cases == 4 and domain.skull_stripped and domain.in_plane_spacing_mm == (1.0, 1.0)
    assert [statistics.sequence for statistics in domain.statistics] == list(SOURCES)
    np.testing.assert_allclose(domain.statistics_of(Sequence.T1).tissue_ranks, (1 / 6, 1 / 2, 5 / 6), atol=0.02)
    t2 = domain.statistics_of(Sequence.T2)
    # T1's brightest third is white matter, which T2 shows dark and its darkest third (CSF, lesion) bright
    assert t2.tissue_ranks[2] < 0.3 < 0.7 < t2.tissue_ranks[0], t2.tissue_ranks


def test_a_clean_case_passes_every_check(card: ModelCard) -> None:
    report = check_inputs(card, sources_of(brain_case(seed=10)))
    assert report.results == ()
    assert set(report.checked) == {
        "empty-or-constant",
        "label-map",
        "identical-sources",
        "skull",
        "spacing",
        "registration",
        "mirrored",
        "sequence-contrast",
        "intensity-range",
    }


def label_map(image: sitk.Image, seed: int) -> sitk.Image:
    """A tissue label map (1 white matter ... 4 lesion) on the image's grid, as a segmentation tool writes it."""
    labels = sitk.GetImageFromArray(tissue_labels(BRAIN_SHAPE, seed))
    labels.CopyInformation(image)
    return labels


def test_a_label_map_or_a_mask_given_as_an_image_is_an_error(card: ModelCard) -> None:
    case = brain_case(seed=10)
    report = check_inputs(card, {**sources_of(case), Sequence.T1: label_map(case[Sequence.T1], seed=10)})
    assert [(r.check, r.severity, r.sequences) for r in report.results] == [
        ("label-map", Severity.ERROR, (Sequence.T1,))
    ]
    with pytest.raises(InputsRefused, match="T1: it holds only 4 distinct integer values"):
        report.raise_if_refused()
    mask = check_inputs(card, {**sources_of(case), Sequence.T2: case["seg"]}).results
    assert [(r.check, r.severity) for r in mask] == [("empty-or-constant", Severity.ERROR)]
    assert "(a mask, not an MR image?)" in mask[0].message


def test_identical_sources_are_an_error(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    assert findings(card, {**case, Sequence.FLAIR: case[Sequence.T2]}) == {"identical-sources": Severity.ERROR}
    t2 = sitk.GetArrayFromImage(case[Sequence.T2])
    rescaled = with_volume(case[Sequence.T2], np.where(t2 > 0, t2 * 3.0 + 0.5, 0.0))
    assert findings(card, {**case, Sequence.FLAIR: rescaled}) == {"identical-sources": Severity.ERROR}


def test_an_empty_or_constant_volume_is_an_error(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    t2 = sitk.GetArrayFromImage(case[Sequence.T2])
    assert findings(card, {**case, Sequence.T2: with_volume(case[Sequence.T2], np.zeros_like(t2))}) == {
        "empty-or-constant": Severity.ERROR
    }
    constant = np.where(t2 > 0, 7.5, 0.0)
    assert findings(card, {**case, Sequence.T2: with_volume(case[Sequence.T2], constant)}) == {
        "empty-or-constant": Severity.ERROR
    }


def test_swapped_t2_and_flair_are_named(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    swapped = {**case, Sequence.T2: case[Sequence.FLAIR], Sequence.FLAIR: case[Sequence.T2]}
    results = check_inputs(card, swapped).results
    contrast = [result for result in results if result.check == "sequence-contrast"]
    assert len(contrast) == 1 and contrast[0].severity is Severity.WARNING
    assert set(contrast[0].sequences) == {Sequence.T2, Sequence.FLAIR}
    assert "probably swapped" in contrast[0].message


def test_a_skull_shell_is_named_and_the_contrast_checks_wait_for_the_brain(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in BRAIN_SHAPE), indexing="ij")
    radius = np.sqrt((z / 0.75) ** 2 + (y / 0.9) ** 2 + (x / 0.8) ** 2)
    noise = np.random.default_rng(3).uniform(1, 20, BRAIN_SHAPE)
    heads = {}
    for sequence, image in case.items():
        values = sitk.GetArrayFromImage(image)
        heads[sequence] = with_volume(image, np.where(radius < 1.0, values, np.where(radius < 1.2, 900.0, noise)))
    report = check_inputs(card, heads)
    assert {r.check: r.severity for r in report.results} == {"skull": Severity.WARNING}
    assert set(report.results[0].sequences) == set(SOURCES)
    assert "sequence-contrast" in report.skipped and "--prepare" in report.skipped["sequence-contrast"]
    assert findings(card, heads, Preparation.PENDING) == {}, "--prepare will extract the brain"


def test_far_voxel_spacing_is_named(card: ModelCard) -> None:
    coarse = sources_of(brain_case(seed=10, spacing=(2.0, 2.0, 1.0)))
    results = check_inputs(card, coarse).results
    assert {r.check for r in results} == {"spacing"}
    assert all("2 x 2 mm" in r.message and "1 x 1 mm" in r.message for r in results)
    assert findings(card, coarse, Preparation.PENDING) == {}


def test_a_shifted_source_is_named_as_misregistered(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    flair = case[Sequence.FLAIR]
    shifted = with_volume(flair, np.roll(sitk.GetArrayFromImage(flair), 7, axis=2))
    results = [r for r in check_inputs(card, {**case, Sequence.FLAIR: shifted}).results if r.check == "registration"]
    assert [r.sequences for r in results] == [(Sequence.FLAIR,)]
    prepared = check_inputs(card, {**case, Sequence.FLAIR: shifted}, Preparation.DONE)
    (after,) = [r for r in prepared.results if r.check == "registration"]
    assert "--prepare's registration did not align it" in after.message, "checked again after --prepare's registration"


def test_a_full_size_case_is_probed_on_a_sample_and_still_found_misregistered(card: ModelCard) -> None:
    # BraTS's grid: 1.1 million probe voxels, of which an even stride estimates each mutual information
    images = case_images(shape=(155, 240, 240), seed=11, spacing=(1.0, 1.0, 1.0))
    case = {Sequence.T1: images["t1"], Sequence.T2: images["t2"], Sequence.FLAIR: images["flair"]}
    flair = case[Sequence.FLAIR]
    shifted = with_volume(flair, np.roll(sitk.GetArrayFromImage(flair), 7, axis=2))
    findings = {
        name: [r.sequences for r in check_inputs(card, sources).results if r.check == "registration"]
        for name, sources in (("aligned", case), ("shifted", {**case, Sequence.FLAIR: shifted}))
    }
    assert findings == {"aligned": [], "shifted": [(Sequence.FLAIR,)]}


def test_intensities_unlike_the_training_data_are_named(card: ModelCard) -> None:
    case = sources_of(brain_case(seed=10))
    t1 = sitk.GetArrayFromImage(case[Sequence.T1])
    bright_spot = t1.copy()
    bright_spot[t1 > 0] = np.square(t1[t1 > 0] / t1.max()) ** 3 * 1000 + 1  # most of the brain squeezed to the dark end
    results = check_inputs(card, {**case, Sequence.T1: with_volume(case[Sequence.T1], bright_spot)}).results
    assert "intensity-range" in {r.check for r in results}
    assert any(r.check == "intensity-range" and r.sequences == (Sequence.T1,) for r in results)


def test_a_model_without_statistics_skips_the_contrast_checks(card: ModelCard) -> None:
    bare = dataclasses.replace(card, training_domain=TrainingDomain.assumed())
    case = sources_of(brain_case(seed=10))
    report = check_inputs(bare, {**case, Sequence.T2: case[Sequence.FLAIR], Sequence.FLAIR: case[Sequence.T2]})
    assert report.results == ()
    assert report.skipped["sequence-contrast"] == "the model file records no training statistics"


def test_the_card_fields_round_trip_through_a_model_file(card: ModelCard, tmp_path: Path) -> None:
    path = save_model(tmp_path / "model.pt", CoNeSGenerator(TINY_GENERATOR), card)
    assert read_model_card(path) == card
    assert torch.load(path, weights_only=True)["format_version"] == FORMAT_VERSION == 2
    assert (
        SourceStatistics.from_dict(card.training_domain.statistics[0].to_dict()) == card.training_domain.statistics[0]
    )


def test_a_format_version_1_model_file_still_loads(card: ModelCard, tmp_path: Path) -> None:
    path = save_model(tmp_path / "model.pt", CoNeSGenerator(TINY_GENERATOR), card)
    payload = torch.load(path, weights_only=True)
    del payload["card"]["training_domain"]
    payload["format_version"] = 1
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert read_model_card(old).training_domain == TrainingDomain.assumed()
    assert TrainingDomain.assumed() == TrainingDomain(in_plane_spacing_mm=(1.0, 1.0), skull_stripped=True)
    exported = tmp_path / "exported.pt"
    assert main(["export", str(old), "--output", str(exported)]) == 0
    assert torch.load(exported, weights_only=True)["format_version"] == 2


def test_cones_train_records_the_domain_and_info_prints_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_dataset(tmp_path / "data", cases=3)
    assert main(train_arguments(data, tmp_path / "run", iterations=1)) == 0
    domain = read_model_card(tmp_path / "run" / "last.pt").training_domain
    assert domain.cases == 2, "the validation case is not training data"
    assert [statistics.sequence for statistics in domain.statistics] == list(SOURCES)
    assert domain.in_plane_spacing_mm == (1.0, 1.0) and domain.orientations == ("LPS",)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "run" / "last.pt")]) == 0
    printed = capsys.readouterr().out
    assert "training statistics: 2 cases" in printed and "axial slices, stored as LPS" in printed


@pytest.fixture(scope="module")
def model_file(card: ModelCard, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", CoNeSGenerator(TINY_GENERATOR), card)


def write_inputs(folder: Path, images: dict[Sequence, sitk.Image]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    arguments = []
    for sequence, image in images.items():
        path = folder / f"{sequence.value}.nii.gz"
        sitk.WriteImage(image, str(path))
        arguments.append(f"{sequence.value}={path}")
    return arguments


def synthesize(model: Path, arguments: list[str], output: Path, *extra: str) -> int:
    return main(
        ["synthesize", "--model", str(model), "--device", "cpu", "--input", *arguments, "--output", str(output), *extra]
    )


def test_the_cli_warns_before_the_work_and_reports_beside_the_output(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture, snapshot
) -> None:
    case = sources_of(brain_case(seed=10))
    arguments = write_inputs(
        tmp_path / "in", {**case, Sequence.T2: case[Sequence.FLAIR], Sequence.FLAIR: case[Sequence.T2]}
    )
    output = tmp_path / "out" / "t1ce.nii.gz"
    inputs_before = snapshot(tmp_path / "in")
    assert synthesize(model_file, arguments, output) == 0
    assert snapshot(tmp_path / "in") == inputs_before, "the inputs are left byte for byte as they were"
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert "probably swapped" in warnings[0], "the swap is named first"
    assert "CONES_PROGRESS" in captured.out and "probably swapped" not in captured.out
    report = json.loads((tmp_path / "out" / "t1ce.nii.gz.json").read_text())["input_checks"]
    assert [result["message"] for result in report["results"]] == [line.removeprefix("warning: ") for line in warnings]
    assert report["results"][0]["check"] == "sequence-contrast" and report["results"][0]["severity"] == "warning"
    assert {"registration", "sequence-contrast"} <= set(report["checked"])


def test_strict_turns_warnings_into_refusals_and_writes_nothing(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture, snapshot
) -> None:
    case = sources_of(brain_case(seed=10))
    arguments = write_inputs(tmp_path, {**case, Sequence.T2: case[Sequence.FLAIR], Sequence.FLAIR: case[Sequence.T2]})
    before = snapshot(tmp_path)
    assert synthesize(model_file, arguments, tmp_path / "t1ce.nii.gz", "--strict") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: FLAIR and T2 are probably swapped") or error.startswith("error: T2 and FLAIR")
    assert snapshot(tmp_path) == before


def test_a_label_map_input_is_refused_before_any_work(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture, snapshot
) -> None:
    case = brain_case(seed=10)
    arguments = write_inputs(tmp_path, {**sources_of(case), Sequence.T1: label_map(case[Sequence.T1], seed=10)})
    before = snapshot(tmp_path)
    assert synthesize(model_file, arguments, tmp_path / "t1ce.nii.gz") == 2
    captured = capsys.readouterr()
    assert "CONES_PROGRESS" not in captured.out, "refused before the synthesis started"
    assert captured.err.strip().splitlines()[-1].startswith("error: T1: it holds only 4 distinct integer values")
    assert snapshot(tmp_path) == before


def test_an_existing_report_is_not_replaced_without_overwrite(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture, snapshot
) -> None:
    arguments = write_inputs(tmp_path, sources_of(brain_case(seed=10)))
    (tmp_path / "t1ce.nii.gz.json").write_text("{}")
    before = snapshot(tmp_path)
    assert synthesize(model_file, arguments, tmp_path / "t1ce.nii.gz") == 2
    assert "t1ce.nii.gz.json" in capsys.readouterr().err and snapshot(tmp_path) == before
