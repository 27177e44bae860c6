"""The core on real scans: the co-registered BraTS-space cases and a native clinical acquisition.

The scans are not part of the project (see ``../shared/data/README.md``): they are looked up in
``$CONES_REAL_DATA`` or ``../shared/data`` beside the repository, and every test here skips when
they are absent, as on a CI machine without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cones.checkpoint import read_model_card
from cones.cli import main
from cones.data import find_cases
from cones.demo import BUNDLED_MODEL, case_on_output_scale, score_against_copy
from cones.sequences import Sequence

REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
COREGISTERED, NATIVE = REAL_DATA / "coregistered", REAL_DATA / "native" / "TCGA-FG-6692"
ALL_FOUR = {Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR}


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set CONES_REAL_DATA)")
    return folder


def synthesize(inputs: dict[str, Path], output: Path, *extra: str) -> int:
    pairs = [f"{name}={path}" for name, path in inputs.items()]
    arguments = ["--model", str(BUNDLED_MODEL), "--input", *pairs, "--output", str(output), "--device", "cpu"]
    return main(["synthesize", *arguments, *extra])


def test_both_brats_namings_are_recognised() -> None:
    cases = {case.case_id: case for case in find_cases(require(COREGISTERED))}
    assert {"TCGA-DU-7294", "TCGA-FG-6692", "brainles-example"} <= cases.keys()
    assert all(set(case.sequences) == ALL_FOUR for case in cases.values())
    assert cases["brainles-example"].sequences[Sequence.T1CE].name == "brainles-example-t1c.nii.gz"
    assert cases["brainles-example"].label.name == "brainles-example-predseg.nii.gz"
    assert cases["TCGA-DU-7294"].label is None


def test_native_sequences_on_their_own_grids_are_refused_then_resampled(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Each clinical sequence has its own matrix; only --resample puts them on T1's grid."""
    folder = require(NATIVE)
    inputs = {name: folder / f"TCGA-FG-6692_{name}.nii.gz" for name in ("t1", "t2", "flair")}
    output = tmp_path / "t1ce.nii.gz"
    assert synthesize(inputs, output) == 2
    assert "is not on the grid of" in capsys.readouterr().err
    assert not output.exists()

    assert synthesize(inputs, output, "--resample") == 0
    written, t1 = sitk.ReadImage(str(output)), sitk.ReadImage(str(inputs["t1"]))
    assert written.GetSize() == t1.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), t1.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(written.GetOrigin(), t1.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), t1.GetDirection(), atol=1e-6)
    values = sitk.GetArrayFromImage(written)
    assert np.isfinite(values).all() and values.max() > 0


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The bundled model's T1ce of the real case it never saw in training, beside the real sequences."""
    folder = require(COREGISTERED / "TCGA-FG-6692")
    inputs = {name: folder / f"TCGA-FG-6692_{name}.nii.gz" for name in ("t1", "t1ce", "t2", "flair")}
    output = tmp_path_factory.mktemp("held-out") / "t1ce.nii.gz"
    assert synthesize({name: inputs[name] for name in ("t1", "t2", "flair")}, output) == 0
    written, t1 = sitk.ReadImage(str(output)), sitk.ReadImage(str(inputs["t1"]))
    assert written.GetSize() == t1.GetSize() and written.GetOrigin() == t1.GetOrigin()
    return {"synthesized": sitk.GetArrayFromImage(written)} | {
        name: sitk.GetArrayFromImage(sitk.ReadImage(str(path))) for name, path in inputs.items()
    }


def test_held_out_real_case_is_synthesized_inside_the_brain_only(held_out: dict[str, np.ndarray]) -> None:
    brain = (held_out["t1"] > 0) | (held_out["t2"] > 0) | (held_out["flair"] > 0)
    synthesized = held_out["synthesized"]
    assert np.isfinite(synthesized).all()
    assert np.all(synthesized[~brain] == 0)
    assert np.percentile(synthesized[brain], 50) > 100, "the brain is not left at background"


def test_bundled_model_beats_copying_t1_on_the_held_out_real_case(held_out: dict[str, np.ndarray]) -> None:
    card = read_model_card(BUNDLED_MODEL)
    mask, scaled = case_on_output_scale(
        {Sequence(name): held_out[name] for name in ("t1", "t1ce", "t2", "flair")}, card
    )
    scores = score_against_copy(held_out["synthesized"], scaled, mask, card)
    cones, copy = scores["cones"], scores["copy_t1"]
    assert cones["psnr"] > copy["psnr"] + 1.0 and cones["ssim"] > copy["ssim"]
