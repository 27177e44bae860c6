"""cones.preprocessing on generated phantoms: registration, the stripped-input check, the working grid, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_cases import case_images

from cones.inference import SynthesisCancelled
from cones.preprocessing import (
    RegistrationFailed,
    brain_mask_of_stripped,
    looks_skull_stripped,
    normalized_mutual_information,
    prepare_sources,
    register,
    working_grid,
)
from cones.sample_data.acquisition import reacquire
from cones.sequences import Sequence

SHAPE = (40, 80, 72)


@pytest.fixture(scope="module")
def phantom() -> dict[str, sitk.Image]:
    """A skull-stripped phantom case of a small brain's volume (about 190 cm3) on a 1.2 x 1.2 x 2 mm grid."""
    return case_images(SHAPE, seed=3, spacing=(1.2, 1.2, 2.0))


def moved(image: sitk.Image, degrees, shift, spacing=None) -> tuple[sitk.Image, sitk.Transform]:
    """``image`` after a known head motion, on a grid of its own; and the transform registration must recover."""
    return reacquire(image, degrees, shift, spacing or image.GetSpacing())


def brain_points(image: sitk.Image, step: int = 6) -> list[tuple[float, float, float]]:
    voxels = sitk.GetArrayViewFromImage(image)
    return [
        image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        for index in np.argwhere(voxels[::step, ::step, ::step] > 0) * step
    ]


def test_registration_recovers_a_known_motion_within_1_mm_and_1_degree(phantom) -> None:
    t2, truth = moved(phantom["t2"], (6.0, -4.0, 5.0), (5.0, -4.0, 3.0), spacing=(1.2, 1.2, 3.0))
    result = register(phantom["t1"], t2, name="T2", reference_mask=brain_mask_of_stripped(phantom["t1"]))
    errors = [
        np.linalg.norm(np.subtract(result.transform.TransformPoint(p), truth.TransformPoint(p)))
        for p in brain_points(phantom["t1"])
    ]
    assert max(errors) < 1.0, max(errors)
    true_angle = np.degrees(np.arccos((np.trace(np.reshape(truth.GetMatrix(), (3, 3))) - 1) / 2))
    assert abs(result.rotation_deg - true_angle) < 1.0
    assert result.normalized_mutual_information > 1.1


def test_registration_repeats_itself(phantom) -> None:
    """A fixed sampling seed: two runs agree up to the rounding of multi-threaded sums."""
    t2, _ = moved(phantom["t2"], (3.0, 0.0, -2.0), (2.0, 1.0, 0.0))
    first = register(phantom["t1"], t2, name="T2").transform.GetParameters()
    np.testing.assert_allclose(register(phantom["t1"], t2, name="T2").transform.GetParameters(), first, atol=1e-9)


def test_a_registration_that_finds_no_alignment_is_refused_naming_the_sequence(phantom) -> None:
    rng = np.random.default_rng(0)
    unrelated = sitk.GetImageFromArray(rng.gamma(2.0, 100.0, SHAPE).astype(np.float32))
    unrelated.CopyInformation(phantom["t2"])
    with pytest.raises(RegistrationFailed, match=r"registering FLAIR failed.*normalized mutual information"):
        register(phantom["t1"], unrelated, name="FLAIR", reference_mask=brain_mask_of_stripped(phantom["t1"]))


def test_normalized_mutual_information_is_1_for_independent_and_high_for_related_images(phantom) -> None:
    t1 = phantom["t1"]
    assert normalized_mutual_information(t1, t1) > 1.5
    shuffled = sitk.GetArrayFromImage(t1).ravel().copy()
    np.random.default_rng(0).shuffle(shuffled)
    noise = sitk.GetImageFromArray(shuffled.reshape(SHAPE))
    noise.CopyInformation(t1)
    assert normalized_mutual_information(t1, noise, brain_mask_of_stripped(t1)) < 1.01


def test_stripped_inputs_are_recognised_and_raw_ones_are_not(phantom) -> None:
    t1 = phantom["t1"]
    assert looks_skull_stripped(t1)
    noisy = t1 + 3.0 * sitk.Cast(sitk.AdditiveGaussianNoise(t1 * 0, 1.0, 0.0, 1) > 0, sitk.sitkFloat32) + 1.0
    assert not looks_skull_stripped(noisy), "a raw scan's air is not exactly 0"
    tiny = sitk.Image(t1)
    tiny.SetSpacing((0.2, 0.2, 0.2))
    assert not looks_skull_stripped(tiny), "a foreground far smaller than a brain is no stripped brain"
    mask = sitk.GetArrayFromImage(brain_mask_of_stripped(t1))
    assert set(np.unique(mask)) == {0, 1} and mask.sum() >= np.count_nonzero(sitk.GetArrayViewFromImage(t1))


