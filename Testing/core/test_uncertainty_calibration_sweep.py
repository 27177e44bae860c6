"""The calibration-weight sweep (Testing/experiments/uncertainty_calibration.py) scores the map the product writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_scripts import load_experiment
from synthetic_cases import write_dataset
from tiny_models import write_tiny_model

from cones.checkpoint import load_model
from cones.data import find_cases
from cones.evaluation import load_case_volumes
from cones.inference import SynthesisOptions, synthesize_volume_with_uncertainty
from cones.trust import DEFAULT_CALIBRATION, calibrate_uncertainty, synthesis_error

FP32 = SynthesisOptions(device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def sweep_script():
    return load_experiment("uncertainty_calibration")


def test_the_default_weight_scores_the_map_synthesis_writes(sweep_script, tmp_path: Path) -> None:
    model = load_model(write_tiny_model(tmp_path / "tiny.pt"))
    card = model.card
    (case,) = find_cases(write_dataset(tmp_path / "data", cases=1))
    volumes = load_case_volumes(case, card.sources, card.targets[0], card.normalization)
    options = FP32
    swept = sweep_script.sweep(model, volumes, (0.0, DEFAULT_CALIBRATION, 100.0), options)
    outputs, maps = synthesize_volume_with_uncertainty(
        model.generator, volumes.sources, card.sources, card.targets, card.normalization, options
    )
    synthesized, brain = outputs[card.targets[0]], volumes.target_brain
    product = calibrate_uncertainty(maps[card.targets[0]], synthesis_error(synthesized, volumes.target, brain), brain)
    assert swept[DEFAULT_CALIBRATION].spearman == pytest.approx(product.spearman, abs=1e-6)
    assert swept[DEFAULT_CALIBRATION].decile_errors == pytest.approx(product.decile_errors, rel=1e-6)
    intensity_alone = calibrate_uncertainty(synthesized, synthesis_error(synthesized, volumes.target, brain), brain)
    assert swept[100.0].spearman == pytest.approx(intensity_alone.spearman, abs=0.02)
    assert swept[0.0].spearman != pytest.approx(swept[100.0].spearman, abs=1e-3)


def test_the_table_has_a_row_per_case_and_a_column_per_weight(sweep_script, tmp_path: Path, capsys) -> None:
    model = write_tiny_model(tmp_path / "tiny.pt")
    data = write_dataset(tmp_path / "data", cases=2)
    arguments = ["--model", str(model), "--data", str(data), "--calibrations", "0", "0.2"]
    assert sweep_script.main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| case | 0 | 0.2 |" and len(lines) == 4
    assert sweep_script.main([*arguments, "--cases", "NOPE"]) == 2
