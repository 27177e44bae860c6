"""Raw sample cases: a head with skull and scalp, noisy air, and every sequence on its own grid and pose.

Cases are built on a 2 mm grid (the full BraTS field of view) with acquisition grids scaled alike
(T1 and T1ce 2 mm, T2 and FLAIR 1.8 x 1.8 x 4 mm), which takes about half a second per raw case.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from cones.cli import main
from cones.sample_data import SampleCase, SampleDataConfig
from cones.sample_data.case import build_case
from cones.sample_data.head import MAX_HEAD_THICKNESS_MM, HeadTissue, build_head, tissue_signal
from cones.sample_data.raw import AcquisitionGrid, RawAcquisitionConfig, RawCase, make_raw_case, write_raw_case
from cones.sample_data.signal import PROTOCOLS
from cones.sample_data.template import load_template
from cones.sequences import Sequence

SMALL = SampleDataConfig(shape=(120, 120, 78), spacing_mm=2.0)
RAW = RawAcquisitionConfig(
    t1=AcquisitionGrid(2.0, 2.0),
    t1ce=AcquisitionGrid(2.0, 2.0),
    t2=AcquisitionGrid(1.8, 4.0),
    flair=AcquisitionGrid(1.8, 4.0),
)
_T1 = PROTOCOLS[Sequence.T1]


@pytest.fixture(scope="module")
def case() -> SampleCase:
    pytest.importorskip("nilearn")
    return build_case("CONES-SAMPLE-000", 0, SMALL, load_template(SMALL.spacing_mm))


@pytest.fixture(scope="module")
def raw(case: SampleCase) -> RawCase:
    return make_raw_case(case, 0, RAW)


def _voxels(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def _geometry(image: sitk.Image) -> tuple[tuple[float, ...], ...]:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def _head_mask(image: sitk.Image) -> sitk.Image:
    """Everything brighter than the air's noise floor, with the skull and dark CSF filled slice by slice."""
    voxels = _voxels(image)
    air = np.median(np.concatenate([voxels[:, :3].ravel(), voxels[:, -3:].ravel()]))
    head = np.stack([ndimage.binary_fill_holes(plane) for plane in voxels > 5 * air])
    mask = sitk.GetImageFromArray(head.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def _motion(transform: sitk.Transform) -> tuple[float, float]:
    """Rotation angle (degrees) and shift length (mm) of a rigid transform."""
    euler = sitk.Euler3DTransform(transform)
    cosine = (np.trace(np.reshape(euler.GetMatrix(), (3, 3))) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cosine, -1.0, 1.0)))), float(np.linalg.norm(euler.GetTranslation()))


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))


def test_build_head_layers_follow_anatomy_from_csf_to_skin() -> None:
    """On T1, outwards from a ball-shaped brain: grey CSF, black bone, bright marrow, black bone, brighter fat, skin."""
    size, radius = 80, 25
    axis = np.arange(size) - size // 2
    brain = (axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2) <= radius**2
    head = build_head(np.random.default_rng(0), brain, 1.0)
    t1 = np.zeros(brain.shape, dtype=np.float32)
    t1[head.voxels] = head.signals[Sequence.T1]
    profile = t1[size // 2 + radius + 1 :, size // 2, size // 2]
    signal = {tissue: tissue_signal(_T1, tissue) for tissue in HeadTissue}
    fat = int(np.argmax(profile))
    assert profile[fat] == pytest.approx(signal[HeadTissue.FAT], rel=0.05)
    assert profile[0] == pytest.approx(signal[HeadTissue.CSF], rel=0.05)
    inner_table = int(np.argmin(profile[:fat]))
    assert profile[inner_table] < 0.1 * signal[HeadTissue.FAT], "the skull is black on T1"
    assert profile[inner_table:fat].max() > 0.7 * signal[HeadTissue.MARROW], "marrow shines between the tables"
    assert np.all(profile[int(np.ceil(MAX_HEAD_THICKNESS_MM)) :] == 0), "air beyond the skin"
    assert not t1[brain].any(), "the brain's own signal comes from the case"


def test_make_raw_case_t1_shows_a_dark_skull_between_the_brain_and_a_bright_scalp(raw: RawCase) -> None:
    t1, brain = _voxels(raw.images[Sequence.T1]), _voxels(raw.brain_mask).astype(bool)
    distance = ndimage.distance_transform_edt(~brain, sampling=2.0)
    brain_median = np.median(t1[brain])
    profile = np.array([np.median(t1[(distance > mm) & (distance <= mm + 2)]) for mm in range(0, 40, 2)]) / brain_median
    scalp = int(np.argmax(profile))
    assert 4 <= 2 * scalp <= 16 and profile[scalp] > 1.5, f"bright fat a centimetre out: {profile.round(2)}"
    assert profile[:scalp].min() < 0.5, f"dark CSF and bone inside the scalp: {profile.round(2)}"
    assert np.all(profile[13:] < 0.1), f"air beyond the head: {profile.round(2)}"


def test_make_raw_case_background_is_noise_never_exactly_zero(raw: RawCase) -> None:
    for sequence, image in raw.images.items():
        voxels = _voxels(image)
        assert np.count_nonzero(voxels == 0) == 0, sequence
        faces = np.concatenate([voxels[:, [0, -1]].ravel(), voxels[:, :, [0, -1]].ravel()])
        assert 0 < np.median(faces) < 0.05 * np.percentile(voxels, 99), sequence


def test_make_raw_case_puts_every_sequence_on_its_own_grid_and_the_truth_on_the_reference(raw: RawCase) -> None:
    geometries = {sequence: _geometry(image) for sequence, image in raw.images.items()}
    assert len(set(geometries.values())) == len(Sequence)
    for sequence in Sequence:
        assert raw.images[sequence].GetSpacing() == pytest.approx(RAW.grid(sequence).spacing_mm)
        assert raw.images[sequence].GetPixelID() == sitk.sitkFloat32
    assert raw.reference is Sequence.T1
    assert raw.transforms[Sequence.T1].GetParameters() == (0.0,) * 6
    for truth in (raw.brain_mask, raw.label):
        assert _geometry(truth) == geometries[Sequence.T1]
        assert truth.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(_voxels(raw.label)).tolist()) == {0, 1, 2, 4}
    assert 0.05 < _voxels(raw.brain_mask).mean() < 0.5


