"""The uncertainty map on real scans: it points at the errors of the held-out real case, and follows raw scans.

The bar of the issue: inside the brain, Spearman correlation of uncertainty and error >= 0.3, and
the most uncertain 10 % of the brain carry >= 2x the mean error of the least uncertain half. The
bundled model never saw TCGA-FG-6692; the two other co-registered cases were in its training data,
so their figures come from a model trained without them (README, "Where the model is unsure").
Skips without the real scans (``$CONES_REAL_DATA`` or ``../shared/data``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from test_real_scans import COREGISTERED, NATIVE, require, synthesize

from cones.data import find_cases
from cones.marking import sidecar_path
from cones.sequences import Sequence
from cones.trust import calibrate_uncertainty, synthesis_error

HELD_OUT = "TCGA-FG-6692"


def test_uncertainty_points_at_the_errors_of_the_held_out_real_case(tmp_path: Path) -> None:
    case = next(case for case in find_cases(require(COREGISTERED)) if case.case_id == HELD_OUT)
    inputs = {sequence.value: case.sequences[sequence] for sequence in (Sequence.T1, Sequence.T2, Sequence.FLAIR)}
    output, uncertainty = tmp_path / "t1ce.nii.gz", tmp_path / "uncertainty.nii.gz"
    assert synthesize(inputs, output, "--uncertainty-output", str(uncertainty)) == 0
    synthesized = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
    real = sitk.GetArrayFromImage(sitk.ReadImage(str(case.sequences[Sequence.T1CE])))
    brain = (synthesized > 0) & (real > 0)
    calibration = calibrate_uncertainty(
        sitk.GetArrayFromImage(sitk.ReadImage(str(uncertainty))), synthesis_error(synthesized, real, brain), brain
    )
    assert calibration.spearman >= 0.3
    assert calibration.top_decile_ratio >= 2.0


def test_raw_scans_get_their_maps_on_the_reference_grid(tmp_path: Path) -> None:
    """With --prepare the maps lie on the native T1's own grid, zero outside the extracted brain."""
    native = {name: require(NATIVE) / f"TCGA-FG-6692_{name}.nii.gz" for name in ("t1", "t2", "flair")}
    output, uncertainty, enhancement, mask = (
        tmp_path / name for name in ("t1ce.nii.gz", "u.nii.gz", "e.nii.gz", "brain.nii.gz")
    )
    maps = ("--uncertainty-output", str(uncertainty), "--enhancement-output", str(enhancement))
    assert synthesize(native, output, "--prepare", "--brain-mask-output", str(mask), *maps) == 0
    reference = sitk.ReadImage(str(native["t1"]))
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(mask))) > 0
    for path in (uncertainty, enhancement):
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == reference.GetSize()
        assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        values = sitk.GetArrayFromImage(image)
        assert np.isfinite(values).all() and (values[~brain] == 0).all() and (values[brain] != 0).mean() > 0.5
    sidecar = json.loads(sidecar_path(output).read_text())
    assert sidecar["uncertainty"]["mean_in_brain"] > 0
    assert sidecar["virtual_enhancement"]["path"] == str(enhancement.resolve())
