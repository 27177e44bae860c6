"""``--prepare`` on real scans: the native clinical case, and co-registered cases moved onto grids of their own.

Skipped without ``../shared/data`` (or ``$CONES_REAL_DATA``), as Testing/real/test_real_scans.py.
Every score follows the raw-scan protocol of :func:`cones.metrics.own_scale_scores`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cones.checkpoint import load_model
from cones.cli import main
from cones.demo import BUNDLED_MODEL
from cones.inference import SynthesisOptions, synthesize_images
from cones.metrics import own_scale_scores
from cones.preprocessing import DeepBetExtractor, register, synthesize_raw
from cones.sample_data.acquisition import reacquire
from cones.sequences import Sequence

REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
NATIVE = REAL_DATA / "native" / "TCGA-FG-6692"
MOVED_CASE = REAL_DATA / "coregistered" / "TCGA-DU-7294"
SOURCES = ("t1", "t2", "flair")
CPU = SynthesisOptions(device="cpu")
CLINICAL_2D_GRID = (0.9, 0.9, 4.0)
"""The voxel size of a clinical 2D series, onto which the moved sequences are acquired again."""


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set CONES_REAL_DATA)")
    return folder


def read(folder: Path, name: str) -> sitk.Image:
    return sitk.ReadImage(str(folder / f"{folder.name}_{name}.nii.gz"))


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return load_model(BUNDLED_MODEL)


def test_prepare_beats_plain_resampling_on_the_native_case(model, tmp_path: Path, snapshot, capsys) -> None:
    """The issue's protocol: deepbet mask of the native T1, real T1ce registered to T1 by the test.

    The input checks name the skull and the misregistration without ``--prepare``, and find nothing with it.
    """
    folder = require(NATIVE)
    inputs_before = snapshot(folder)
    paths = {name: folder / f"TCGA-FG-6692_{name}.nii.gz" for name in SOURCES}
    common = ["synthesize", "--model", str(BUNDLED_MODEL), "--device", "cpu", "--input"]
    pairs = [f"{name}={path}" for name, path in paths.items()]
    prepared, plain = tmp_path / "prepared.nii.gz", tmp_path / "plain.nii.gz"
    assert main([*common, *pairs, "--output", str(plain), "--resample"]) == 0
    warned = {
        line.split(":")[1].strip() for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")
    }
    assert warned == {"T1, T2, FLAIR", "T2", "FLAIR"}, "the skull of all three, the position of T2 and FLAIR"
    assert main([*common, *pairs, "--output", str(prepared), "--prepare", "--prepared-output-dir", str(tmp_path)]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert json.loads(Path(f"{prepared}.json").read_text())["input_checks"]["results"] == []

    t1 = read(folder, "t1")
    written = sitk.ReadImage(str(prepared))
    assert written.GetSize() == t1.GetSize(), "the output is on the native T1 grid"
    for name in ("Spacing", "Origin", "Direction"):
        np.testing.assert_allclose(getattr(written, f"Get{name}")(), getattr(t1, f"Get{name}")(), atol=1e-4)
    assert sorted(path.name for path in tmp_path.glob("*.tfm")) == ["flair_to_t1.tfm", "t2_to_t1.tfm"]
    assert snapshot(folder) == inputs_before, "the native scans are left byte for byte as they were"

    brain_image = DeepBetExtractor().extract(t1)
    brain = array(brain_image) > 0
    assert np.all(array(written)[~brain] == 0), "zero outside the brain"
    t1ce = read(folder, "t1ce")
    moved = register(t1, t1ce, name="T1ce", reference_mask=brain_image).transform
    real = array(sitk.Resample(sitk.Cast(t1ce, sitk.sitkFloat32), t1, moved))
    prepared_psnr, prepared_ssim = own_scale_scores(array(written), real, brain)
    plain_psnr, plain_ssim = own_scale_scores(array(sitk.ReadImage(str(plain))), real, brain)
    assert prepared_psnr >= plain_psnr + 1.0, (prepared_psnr, plain_psnr)
    assert prepared_ssim >= plain_ssim + 0.03, (prepared_ssim, plain_ssim)


@pytest.fixture(scope="module")
def moved_case(model):
    """The aligned run, and a run with T2 and FLAIR moved (up to 15 degrees, 20 mm) onto grids of their own."""
    folder = require(MOVED_CASE)
    images = {name: read(folder, name) for name in (*SOURCES, "t1ce")}
    aligned = synthesize_images(model, {name: images[name] for name in SOURCES}, options=CPU)[Sequence.T1CE]
    passed = synthesize_raw(model, {name: images[name] for name in SOURCES}, options=CPU)
    t2, t2_truth = reacquire(images["t2"], (10.0, -8.0, 7.0), (12.0, -10.0, 12.0), CLINICAL_2D_GRID)
    flair, flair_truth = reacquire(images["flair"], (-7.0, 10.0, -8.0), (-13.0, 9.0, -12.0), CLINICAL_2D_GRID)
    moved = synthesize_raw(model, {"t1": images["t1"], "t2": t2, "flair": flair}, options=CPU)
    truths = {Sequence.T2: t2_truth, Sequence.FLAIR: flair_truth}
    return images, aligned, passed, moved, truths


def test_prepare_recovers_moved_sequences_within_1_dB(moved_case) -> None:
    images, aligned, _, moved, truths = moved_case
    real = array(images["t1ce"])
    brain = real > 0
    aligned_psnr, _ = own_scale_scores(array(aligned), real, brain)
    moved_psnr, _ = own_scale_scores(array(moved.outputs[Sequence.T1CE]), real, brain)
    assert moved_psnr >= aligned_psnr - 1.0, (moved_psnr, aligned_psnr)
    assert moved.checks.results == (), [result.message for result in moved.checks.results]

    points = [
        images["t1"].TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        for index in np.argwhere(brain[::10, ::10, ::10]) * 10
    ]
    for sequence, truth in truths.items():
        found = moved.prepared.transforms[sequence]
        errors = [np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p))) for p in points]
        assert max(errors) < 1.0, f"{sequence.display_name}: {max(errors):.2f} mm"
        assert abs(moved.prepared.report.registrations[sequence].rotation_deg - _angle(truth)) < 1.0


def _angle(transform: sitk.Transform) -> float:
    rotation = np.reshape(sitk.Euler3DTransform(transform).GetMatrix(), (3, 3))
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def test_an_already_prepared_case_passes_through_unchanged(moved_case) -> None:
    images, aligned, passed, _, _ = moved_case
    report = passed.prepared.report
    assert report.skull_stripped and report.extractor is None, "a stripped case is not stripped again"
    assert passed.checks.results == () and "sequence-contrast" in passed.checks.checked
    assert passed.prepared.working[Sequence.T1].GetSize() == images["t1"].GetSize()
    real = array(images["t1ce"])
    brain = real > 0
    passed_psnr, passed_ssim = own_scale_scores(array(passed.outputs[Sequence.T1CE]), real, brain)
    aligned_psnr, aligned_ssim = own_scale_scores(array(aligned), real, brain)
    assert abs(passed_psnr - aligned_psnr) < 0.2 and abs(passed_ssim - aligned_ssim) < 0.005
