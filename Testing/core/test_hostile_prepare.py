"""Hostile sources around registration: mirrored voxels, a slab too thin to register, another patient's scan.

Each refusal is checked as in test_hostile_inputs.py: exit code, one ``error:`` line naming the file
and the problem, and the folder byte-identical after (no output, no partial file).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import SimpleITK as sitk
from refusals import assert_refused
from synthetic_cases import case_images, synthesize_arguments, train_arguments, write_dataset
from test_preprocessing import moved

from cones.checkpoint import read_model_card
from cones.cli import main
from cones.domain import check_inputs

SOURCES = ("t1", "t2", "flair")
SHAPE = (40, 80, 72)
"""Large enough to register at the pyramid's coarsest level (2 mm probe voxels, 4 x shrink)."""
SPACING = (1.2, 1.2, 2.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-prepare")
    assert main(train_arguments(write_dataset(root / "data", cases=3), root / "run", iterations=2)) == 0
    return root / "run" / "last.pt"


@pytest.fixture
def refused(capsys: pytest.CaptureFixture, snapshot):
    """``refused(arguments, folder, *expected, code=2)``: :func:`refusals.assert_refused`."""
    return partial(assert_refused, capsys, snapshot)


def write_sources(folder: Path, images: dict[str, sitk.Image]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SOURCES:
        paths[name] = folder / f"PATIENT_{name}.nii.gz"
        sitk.WriteImage(images[name], str(paths[name]))
    return paths


def mirrored(image: sitk.Image) -> sitk.Image:
    """The voxels flipped left-right, the header kept (what a careless converter does)."""
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    flipped.CopyInformation(image)
    return flipped


def images_of(seed: int, shape: tuple[int, int, int] = SHAPE) -> dict[str, sitk.Image]:
    images = case_images(shape, seed=seed, spacing=SPACING)
    return {name: images[name] for name in SOURCES}


# 2. a source mirrored left-right ------------------------------------------------------------------


@pytest.mark.parametrize("prepare", [False, True], ids=["as-given", "prepare"])
def test_a_mirrored_source_is_refused_with_and_without_prepare(
    trained: Path, tmp_path: Path, refused, prepare: bool
) -> None:
    images = images_of(seed=3)  # the lesion lies 9 mm off the midline
    if prepare:  # a raw scan: the head moved 7 degrees and 5 mm, on a 4 mm grid of its own
        images["t2"] = moved(images["t2"], (5.0, -3.0, 4.0), (4.0, -3.0, 2.0), spacing=(0.9, 0.9, 4.0))[0]
    images["t2"] = mirrored(images["t2"])
    paths = write_sources(tmp_path / "in", images)
    extra = ("--prepare",) if prepare else ()
    refused(
        synthesize_arguments(trained, paths, tmp_path / "t1ce.nii.gz", *extra),
        tmp_path,
        f"T2 ({paths['t2']}) looks mirrored left-right against T1",
    )


def test_a_clean_case_is_not_taken_for_a_mirrored_one(trained: Path) -> None:
    card = read_model_card(trained)
    for seed in range(5):
        report = check_inputs(card, images_of(seed, shape=(12, 40, 36)))
        assert "mirrored" in report.checked
        assert [result for result in report.results if result.check == "mirrored"] == [], seed


def test_a_mirrored_source_with_a_lesion_near_the_midline_is_a_warning(trained: Path) -> None:
    images = images_of(seed=5)  # the lesion lies on the midline: the mirror fits only slightly better
    images["t2"] = mirrored(images["t2"])
    (finding,) = check_inputs(read_model_card(trained), images, labels={"t2": "T2 (t2.nii.gz)"}).results
    assert finding.check == "mirrored" and finding.severity == "warning"
    assert finding.message.startswith("T2 (t2.nii.gz) may be mirrored left-right against T1, or another patient's")


# 6. another patient's scan under --prepare ---------------------------------------------------------


def test_the_checks_after_prepare_are_printed_and_recorded(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    images = images_of(seed=0)
    # another patient: the same head shape, the lesion on the other side of the midline (the other-patient
    # check itself is issue 32's; this one's verdicts must stay visible after --prepare's registration)
    images["t2"] = images_of(seed=4)["t2"]
    paths = write_sources(tmp_path / "in", images)
    output = tmp_path / "t1ce.nii.gz"
    assert main(synthesize_arguments(trained, paths, output, "--prepare")) == 0
    printed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    checks = json.loads(output.with_name(output.name + ".json").read_text())["input_checks"]
    assert {"registration", "mirrored", "sequence-contrast", "intensity-range"} <= set(checks["checked"])
    assert "registration" not in checks["skipped"], "the registration is checked again once --prepare has done it"
    recorded = [f"warning: {finding['message']}" for finding in checks["results"] if finding["severity"] == "warning"]
    assert printed == recorded, "every verdict is printed and recorded"
    assert [finding["check"] for finding in checks["results"]] == ["mirrored"]
    assert f"T2 ({paths['t2']}) may be mirrored left-right against T1, or another patient's scan" in recorded[0]


# 8. a source too thin to register ------------------------------------------------------------------


@pytest.mark.parametrize("slices", [3, 6])
def test_a_source_too_thin_to_register_is_refused_before_any_work(
    trained: Path, tmp_path: Path, refused, slices: int
) -> None:
    images = images_of(seed=0)
    middle = SHAPE[0] // 2
    images["t2"] = images["t2"][:, :, middle : middle + slices]
    paths = write_sources(tmp_path / "in", images)
    out = refused(
        synthesize_arguments(trained, paths, tmp_path / "t1ce.nii.gz", "--prepare"),
        tmp_path,
        f"T2 ({paths['t2']}) is too thin to register",
        f"72 x 80 x {slices} voxels",
    ).out
    assert not any("CONES_PROGRESS" in line for line in out), "refused before any stage started"
