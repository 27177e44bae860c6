"""The registration check of ``--prepare`` on the shared real cases: right registrations pass, wrong inputs do not.

Each co-registered case's T2 is acquired again after a head motion at the limit the check was calibrated for
(about 15 degrees and 20 mm) on a 0.9 x 0.9 x 5 mm grid of its own; it must register within 1.5 mm and pass
the check. Another patient's T2, moved the same way, and a right registration moved 5 mm away must be refused.
The calibration behind the limit: ``Testing/experiments/registration_calibration.py`` (README, "Raw scans").
Skipped without ``../shared/data`` (or ``$CONES_REAL_DATA``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cones.data import find_cases
from cones.preprocessing import RegistrationFailed, brain_mask_of_stripped, register
from cones.preprocessing.alignment import measure_pose
from cones.preprocessing.registration import MIN_SHARPNESS, check_registration
from cones.sample_data.acquisition import reacquire
from cones.sequences import Sequence

REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
COREGISTERED = REAL_DATA / "coregistered"
MOTION = ((10.0, -8.0, 7.0), (12.0, -10.0, 12.0))
"""Euler angles (degrees) and shift (mm): 14.6 degrees and 19.7 mm, the limit of the calibration's motions."""
THICK_2D = (0.9, 0.9, 5.0)


@pytest.fixture(scope="module")
def cases() -> dict[str, dict[Sequence, sitk.Image]]:
    if not COREGISTERED.is_dir():
        pytest.skip(f"shared real cases not found at {COREGISTERED} (set CONES_REAL_DATA)")
    return {
        case.case_id: {
            sequence: sitk.ReadImage(str(case.sequences[sequence])) for sequence in (Sequence.T1, Sequence.T2)
        }
        for case in find_cases(COREGISTERED)
    }


def brain_points(mask: sitk.Image) -> list[tuple[float, float, float]]:
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask)[::8, ::8, ::8] > 0) * 8
    return [mask.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]]) for index in indices]


@pytest.mark.parametrize("case_index", range(3))
def test_a_moved_thick_slice_t2_registers_and_passes(cases, case_index: int) -> None:
    images = cases[sorted(cases)[case_index]]
    brain = brain_mask_of_stripped(images[Sequence.T1])
    t2, truth = reacquire(images[Sequence.T2], *MOTION, THICK_2D)
    result = register(images[Sequence.T1], t2, name="T2", reference_mask=brain, reference_name="T1")
    errors = [
        np.linalg.norm(np.subtract(result.transform.TransformPoint(p), truth.TransformPoint(p)))
        for p in brain_points(brain)
    ]
    assert np.median(errors) < 1.0 and np.percentile(errors, 95) < 1.5, (np.median(errors), np.percentile(errors, 95))
    assert result.pose.sharpness >= MIN_SHARPNESS

    away = sitk.Euler3DTransform()
    away.SetTranslation((3.0, -4.0, 0.0))
    moved_away = measure_pose(images[Sequence.T1], t2, sitk.CompositeTransform([result.transform, away]), brain)
    with pytest.raises(RegistrationFailed, match="registering T2 failed: it fits T1 nowhere sharply"):
        check_registration(dataclasses.replace(result, pose=moved_away), "T2", "T1")


def test_another_patients_t2_is_refused(cases) -> None:
    first, second = sorted(cases)[:2]
    reference = cases[first][Sequence.T1]
    other, _ = reacquire(cases[second][Sequence.T2], *MOTION, THICK_2D)
    with pytest.raises(RegistrationFailed, match=r"registering T2 failed: .*same patient"):
        register(reference, other, name="T2", reference_mask=brain_mask_of_stripped(reference), reference_name="T1")
