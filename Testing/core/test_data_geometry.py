"""Grid checks, resampling and case loading in the canonical orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_cases import write_case

from cones.data import (
    CANONICAL_ORIENTATION,
    check_same_grid,
    find_cases,
    image_to_array,
    load_case,
    reorient,
    resample_to_reference,
    to_canonical,
)
from cones.sequences import Sequence

SHAPE = (12, 20, 24)


def grid(
    size: tuple[int, int, int] = (24, 20, 12),
    spacing: tuple[float, float, float] = (1.0, 1.0, 2.0),
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> sitk.Image:
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def test_check_same_grid_accepts_float32_rounding() -> None:
    check_same_grid({"t1": grid(), "t2": grid(origin=(1e-6, 0.0, -1e-6), spacing=(1.0000001, 1.0, 2.0))}, "case A")


@pytest.mark.parametrize(
    ("other", "match"),
    [
        (grid(size=(24, 20, 11)), r"size \(24, 20, 11\) vs \(24, 20, 12\)"),
        (grid(spacing=(1.0, 1.0, 2.5)), r"spacing \(1.0, 1.0, 2.5\) vs \(1.0, 1.0, 2.0\)"),
        (grid(origin=(0.0, 3.0, 0.0)), r"origin \(0.0, 3.0, 0.0\) vs \(0.0, 0.0, 0.0\)"),
        (grid(direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)), r"direction \(-1.0, 0.0, .*\) vs \(1.0, 0.0, .*\)"),
    ],
)
def test_check_same_grid_names_case_sequence_property_and_values(other: sitk.Image, match: str) -> None:
    with pytest.raises(ValueError, match=rf"case BraTS-7: T2 is not on the grid of T1: {match}"):
        check_same_grid({Sequence.T1: grid(), Sequence.T2: other}, "case BraTS-7")


def test_check_same_grid_uses_the_reference_key() -> None:
    images = {"t1": grid(), "flair": grid(spacing=(2.0, 2.0, 2.0)), "t2": grid(spacing=(2.0, 2.0, 2.0))}
    check_same_grid({"flair": images["flair"], "t2": images["t2"]}, "x")
    with pytest.raises(ValueError, match="x: t1 is not on the grid of flair"):
        check_same_grid(images, "x", reference_key="flair")
    with pytest.raises(ValueError, match="reference_key 'dwi' is not one of"):
        check_same_grid(images, "x", reference_key="dwi")
    with pytest.raises(ValueError, match="images must not be empty"):
        check_same_grid({}, "x")


def test_resample_to_reference_interpolates_intensities_and_keeps_labels() -> None:
    source = sitk.GetImageFromArray(np.arange(90, dtype=np.float32).reshape(3, 5, 6))
    source.SetSpacing((4.0, 4.0, 8.0))
    reference = grid(size=(24, 20, 12), spacing=(1.0, 1.0, 2.0))
    resampled = resample_to_reference(source, reference)
    assert resampled.GetSize() == reference.GetSize() and resampled.GetPixelID() == sitk.sitkFloat32
    values = image_to_array(resampled)
    assert values[0, 0, 2] == pytest.approx(0.5), "linear: halfway between voxels 0 and 1 of the source"
    assert values[-1, -1, -1] == 0.0, "outside the source: default value"
    labels = sitk.Cast(source > 40, sitk.sitkUInt8) * 4
    nearest = resample_to_reference(labels, reference, sitk.sitkNearestNeighbor)
    assert nearest.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(nearest))) == {0, 4}


def test_to_canonical_is_lossless_and_reversible() -> None:
    image = sitk.GetImageFromArray(np.random.default_rng(0).random(SHAPE).astype(np.float32))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS
    canonical, original = to_canonical(image)
    assert original == "RAS" and canonical.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert CANONICAL_ORIENTATION == "LPS"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(canonical), sitk.GetArrayFromImage(image)[:, ::-1, ::-1])
    back = reorient(canonical, original)
    assert back.GetDirection() == image.GetDirection() and back.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_load_case_returns_canonical_images_whatever_the_file_order(tmp_path: Path) -> None:
    """The same anatomy stored RAS (voxel axes reversed in the file) loads as the same arrays."""
    lps_folder = write_case(tmp_path / "lps", "c1", shape=SHAPE)
    ras_folder = tmp_path / "ras" / "c1"
    ras_folder.mkdir(parents=True)
    for path in lps_folder.iterdir():
        sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), "RAS"), str(ras_folder / path.name))
    lps = load_case(find_cases(tmp_path / "lps")[0], ["t2", "t1"])
    ras = load_case(find_cases(tmp_path / "ras")[0], [Sequence.T2, Sequence.T1])
    assert list(lps) == [Sequence.T2, Sequence.T1]
    for seq in lps:
        raw = sitk.GetArrayFromImage(sitk.ReadImage(str(ras_folder / f"c1_{seq}.nii.gz")))
        assert not np.array_equal(raw, image_to_array(lps[seq])), "the files really differ in voxel order"
        assert ras[seq].GetDirection() == lps[seq].GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
        np.testing.assert_array_equal(image_to_array(ras[seq]), image_to_array(lps[seq]))


def test_load_case_refuses_or_resamples_other_grids(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "c1", shape=SHAPE)
    coarse = sitk.ReadImage(str(folder / "c1_t2.nii.gz"))[::2, ::2, :]
    sitk.WriteImage(coarse, str(folder / "c1_t2.nii.gz"))
    case = find_cases(tmp_path)[0]
    with pytest.raises(ValueError, match=r"case c1: T2 is not on the grid of T1: size \(12, 10, 12\)"):
        load_case(case, ["t1", "t2"])
    images = load_case(case, ["t1", "t2"], resample=True)
    assert images[Sequence.T2].GetSize() == images[Sequence.T1].GetSize() == (24, 20, 12)
    with pytest.raises(ValueError, match="case c1 has no T1ce image"):
        load_case(type(case)("c1", {Sequence.T1: case.sequences[Sequence.T1]}), ["t1", "t1ce"])
    with pytest.raises(ValueError, match="sequences must not be empty"):
        load_case(case, [])
