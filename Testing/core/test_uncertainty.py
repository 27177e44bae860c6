"""The uncertainty and virtual enhancement maps: their grid, their meaning, the command line, the evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import OBLIQUE_LEFT_HANDED, write_case, write_dataset
from tiny_models import write_tiny_model

from cones.checkpoint import load_model
from cones.cli import main
from cones.data import image_to_array, read_image
from cones.inference import SynthesisOptions, synthesize_images, synthesize_images_with_uncertainty
from cones.marking import enhancement_marking, file_sha256, sidecar_path, synthetic_marking, uncertainty_marking
from cones.sequences import Sequence
from cones.trust import (
    DEFAULT_CALIBRATION,
    PerturbedPasses,
    SourceGamma,
    calibrate_uncertainty,
    perturb_source,
    synthesis_error,
    virtual_enhancement,
)

SOURCES = ("t1", "t2", "flair")
FP32 = SynthesisOptions(device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path, "P", spacing=(0.9, 0.9, 3.0), direction=OBLIQUE_LEFT_HANDED, origin=(4, 5, 6))


def case_images(case: Path) -> dict[str, sitk.Image]:
    return {name: read_image(case / f"P_{name}.nii.gz") for name in SOURCES}


def test_perturb_source_changes_the_mid_tones_of_one_channel_only() -> None:
    batch = torch.linspace(-1, 1, 5).repeat(1, 3, 1, 1)
    perturbed = perturb_source(batch, SourceGamma(channel=1, gamma=2.0))
    assert torch.equal(perturbed[:, 0], batch[:, 0]) and torch.equal(perturbed[:, 2], batch[:, 2])
    assert perturbed[0, 1, 0, 0] == -1 and perturbed[0, 1, 0, -1] == 1  # background and the brightest stay
    assert torch.allclose(perturbed[0, 1, 0, 2], torch.tensor(2 * 0.5**2 - 1))
    assert torch.equal(batch, torch.linspace(-1, 1, 5).repeat(1, 3, 1, 1))  # the input is not changed in place


def test_default_perturbations_are_one_pass_per_source_alternating() -> None:
    passes = PerturbedPasses.one_per_source(3).passes
    assert [item.channel for item in passes] == [0, 1, 2]
    assert passes[0].gamma > 1 > passes[1].gamma and passes[2].gamma == passes[0].gamma
    with pytest.raises(ValueError, match="gamma"):
        SourceGamma(0, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        PerturbedPasses(())
    with pytest.raises(ValueError, match="calibration"):
        PerturbedPasses.one_per_source(3, calibration=-0.1)


def test_the_map_adds_the_calibration_part_in_quadrature() -> None:
    spread = np.array([3.0, 0.0, 4.0, 0.0], dtype=np.float32)
    synthesized = np.array([20.0, 50.0, 0.0, 0.0], dtype=np.float32)
    method = PerturbedPasses.one_per_source(3, calibration=0.2)
    assert np.allclose(method.combine(spread, synthesized), [5.0, 10.0, 4.0, 0.0])
    assert np.array_equal(PerturbedPasses.one_per_source(3, calibration=0.0).combine(spread, synthesized), spread)
    assert method.combine(spread, synthesized).dtype == np.float32


def test_uncertainty_leaves_the_synthesis_unchanged_and_lies_on_its_grid(tiny_model: Path, case: Path) -> None:
    model = load_model(tiny_model)
    images = case_images(case)
    plain = synthesize_images(model, images, options=FP32)[Sequence.T1CE]
    synthesized, uncertainty = synthesize_images_with_uncertainty(model, images, options=FP32)
    assert np.array_equal(image_to_array(synthesized[Sequence.T1CE]), image_to_array(plain))
    u = uncertainty[Sequence.T1CE]
    for attribute in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(u, attribute)() == getattr(plain, attribute)()
    values = image_to_array(u)
    brain = np.stack([image_to_array(image) for image in images.values()]).max(axis=0) > 0
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (values[~brain] == 0).all()
    assert (values[brain] > 0).mean() > 0.5


def test_calibration_of_a_perfect_and_of_a_random_map() -> None:
    rng = np.random.default_rng(0)
    error = rng.random((8, 32, 32))
    brain = np.ones(error.shape, dtype=bool)
    perfect = calibrate_uncertainty(error * 3, error, brain)
    assert perfect.spearman == pytest.approx(1.0)
    assert perfect.top_decile_ratio == pytest.approx(0.95 / 0.25, rel=0.02)
    assert list(perfect.decile_errors) == sorted(perfect.decile_errors)
    random = calibrate_uncertainty(rng.random(error.shape), error, brain)
    assert abs(random.spearman) < 0.05 and random.top_decile_ratio == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="shapes differ"):
        calibrate_uncertainty(error[:4], error, brain)


def test_synthesis_error_is_on_each_volume_s_own_scale() -> None:
    rng = np.random.default_rng(1)
    real = rng.random((4, 16, 16)) * 700
    brain = np.ones(real.shape, dtype=bool)
    assert synthesis_error(real * 3 + 20, real, brain).max() < 1e-9  # an affine copy has no error
    assert synthesis_error(1000 - real, real, brain).mean() > 0.5


def test_virtual_enhancement_is_synthesized_minus_t1_on_own_scales() -> None:
    rng = np.random.default_rng(2)
    t1 = rng.random((4, 16, 16)) * 50 + 300
    brain = np.zeros(t1.shape, dtype=bool)
    brain[:, 2:14, 2:14] = True
    assert np.abs(virtual_enhancement(2 * t1 + 7, t1, brain)).max() < 1e-6  # the same contrast: nothing enhances
    t1[2, 7:9, 7:9] = 325  # mid-grey tissue in T1 ...
    enhanced = t1.copy()
    enhanced[2, 7:9, 7:9] = 975  # ... that takes up the contrast agent
    map_ = virtual_enhancement(enhanced, t1, brain)
    assert map_[2, 7:9, 7:9].min() > 0.3 and (map_[~brain] == 0).all()
    assert map_.dtype == np.float32 and map_.min() >= -1 and map_.max() <= 1


def synthesize(model: Path, case: Path, output: Path, *extra: str) -> int:
    inputs = [f"{name}={case / f'P_{name}.nii.gz'}" for name in SOURCES]
    return main(
        ["synthesize", "--model", str(model), "--input", *inputs, "--output", str(output), "--device", "cpu", *extra]
    )


def test_synthesize_writes_both_maps_marked_on_the_output_grid(
    tiny_model: Path, case: Path, tmp_path: Path, snapshot
) -> None:
    output, uncertainty, enhancement = tmp_path / "t1ce.nii.gz", tmp_path / "u.nrrd", tmp_path / "e.nii.gz"
    extra = ("--uncertainty-output", str(uncertainty), "--enhancement-output", str(enhancement))
    inputs = snapshot(case)
    assert synthesize(tiny_model, case, output, *extra) == 0
    assert snapshot(case) == inputs, "writing the maps changed an input"
    marking = synthetic_marking(Sequence.T1CE, file_sha256(tiny_model))
    assert sitk.ReadImage(str(uncertainty)).GetMetaData("CoNeS.Synthetic") == uncertainty_marking(marking)
    assert nib.load(enhancement).header["descrip"].item().decode() == enhancement_marking(marking)
    synthesized = sitk.ReadImage(str(output))
    brain = sitk.GetArrayFromImage(synthesized) > 0
    for path in (uncertainty, enhancement):
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == synthesized.GetSize()
        assert np.allclose(image.GetDirection(), synthesized.GetDirection(), atol=1e-6)
        values = sitk.GetArrayFromImage(image)
        assert np.isfinite(values).all() and (values[~brain] == 0).all()
    sidecar = json.loads(sidecar_path(output).read_text())
    u = sitk.GetArrayFromImage(sitk.ReadImage(str(uncertainty)))
    assert sidecar["uncertainty"]["path"] == str(uncertainty.resolve())
    assert sidecar["uncertainty"]["mean_in_brain"] == pytest.approx(float(u[brain].mean()), rel=1e-5)
    assert [item["source"] for item in sidecar["uncertainty"]["passes"]] == list(SOURCES)
    assert sidecar["uncertainty"]["calibration"] == DEFAULT_CALIBRATION
    assert sidecar["virtual_enhancement"]["path"] == str(enhancement.resolve())


def test_synthesize_without_maps_writes_the_same_output(tiny_model: Path, case: Path, tmp_path: Path) -> None:
    with_map, without = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert (
        synthesize(
            tiny_model, case, with_map, "--precision", "fp32", "--uncertainty-output", str(tmp_path / "u.nii.gz")
        )
        == 0
    )
    assert synthesize(tiny_model, case, without, "--precision", "fp32") == 0
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(with_map))), sitk.GetArrayFromImage(sitk.ReadImage(str(without)))
    )
    assert "uncertainty" not in json.loads(sidecar_path(without).read_text())


@pytest.mark.parametrize(
    "option, target, message",
    [
        ("--uncertainty-output", "the T1 input", "the T1 input"),
        ("--enhancement-output", "the --output file", "--output"),
        ("--uncertainty-output", "existing", "exists"),
        ("--uncertainty-output", "bad-ending", "must end with"),
    ],
)
def test_map_outputs_are_refused_before_any_work(
    tiny_model: Path,
    case: Path,
    tmp_path: Path,
    snapshot,
    capsys: pytest.CaptureFixture,
    option: str,
    target: str,
    message: str,
) -> None:
    output = tmp_path / "out" / "t1ce.nii.gz"
    output.parent.mkdir()
    existing = output.parent / "u.nii.gz"
    existing.write_bytes(b"keep me")
    paths = {
        "the T1 input": case / "P_t1.nii.gz",
        "the --output file": output,
        "existing": existing,
        "bad-ending": output.parent / "u.txt",
    }
    before = snapshot(tmp_path)
    assert synthesize(tiny_model, case, output, option, str(paths[target])) == 2
    assert message in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_enhancement_needs_a_t1ce_model_with_a_t1_source(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    flair_model = write_tiny_model(tmp_path / "flair.pt", sources=("t1", "t2"), target="flair")
    inputs = [f"{name}={case / f'P_{name}.nii.gz'}" for name in ("t1", "t2")]
    arguments = ["synthesize", "--model", str(flair_model), "--input", *inputs, "--output", str(tmp_path / "f.nii.gz")]
    assert main([*arguments, "--enhancement-output", str(tmp_path / "e.nii.gz")]) == 2
    assert "T1ce minus T1" in capsys.readouterr().err
    assert not (tmp_path / "f.nii.gz").exists() and not (tmp_path / "e.nii.gz").exists()


def test_evaluate_scores_the_uncertainty_of_every_model(tiny_model: Path, tmp_path: Path, snapshot) -> None:
    data = write_dataset(tmp_path / "data", cases=2)
    output = tmp_path / "evaluation"
    cases = snapshot(data)
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_model),
                "--data",
                str(data),
                "--output",
                str(output),
                "--device",
                "cpu",
                "--uncertainty",
            ]
        )
        == 0
    )
    with (output / "uncertainty.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {row["method"] for row in rows} == {"cones"}
    for row in rows:
        assert -1 <= float(row["spearman"]) <= 1 and float(row["top_decile_ratio"]) > 0
        assert all(np.isfinite(float(row[f"error_decile_{n}"])) for n in range(1, 11))
    assert (output / "uncertainty_calibration.png").stat().st_size > 1000
    summary = json.loads((output / "summary.json").read_text())
    assert len(summary["uncertainty"]["per_case"]) == 2
    assert snapshot(data) == cases, "the evaluation changed a case file"