@pytest.mark.parametrize("sequence", [Sequence.T1CE, Sequence.T2, Sequence.FLAIR])
def test_make_raw_case_transform_maps_t1_points_onto_the_same_anatomy(raw: RawCase, sequence: Sequence) -> None:
    """Resampling through the stored transform (fixed T1, moving: the sequence) aligns the heads; its inverse not."""
    reference = raw.images[Sequence.T1]
    truth = raw.transforms[sequence]
    rotation_deg, shift_mm = _motion(truth)
    assert 5.0 <= rotation_deg <= 10.0 and 5.0 <= shift_mm <= 10.0, "half to all of the maxima"
    fixed, moving = _voxels(_head_mask(reference)).astype(bool), _head_mask(raw.images[sequence])
    fixed[:10] = False  # the lowest 2 cm: the field of view cuts the neck at a different tilt in each sequence

    def dice(transform: sitk.Transform) -> float:
        aligned = _voxels(sitk.Resample(moving, reference, transform, sitk.sitkNearestNeighbor)).astype(bool)
        aligned[:10] = False
        return _dice(fixed, aligned)

    aligned, unaligned, inverted = dice(truth), dice(sitk.Transform()), dice(truth.GetInverse())
    assert aligned > 0.97
    assert 1 - aligned < 0.4 * (1 - unaligned)
    assert 1 - aligned < 0.4 * (1 - inverted)


def test_make_raw_case_transform_is_what_registration_with_fixed_t1_and_moving_t2_recovers(raw: RawCase) -> None:
    truth = raw.transforms[Sequence.T2]
    registration = sitk.ImageRegistrationMethod()
    registration.SetMetricAsMattesMutualInformation(32)  # T2 against T1: different contrasts
    registration.SetMetricSamplingStrategy(registration.RANDOM)
    registration.SetMetricSamplingPercentage(0.05, 7)
    registration.SetInterpolator(sitk.sitkLinear)
    registration.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 100)
    registration.SetOptimizerScalesFromPhysicalShift()
    registration.SetShrinkFactorsPerLevel([2])
    registration.SetSmoothingSigmasPerLevel([1])
    start = sitk.Euler3DTransform()
    start.SetCenter(truth.GetCenter())
    registration.SetInitialTransform(start, inPlace=False)
    found = registration.Execute(raw.images[Sequence.T1], raw.images[Sequence.T2])
    centre = np.array(truth.GetCenter())
    points = [centre + offset for offset in np.vstack([np.eye(3), -np.eye(3)]) * 40.0]

    def farthest_mm(expected: sitk.Transform) -> float:
        return max(np.linalg.norm(np.subtract(found.TransformPoint(p), expected.TransformPoint(p))) for p in points)

    assert farthest_mm(truth) < 1.5
    assert farthest_mm(truth.GetInverse()) > 10.0