def test_a_stripped_brain_cut_by_the_field_of_view_is_still_recognised(phantom) -> None:
    t1 = phantom["t1"]
    lowest_brain_slice = int(np.argwhere(sitk.GetArrayViewFromImage(t1).any(axis=(1, 2)))[0, 0])
    size = list(t1.GetSize())
    start = lowest_brain_slice + 3
    cut = sitk.RegionOfInterest(t1, [size[0], size[1], size[2] - start], [0, 0, start])
    bottom = sitk.GetArrayViewFromImage(cut)[0]
    assert np.mean(bottom == 0) < 0.99, "the lowest slice now holds brain"
    assert looks_skull_stripped(cut)


def test_working_grid_keeps_thick_slices_and_centres_the_brain(phantom) -> None:
    thick, _ = moved(phantom["t1"], (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), spacing=(0.9, 0.9, 5.5))
    mask = brain_mask_of_stripped(thick)
    grid = working_grid(thick, mask)
    assert grid.GetSize() == (240, 240, thick.GetSize()[2]), "thick slices are kept, not interpolated"
    assert grid.GetSpacing() == pytest.approx((1.0, 1.0, 5.5), abs=1e-4)
    centre = sitk.LabelShapeStatisticsImageFilter()
    centre.Execute(mask)
    index = grid.TransformPhysicalPointToContinuousIndex(centre.GetCentroid(1))
    assert index[:2] == pytest.approx((119.5, 119.5), abs=0.01)
    slice_positions = [thick.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(thick.GetSize()[2])]
    grid_positions = [
        grid.TransformContinuousIndexToPhysicalPoint((*index[:2], k))[2] for k in range(grid.GetSize()[2])
    ]
    np.testing.assert_allclose(
        np.sort(grid_positions), np.sort(slice_positions), atol=1e-3, err_msg="the same axial slices"
    )


def test_working_grid_reslices_a_sagittal_volume_axially(phantom) -> None:
    sagittal = sitk.PermuteAxes(phantom["t1"], [2, 0, 1])  # voxel axes x, y, z now run S, L, P
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(sagittal.GetDirection())
    assert code[0] in "SI", "the test volume's first voxel axis is superior-inferior"
    grid = working_grid(sagittal, brain_mask_of_stripped(sagittal))
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(grid.GetDirection()) == "LPS"
    assert grid.GetSpacing()[2] == pytest.approx(phantom["t1"].GetSpacing()[2])


def test_a_1_mm_reference_is_its_own_working_grid() -> None:
    t1 = case_images(SHAPE, seed=3, spacing=(1.0, 1.0, 1.5))["t1"]
    grid = working_grid(t1, brain_mask_of_stripped(t1))
    offset = np.asarray(t1.TransformPhysicalPointToContinuousIndex(grid.GetOrigin()))
    np.testing.assert_allclose(offset, np.round(offset), atol=1e-6, err_msg="grid voxels are the reference's voxels")


def test_prepare_can_be_cancelled_in_every_stage(phantom) -> None:
    images = {"t1": phantom["t1"], "t2": moved(phantom["t2"], (2.0, 0.0, 0.0), (1.0, 0.0, 0.0))[0]}
    for stage in ("extract-brain", "register"):
        seen: list[str] = []

        def cancel_in(stage=stage, seen=seen) -> bool:
            return stage in seen

        with pytest.raises(SynthesisCancelled):
            prepare_sources(
                images, "t1", progress=lambda name, done, total, seen=seen: seen.append(name), should_cancel=cancel_in
            )
    prepared = prepare_sources(images, Sequence.T1)
    assert prepared.report.skull_stripped and set(prepared.working) == {Sequence.T1, Sequence.T2}


class _FindsNothing:
    """A brain extractor that finds no brain, as deepbet does on a scan without a head."""

    name = "finds-nothing"

    def extract(self, image: sitk.Image) -> sitk.Image:
        empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(image)
        return empty


def test_no_brain_found_is_refused_naming_the_reference_and_what_to_try(phantom) -> None:
    raw = {name: sitk.Cast(image, sitk.sitkFloat32) + 5.0 for name, image in phantom.items() if name in ("t1", "t2")}
    assert not looks_skull_stripped(raw["t1"]), "the extractor runs"
    with pytest.raises(ValueError, match=r"no brain found in T1 \(t1.nii.gz\): .*skull-stripped inputs"):
        prepare_sources(raw, "t1", extractor=_FindsNothing(), labels={Sequence.T1: "T1 (t1.nii.gz)"})
