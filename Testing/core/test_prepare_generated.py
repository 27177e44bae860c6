"""Preparation of a generated raw case (head with skull and scalp, sequences moved onto grids of their own).

The generator knows the truth (brain mask, each sequence's motion), so the pipeline's result can be
checked against it: the skull is found and removed, the motions are recovered within 1 mm and 1 degree,
and a sequence placed far beyond any head motion is refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from cones.preprocessing import RegistrationFailed, prepare_sources
from cones.preprocessing.alignment import measure_pose
from cones.preprocessing.registration import MIN_SHARPNESS, check_registration
from cones.sample_data import SampleDataConfig, generate_case
from cones.sample_data.raw import AcquisitionGrid, RawAcquisitionConfig, make_raw_case
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
COARSE = RawAcquisitionConfig(
    t1=AcquisitionGrid(2.0, 2.0),
    t1ce=AcquisitionGrid(2.0, 2.0),
    t2=AcquisitionGrid(1.8, 4.0),
    flair=AcquisitionGrid(1.8, 4.0),
)
"""Clinical-like grids at twice the voxel size, so a case is made and prepared in seconds."""


@pytest.fixture(scope="module")
def raw():
    pytest.importorskip("nilearn")
    case = generate_case("RAW-007", seed=7, config=SampleDataConfig(shape=(120, 120, 78), spacing_mm=2.0))
    return make_raw_case(case, seed=7, config=COARSE)


@pytest.fixture(scope="module")
def prepared(raw):
    pytest.importorskip("deepbet")
    return prepare_sources({sequence: raw.images[sequence] for sequence in SOURCES}, Sequence.T1)


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    return 2 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))


def test_the_skull_is_detected_and_removed(raw, prepared) -> None:
    assert not prepared.report.skull_stripped and prepared.report.extractor == "deepbet"
    found = sitk.GetArrayFromImage(prepared.brain_mask) > 0
    truth = sitk.GetArrayFromImage(raw.brain_mask) > 0
    assert _dice(found, truth) > 0.92
    near_brain = sitk.GetArrayFromImage(sitk.BinaryDilate(raw.brain_mask, [3, 3, 3])) > 0
    t1 = sitk.GetArrayFromImage(raw.images[Sequence.T1])
    assert np.count_nonzero(found & ~near_brain) < 0.01 * np.count_nonzero(found), "no scalp or skull is kept"
    assert np.count_nonzero(t1 > 0) > 2 * np.count_nonzero(truth), "the raw scan did hold a head around the brain"


def test_the_motions_are_recovered_within_1_mm_and_1_degree(raw, prepared) -> None:
    truth_mask = sitk.GetArrayFromImage(raw.brain_mask) > 0
    reference = raw.images[Sequence.T1]
    points = [
        reference.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        for index in np.argwhere(truth_mask[::5, ::5, ::5]) * 5
    ]
    for sequence in (Sequence.T2, Sequence.FLAIR):
        found, truth = prepared.transforms[sequence], raw.transforms[sequence]
        errors = [np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p))) for p in points]
        assert max(errors) < 1.0, f"{sequence.display_name}: {max(errors):.2f} mm"
        true_angle = np.degrees(np.arccos((np.trace(np.reshape(truth.GetMatrix(), (3, 3))) - 1) / 2))
        assert true_angle > 4.0, "the generator moved the sequence"
        assert abs(prepared.report.registrations[sequence].rotation_deg - true_angle) < 1.0


def test_the_working_grid_holds_the_brain_only(prepared) -> None:
    for sequence, image in prepared.working.items():
        assert image.GetSize()[:2] == (240, 240), sequence
        assert image.GetSpacing()[:2] == pytest.approx((1.0, 1.0))
    mask = sitk.GetArrayFromImage(prepared.working[Sequence.T1]) != 0
    for sequence in (Sequence.T2, Sequence.FLAIR):
        assert not np.any(sitk.GetArrayFromImage(prepared.working[sequence])[~mask] != 0), sequence


def test_a_sequence_placed_beyond_any_head_motion_is_refused(raw) -> None:
    pytest.importorskip("deepbet")
    flair = raw.images[Sequence.FLAIR]
    turned = sitk.Euler3DTransform()
    turned.SetCenter(flair.TransformContinuousIndexToPhysicalPoint([n / 2 for n in flair.GetSize()]))
    turned.SetRotation(0.0, 0.0, np.radians(75.0))
    far = sitk.Resample(flair, flair, turned, sitk.sitkLinear, 0.0)
    with pytest.raises(RegistrationFailed, match="registering FLAIR failed"):
        prepare_sources({Sequence.T1: raw.images[Sequence.T1], Sequence.FLAIR: far}, Sequence.T1)


def test_each_registration_is_a_sharp_peak_and_its_figures_are_reported(prepared) -> None:
    figures = prepared.report.to_dict()["registrations"]
    for sequence in (Sequence.T2, Sequence.FLAIR):
        pose = prepared.report.registrations[sequence].pose
        assert pose.sharpness >= MIN_SHARPNESS, sequence
        reported = figures[sequence.value]
        assert reported["sharpness"] == pytest.approx(pose.sharpness, abs=1e-5)
        assert reported["min_sharpness"] == MIN_SHARPNESS
        assert len(reported["transform_parameters"]) == 6, "a rigid transform, as used"


def test_a_registration_stopped_away_from_the_answer_is_refused(raw, prepared) -> None:
    found = prepared.report.registrations[Sequence.T2]
    check_registration(found, "T2", "T1")
    away = sitk.Euler3DTransform()
    away.SetTranslation((4.0, -3.0, 0.0))
    pose = measure_pose(
        raw.images[Sequence.T1],
        raw.images[Sequence.T2],
        sitk.CompositeTransform([found.transform, away]),
        prepared.brain_mask,
    )
    with pytest.raises(RegistrationFailed, match=r"registering T2 failed: it fits T1 nowhere sharply"):
        check_registration(dataclasses.replace(found, pose=pose), "T2", "T1")