def test_make_raw_case_same_seed_gives_identical_images_and_other_seeds_differ(case: SampleCase, raw: RawCase) -> None:
    again, other = make_raw_case(case, 0, RAW), make_raw_case(case, 1, RAW)
    for sequence in Sequence:
        np.testing.assert_array_equal(_voxels(again.images[sequence]), _voxels(raw.images[sequence]))
        assert again.transforms[sequence].GetParameters() == raw.transforms[sequence].GetParameters()
        if sequence is not Sequence.T1:
            assert other.transforms[sequence].GetParameters() != raw.transforms[sequence].GetParameters()
    assert not np.array_equal(_voxels(other.images[Sequence.T1]), _voxels(raw.images[Sequence.T1]))


def test_write_raw_case_writes_images_truth_and_transforms_and_keeps_existing_ones(
    tmp_path: Path, raw: RawCase
) -> None:
    folder = write_raw_case(raw, tmp_path)
    stem = folder / raw.case_id
    expected = [f"{raw.case_id}_{suffix}.nii.gz" for suffix in ("brainmask", "flair", "seg", "t1", "t1ce", "t2")]
    expected += [f"{raw.case_id}_{sequence.value}_truth.tfm" for sequence in Sequence]
    assert sorted(path.name for path in folder.iterdir()) == sorted(expected)
    for sequence in Sequence:
        written = sitk.ReadImage(f"{stem}_{sequence.value}.nii.gz")
        assert written.GetSize() == raw.images[sequence].GetSize()
        for got, original in zip(_geometry(written)[1:], _geometry(raw.images[sequence])[1:], strict=True):
            assert got == pytest.approx(original, abs=1e-4)
        np.testing.assert_array_equal(_voxels(written), _voxels(raw.images[sequence]))
        transform = sitk.ReadTransform(f"{stem}_{sequence.value}_truth.tfm")
        point = (10.0, -120.0, 60.0)
        assert transform.TransformPoint(point) == pytest.approx(raw.transforms[sequence].TransformPoint(point))
    np.testing.assert_array_equal(_voxels(sitk.ReadImage(f"{stem}_seg.nii.gz")), _voxels(raw.label))
    before = Path(f"{stem}_t1.nii.gz").read_bytes()
    with pytest.raises(FileExistsError, match="already exist"):
        write_raw_case(raw, tmp_path)
    assert Path(f"{stem}_t1.nii.gz").read_bytes() == before
    write_raw_case(raw, tmp_path, overwrite=True)


def test_sample_data_raw_writes_raw_cases_with_the_requested_motion(tmp_path: Path) -> None:
    pytest.importorskip("nilearn")
    arguments = ["sample-data", "--out", str(tmp_path), "--size", "48x48x32", "--spacing", "5", "--raw"]
    assert main([*arguments, "--max-rotation", "4", "--max-translation", "3"]) == 0
    folder = tmp_path / "CONES-SAMPLE-000"
    assert (folder / "CONES-SAMPLE-000_brainmask.nii.gz").is_file()
    assert sitk.ReadImage(str(folder / "CONES-SAMPLE-000_t2.nii.gz")).GetSpacing() == pytest.approx((0.9, 0.9, 4.0))
    rotation_deg, shift_mm = _motion(sitk.ReadTransform(str(folder / "CONES-SAMPLE-000_flair_truth.tfm")))
    assert 2.0 <= rotation_deg <= 4.0 and 1.5 <= shift_mm <= 3.0
    assert main(arguments) == 2, "existing case folders are kept"
    assert main(["sample-data", "--out", str(tmp_path / "prepared"), "--max-rotation", "4"]) == 2
    varied = ["sample-data", "--out", str(tmp_path / "varied"), "--raw", "--acquisition-variation", "0.5"]
    assert main(varied) == 2, "the skull and scalp are simulated with the fixed protocols"
    assert not (tmp_path / "varied").exists()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"max_rotation_deg": 60.0}, r"max_rotation_deg must be in \[0.0, 45.0\], got 60.0"),
        ({"max_translation_mm": -1.0}, r"max_translation_mm must be in"),
        ({"noise_level": -0.1}, r"noise_level must be in"),
        ({"air_margin_mm": -5.0}, r"air_margin_mm must be in"),
        ({"reference": "dwi"}, r"dwi"),
    ],
)
def test_raw_acquisition_config_rejects_bad_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(RAW, **changes)


@pytest.mark.parametrize(("in_plane", "thickness"), [(0.0, 4.0), (0.9, 12.0)])
def test_acquisition_grid_rejects_voxels_no_scanner_acquires(in_plane: float, thickness: float) -> None:
    with pytest.raises(ValueError, match=r"AcquisitionGrid\.(in_plane|slice)_mm must be in \[0\.1, 10\.0\]"):
        AcquisitionGrid(in_plane, thickness)


def test_raw_acquisition_config_round_trips_through_json_dicts() -> None:
    config = dataclasses.replace(RAW, reference="t2", max_rotation_deg=3.0)
    assert config.reference is Sequence.T2
    assert RawAcquisitionConfig.from_dict(config.to_dict()) == config
