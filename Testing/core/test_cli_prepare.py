"""``cones synthesize --prepare``: raw sources on grids of their own, extra outputs, refusals before the work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_cases import case_images, train_arguments, write_dataset
from test_preprocessing import SHAPE, moved

from cones.cli import main
from cones.marking import sidecar_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepare")
    assert main(train_arguments(write_dataset(root / "data", cases=3), root / "run", iterations=2)) == 0
    return root / "run" / "last.pt"


@pytest.fixture(scope="module")
def raw_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """T1 as the reference; T2 and FLAIR moved by known motions onto 0.9 x 0.9 x 4 mm grids of their own."""
    folder = tmp_path_factory.mktemp("raw")
    images = case_images(SHAPE, seed=5, spacing=(1.2, 1.2, 2.0))
    images["t2"] = moved(images["t2"], (5.0, -3.0, 4.0), (4.0, -3.0, 2.0), spacing=(0.9, 0.9, 4.0))[0]
    images["flair"] = moved(images["flair"], (-4.0, 2.0, -3.0), (-3.0, 2.0, -4.0), spacing=(0.9, 0.9, 4.0))[0]
    paths = {}
    for name in ("t1", "t2", "flair"):
        paths[name] = folder / f"RAW_{name}.nii.gz"
        sitk.WriteImage(images[name], str(paths[name]))
    return paths


def synthesize(model: Path, inputs: dict[str, Path], output: Path, *extra: str) -> int:
    pairs = [f"{name}={path}" for name, path in inputs.items()]
    return main(
        ["synthesize", "--model", str(model), "--input", *pairs, "--output", str(output), "--device", "cpu", *extra]
    )


def test_prepare_synthesizes_raw_sources_onto_the_reference_grid(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, snapshot
) -> None:
    output, mask, folder = tmp_path / "t1ce.nii.gz", tmp_path / "brain.nii.gz", tmp_path / "prepared"
    extra = ("--prepare", "--brain-mask-output", str(mask), "--prepared-output-dir", str(folder))
    inputs_before = snapshot(raw_case["t1"].parent)
    assert synthesize(trained, raw_case, output, *extra) == 0
    assert snapshot(raw_case["t1"].parent) == inputs_before, "every input is left byte for byte as it was"
    out = capsys.readouterr().out
    for stage in ("extract-brain", "register", "synthesize"):
        assert f" {stage}" in out and "CONES_PROGRESS" in out
    assert "reference T1: already skull-stripped" in out and "T2 registered to T1: rotation" in out
    reference = sitk.ReadImage(str(raw_case["t1"]))
    written = sitk.ReadImage(str(output))
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(mask))) > 0
    assert np.all(sitk.GetArrayFromImage(written)[~brain] == 0) and sitk.GetArrayFromImage(written)[brain].std() > 0
    names = sorted(path.name for path in folder.iterdir())
    expected = [
        "brain_mask.nii.gz",
        "flair_registered.nii.gz",
        "flair_to_t1.tfm",
        "t2_registered.nii.gz",
        "t2_to_t1.tfm",
    ]
    assert names == expected
    registered = sitk.ReadImage(str(folder / "t2_registered.nii.gz"))
    assert registered.GetSize() == reference.GetSize()
    head = sitk.GetArrayFromImage(reference) > 50
    unregistered = sitk.Resample(sitk.ReadImage(str(raw_case["t2"])), reference)
    assert _dice(sitk.GetArrayFromImage(registered) > 50, head) > 0.93, "the registered T2 lies on the T1's anatomy"
    assert _dice(sitk.GetArrayFromImage(unregistered) > 50, head) < 0.9, "which it did not before registration"
    transform = sitk.ReadTransform(str(folder / "t2_to_t1.tfm"))
    resampled = sitk.Resample(sitk.ReadImage(str(raw_case["t2"])), reference, transform)
    np.testing.assert_allclose(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(registered), atol=1e-3)
    preparation = json.loads(sidecar_path(output).read_text())["preparation"]
    assert preparation["reference"] == "t1" and preparation["skull_stripped"] is True
    for name in ("t2", "flair"):
        figures = preparation["registrations"][name]
        assert figures["sharpness"] >= figures["min_sharpness"] > 0, name
        assert figures["normalized_mutual_information"] > 1
    np.testing.assert_allclose(preparation["registrations"]["t2"]["transform_parameters"], transform.GetParameters())


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    return 2 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))


def test_prepare_takes_the_grid_of_the_named_reference(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "t1ce.nii.gz"
    assert synthesize(trained, raw_case, output, "--prepare", "--reference", "t2") == 0
    assert sitk.ReadImage(str(output)).GetSize() == sitk.ReadImage(str(raw_case["t2"])).GetSize()


def test_raw_sources_without_prepare_are_refused_pointing_at_it(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert synthesize(trained, raw_case, tmp_path / "o.nii.gz") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "is not on the grid of T1" in line and "pass --prepare" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--reference", "t2"), "--reference need(s) --prepare"),
        (("--prepare", "--reference", "t1ce"), "--reference t1ce is not one of the sources"),
        (("--prepare", "--registration", "elastic"), None),
    ],
)
def test_prepare_options_are_checked_before_any_work(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path, extra, message, capsys: pytest.CaptureFixture
) -> None:
    if message is None:
        with pytest.raises(SystemExit):
            synthesize(trained, raw_case, tmp_path / "o.nii.gz", *extra)
    else:
        assert synthesize(trained, raw_case, tmp_path / "o.nii.gz", *extra) == 2
        assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_prepared_file_is_refused_before_any_work(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "t2_to_t1.tfm").write_text("an earlier transform")
    assert synthesize(trained, raw_case, tmp_path / "o.nii.gz", "--prepare", "--prepared-output-dir", str(folder)) == 2
    captured = capsys.readouterr()
    assert "t2_to_t1.tfm' already exists; pass --overwrite" in captured.err
    assert "CONES_PROGRESS" not in captured.out
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["prepared", "t2_to_t1.tfm"]


def test_a_failed_registration_is_refused_naming_the_sequence(
    trained: Path, raw_case: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    unrelated = sitk.GetImageFromArray(np.random.default_rng(1).gamma(2.0, 100.0, (30, 60, 60)).astype(np.float32))
    unrelated.SetSpacing((1.5, 1.5, 3.0))
    sitk.WriteImage(unrelated, str(tmp_path / "noise.nii.gz"))
    inputs = {**raw_case, "flair": tmp_path / "noise.nii.gz"}
    assert synthesize(trained, inputs, tmp_path / "o.nii.gz", "--prepare") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: registering FLAIR ({tmp_path / 'noise.nii.gz'}) failed")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["noise.nii.gz"]
