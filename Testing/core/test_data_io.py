"""Reading and writing volumes: exact geometry round trips, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cones.data import array_to_image, image_to_array, read_image, write_image

SPACING, ORIGIN = (0.9, 1.1, 3.0), (12.5, -30.25, 7.125)
_C, _S = np.cos(np.radians(10.0)), np.sin(np.radians(10.0))
OBLIQUE_LEFT_HANDED = (_C, -_S, 0.0, _S, _C, 0.0, 0.0, 0.0, -1.0)
"""Exactly orthonormal (files store unit directions), rotated 10 degrees, and a mirror (det -1)."""


def oblique_image() -> sitk.Image:
    array = np.random.default_rng(0).normal(100, 20, (12, 20, 24)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(OBLIQUE_LEFT_HANDED)
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_write_read_keeps_oblique_left_handed_geometry(tmp_path: Path, suffix: str) -> None:
    assert np.linalg.det(np.reshape(OBLIQUE_LEFT_HANDED, (3, 3))) < 0
    image = oblique_image()
    path = write_image(image, tmp_path / "sub" / f"volume{suffix}")
    back = read_image(path)
    assert back.GetSize() == (24, 20, 12)
    np.testing.assert_allclose(back.GetSpacing(), SPACING, atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), OBLIQUE_LEFT_HANDED, atol=1e-5)
    np.testing.assert_array_equal(image_to_array(back), sitk.GetArrayFromImage(image))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no temporary file is left"


def test_write_image_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = write_image(oblique_image(), tmp_path / "out.nrrd")
    with pytest.raises(FileExistsError, match=r"out\.nrrd.* already exists"):
        write_image(sitk.Image(2, 2, 2, sitk.sitkUInt8), path)
    assert read_image(path).GetSize() == (24, 20, 12)
    write_image(sitk.Image(2, 2, 2, sitk.sitkUInt8), path, overwrite=True)
    assert read_image(path).GetSize() == (2, 2, 2)


def test_write_image_failure_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "out.nii.gz"
    original.write_bytes(b"previous result")

    def failing_write(image: sitk.Image, path: str, useCompression: bool = False) -> None:
        Path(path).write_bytes(b"half a volume")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(OSError, match=r"cannot write image .*out\.nii\.gz.*disk full"):
        write_image(oblique_image(), original, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    assert original.read_bytes() == b"previous result"


def test_write_image_refuses_unknown_endings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end with one of \.nii\.gz, \.nii, \.nrrd, \.mha"):
        write_image(oblique_image(), tmp_path / "out.png")


def test_read_image_names_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image file .*missing\.nii\.gz' does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    garbage = tmp_path / "broken.nii.gz"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.nii\.gz"):
        read_image(garbage)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (sitk.Image(4, 5, sitk.sitkFloat32), "2D with 1 component"),
        (sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 3), "3D with 3 component"),
        (sitk.Image([4, 5, 6, 2], sitk.sitkFloat32), "4D with 1 component"),
    ],
)
def test_read_image_refuses_non_scalar_3d_volumes(tmp_path: Path, image: sitk.Image, match: str) -> None:
    path = tmp_path / "odd.nrrd"
    sitk.WriteImage(image, str(path))
    with pytest.raises(ValueError, match=f"must be a 3D scalar volume, got {match}"):
        read_image(path)


def test_image_to_array_is_float32_in_z_y_x_order() -> None:
    image = sitk.Image(4, 3, 2, sitk.sitkInt16)
    image.SetPixel(3, 1, 0, 7)
    array = image_to_array(image)
    assert array.dtype == np.float32 and array.shape == (2, 3, 4)
    assert array[0, 1, 3] == 7 and array.sum() == 7


def test_array_to_image_copies_the_reference_geometry() -> None:
    reference = oblique_image()
    image = array_to_image(np.ones((12, 20, 24), dtype=bool), reference)
    assert image.GetPixelID() == sitk.sitkUInt8
    assert (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()) == (
        reference.GetSize(),
        reference.GetSpacing(),
        reference.GetOrigin(),
        reference.GetDirection(),
    )
    with pytest.raises(
        ValueError, match=r"array shape \(24, 20, 12\) does not match the reference grid \(12, 20, 24\)"
    ):
        array_to_image(np.zeros((24, 20, 12), dtype=np.float32), reference)
