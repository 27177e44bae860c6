"""The input checks for scene volumes (the panel's list before Apply), and the job's report after it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer")
from CoNeSSynthesisLib import testing
from CoNeSSynthesisLib.inputchecks import checkInputVolumes, describeChecks
from CoNeSSynthesisLib.synthesis import readModelCard

from cones.config import NormalizationConfig
from cones.data.geometry import to_canonical
from cones.domain import in_plane_spacing, measure_sources, summarize_domain
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
BRAIN_SHAPE = (48, 112, 112)
"""An ellipsoidal brain of about 200 cm3 at 1 mm: large enough to count as a skull-stripped brain."""
ONE_MM = np.eye(4)


@pytest.fixture(scope="module")
def card(tinyModel):
    """The tiny model's card with a training domain measured on three generated cases."""
    measured, spacings = [], []
    for seed in (1, 2, 3):
        images = testing.syntheticCaseImages(BRAIN_SHAPE, ONE_MM, seed)
        canonical = {sequence: to_canonical(images[sequence])[0] for sequence in SOURCES}
        arrays = {sequence: sitk.GetArrayFromImage(image) for sequence, image in canonical.items()}
        measured.append(measure_sources(arrays, arrays[Sequence.T1] > 0, NormalizationConfig()))
        spacings.append(in_plane_spacing(canonical[Sequence.T1], 0))
    domain = summarize_domain(measured, SOURCES, spacings, True, ("RAS",))
    return dataclasses.replace(readModelCard(tinyModel), training_domain=domain)


@pytest.fixture
def brain(scene):
    case = testing.addSyntheticCase(scene, "PATIENT", BRAIN_SHAPE, ONE_MM, seed=7)
    return {sequence: case[sequence] for sequence in SOURCES}


def test_chosen_volumes_that_pass_say_so(card, brain) -> None:
    report = checkInputVolumes(card, brain, prepare=False)
    assert report.results == ()
    assert describeChecks(report, brain) == f"All {len(report.checked)} input checks passed."


def test_swapped_volumes_are_named_as_the_scene_names_them(card, brain) -> None:
    swapped = {**brain, Sequence.T2: brain[Sequence.FLAIR], Sequence.FLAIR: brain[Sequence.T2]}
    text = describeChecks(checkInputVolumes(card, swapped, prepare=False), swapped)
    first = text.splitlines()[0]
    assert first.startswith("Warning: ") and "probably swapped" in first
    assert "'PATIENT_t2'" in first and "'PATIENT_flair'" in first


def test_the_same_volume_twice_is_an_error(card, brain) -> None:
    twice = {**brain, Sequence.FLAIR: brain[Sequence.T2]}
    text = describeChecks(checkInputVolumes(card, twice, prepare=False), twice)
    assert text.startswith("Error: T2 and FLAIR are the same image") and "'PATIENT_t2'" in text


def test_with_preparation_the_brain_checks_wait_for_the_brain(card, brain) -> None:
    report = checkInputVolumes(card, brain, prepare=True)
    assert "sequence-contrast" in report.skipped and "registration" in report.skipped
    assert describeChecks(report, brain).endswith("once it is extracted.")


def test_the_checks_import_neither_torch_nor_a_requirement_slicer_lacks() -> None:
    """The panel runs the checks in Slicer's own process, possibly before the requirements are installed."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import CoNeSSynthesisLib.inputchecks; "
        "print(sorted({'torch', 'nibabel', 'monai', 'skimage'} & set(sys.modules)))"
    )
    folder = str(Path(__file__).resolve().parents[2] / "CoNeSSynthesis")
    result = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
