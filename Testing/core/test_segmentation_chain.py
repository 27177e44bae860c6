"""train-seg, synthesize --segment and evaluate-segmentation through the ``cones`` command line.

Every command runs through :func:`cones.cli.main`, as a user types it: argument names, handlers,
exit codes and the rule that refused input writes nothing are all part of what is tested.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import BRATS_2023, OBLIQUE_LEFT_HANDED, case_images, write_case
from tiny_models import TINY_GENERATOR

from cones.checkpoint import ModelCard, make_provenance, save_model
from cones.cli import main
from cones.config import NormalizationConfig
from cones.data.discovery import find_cases
from cones.data.geometry import grid_difference
from cones.data.io import read_image
from cones.evaluation.fitted import fit_baselines
from cones.marking import sidecar_path
from cones.model import CoNeSGenerator
from cones.segmentation import (
    check_segmentation_inputs,
    load_segmentation_model,
    read_segmentation_info,
    segment_with_synthesis,
)
from cones.segmentation.base import InputNormalization, ValidationScores
from cones.segmentation.builtin import record_validation_scores
from cones.segmentation.chain import synthesized_sequences_used
from cones.segmentation.labels import region_masks
from cones.segmentation.loading import BUNDLED_SEGMENTATION_MODEL
from cones.segmentation.training import load_training_case
from cones.sequences import Sequence

SHAPE = (16, 32, 32)

TINY_ARGS = ["--iterations", "2", "--patch-size", "16", "32", "32", "--channels", "4", "8", "--device", "cpu"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for seed in range(2):
        write_case(root, f"case{seed}", shape=SHAPE, seed=seed, direction=OBLIQUE_LEFT_HANDED)
    return root


@pytest.fixture(scope="module")
def seg_model(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("segrun")
    assert main(["train-seg", "--data", str(dataset), "--output", str(run), *TINY_ARGS]) == 0
    return run / "last.pt"


def tiny_synthesis_model(path: Path, seed: int) -> Path:
    """A random-init T1 + T2 + FLAIR -> T1ce model; a gain of 1 keeps its output from being flat."""
    torch.manual_seed(seed)
    config = dataclasses.replace(TINY_GENERATOR, init_gain=1.0)
    card = ModelCard(
        architecture="cones",
        preset=None,
        generator=config,
        sources=(Sequence.T1, Sequence.T2, Sequence.FLAIR),
        targets=(Sequence.T1CE,),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "test"),
    )
    return save_model(path, CoNeSGenerator(config), card)


@pytest.fixture(scope="module")
def synthesis_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_synthesis_model(tmp_path_factory.mktemp("synthesis") / "t1ce.pt", seed=0)


def inputs(dataset: Path, names: tuple[str, ...] = ("t1", "t2", "flair")) -> list[str]:
    return [f"{name}={dataset / 'case0' / f'case0_{name}.nii.gz'}" for name in names]


def synthesize(model: Path, arguments: list[str], output: Path, *extra: str) -> int:
    command = ["synthesize", "--model", str(model), "--input", *arguments, "--output", str(output)]
    return main([*command, "--device", "cpu", *extra])


def test_train_seg_writes_a_self_describing_model(seg_model: Path) -> None:
    model = load_segmentation_model(seg_model)
    assert model.sequences == (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)
    assert model.labels.names == ("background", "NCR", "ED", "ET")
    assert model.labels.values == (0, 1, 2, 4)
    assert model.card.provenance.iterations == 2
    assert model.card.provenance.command.startswith("cones ")
    assert model.card.network.patch_size == SHAPE
    assert len(model.training_means) == 4 and all(-1.0 <= mean <= 1.0 for mean in model.training_means)
    assert (seg_model.parent / "log.jsonl").read_text().count("\n") == 2
    info = read_segmentation_info(seg_model)
    assert (info.sequences, info.labels, info.source) == (model.sequences, model.labels, seg_model)


def test_train_seg_refuses_an_existing_run(dataset: Path, seg_model: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train-seg", "--data", str(dataset), "--output", str(seg_model.parent), *TINY_ARGS]) == 2
    assert "last.pt already exists" in capsys.readouterr().err


def test_train_seg_refuses_cases_without_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_case(tmp_path / "data", "nolabel", shape=SHAPE)
    (folder / "nolabel_seg.nii.gz").unlink()
    assert main(["train-seg", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"), *TINY_ARGS]) == 2
    assert "case nolabel has no label map" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_training_reads_either_brats_convention_as_the_same_classes(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "2023", "case", naming=BRATS_2023, shape=SHAPE)
    label_file = folder / "case-seg.nii.gz"
    reference = read_image(label_file)
    sitk.WriteImage(sitk.ChangeLabel(reference, {4: 3}), str(label_file))  # BraTS 2023: enhancing tumour is 3
    write_case(tmp_path / "2018", "case", shape=SHAPE)
    sequences = (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)
    loaded = [
        load_training_case(find_cases(tmp_path / year)[0], sequences, InputNormalization()) for year in ("2018", "2023")
    ]
    enhancing = sitk.GetArrayFromImage(reference) == 4
    for case in loaded:
        assert set(np.unique(case.classes)) == {0, 3}  # class 3 is ET in either convention
        assert case.classes.sum() == 3 * enhancing.sum()
        assert len(case.tumour) == enhancing.sum()
    np.testing.assert_array_equal(loaded[0].classes, loaded[1].classes)
    np.testing.assert_array_equal(loaded[0].channels, loaded[1].channels)


def test_a_sequence_neither_given_nor_synthesized_is_refused(seg_model: Path) -> None:
    info = read_segmentation_info(seg_model)
    with pytest.raises(ValueError, match=r"FLAIR is neither given \(given: T1, T2\) nor synthesized"):
        check_segmentation_inputs(info, given=["t1", "t2"], synthesized=["t1ce"])
    with pytest.raises(ValueError, match="T1ce is neither given"):
        check_segmentation_inputs(info, {Sequence.T1, Sequence.T2, Sequence.FLAIR})
    check_segmentation_inputs(info, given=["t1", "t2", "t2f"], synthesized=["t1c"])
    check_segmentation_inputs(info, set(Sequence))


def test_synthesize_then_segment_writes_the_label_map_of_the_completed_case(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    synthesized, labels = tmp_path / "t1ce.nii.gz", tmp_path / "seg.nii.gz"
    segment = ["--segment", str(seg_model), "--segmentation-output", str(labels)]
    assert synthesize(synthesis_model, inputs(dataset), synthesized, *segment) == 0
    assert f"segmentation (NCR, ED, ET) written to {labels}" in capsys.readouterr().out
    sources = {name: read_image(dataset / "case0" / f"case0_{name}.nii.gz") for name in ("t1", "t2", "flair")}
    label_map = read_image(labels)
    assert grid_difference(label_map, sources["t1"]) is None
    assert label_map.GetPixelID() == sitk.sitkUInt8
    # exactly what the segmentation model makes of the sources completed by the synthesized T1ce
    model = load_segmentation_model(seg_model)
    expected = sitk.GetArrayFromImage(model.segment({**sources, "t1ce": read_image(synthesized)}))
    assert len(np.unique(expected)) > 1, "a constant map would not show which T1ce the chain used"
    without_t1ce = sitk.GetArrayFromImage(model.segment(sources, impute={"t1ce": "zeros"}))
    assert not np.array_equal(expected, without_t1ce), "the map must depend on the T1ce it is given"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label_map), expected)
    assert synthesize(synthesis_model, inputs(dataset), synthesized, *segment, "--overwrite") == 0


def test_a_segmentation_from_a_synthesized_sequence_says_so_in_its_header_and_sidecar(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    synthesized, labels = tmp_path / "t1ce.nii.gz", tmp_path / "seg.nii.gz"
    segment = ["--segment", str(seg_model), "--segmentation-output", str(labels)]
    assert synthesize(synthesis_model, inputs(dataset), synthesized, *segment) == 0
    note = "it was computed with synthesized T1ce and is marked as such (header and sidecar); "
    assert note + "last.pt records no Dice measured with T1ce synthesized" in capsys.readouterr().out
    marking = f"SEGMENTATION FROM SYNTHETIC T1ce - CoNeS {sha256(synthesis_model)[:12]}"
    assert nib.load(labels).header["descrip"].item().decode() == marking
    sidecar = json.loads(sidecar_path(labels).read_text())
    assert sidecar["derived_from_synthetic"] is True and sidecar["marking"] == marking
    assert sidecar["synthesized_inputs"] == ["t1ce"]
    assert sidecar["segmentation_model"] == {"path": str(seg_model.resolve()), "sha256": sha256(seg_model)}
    assert sidecar["synthesis"]["marking"] == f"SYNTHETIC T1ce - CoNeS {sha256(synthesis_model)[:12]}"
    assert set(sidecar["synthesis"]["inputs"]) == {"t1", "t2", "flair"}
    # an existing sidecar of the label map is refused before any work, like the label map itself
    capsys.readouterr()
    for written in (synthesized, sidecar_path(synthesized), labels):
        written.unlink()
    assert synthesize(synthesis_model, inputs(dataset), synthesized, *segment) == 2
    assert "seg.nii.gz.json' already exists; pass --overwrite" in capsys.readouterr().err
    assert not synthesized.exists() and not labels.exists()


def test_a_segmentation_from_a_synthesized_sequence_states_the_dice_its_model_card_records(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    measured = (
        ValidationScores((), "", 9, (0.71, 0.74, 0.86), (9.5, 8.1, 7.2)),
        ValidationScores((Sequence.T1CE,), "cones-lite-t1ce.pt", 9, (0.42, 0.55, 0.84), (float("nan"), 20.1, 9.9)),
    )
    recorded = record_validation_scores(seg_model, tmp_path / "measured.pt", measured)
    recorded_scores = read_segmentation_info(recorded).validation_scores
    assert recorded_scores[0] == measured[0] and recorded_scores[1].dice == measured[1].dice
    assert np.isnan(recorded_scores[1].hd95_mm[0]) and recorded_scores[1].hd95_mm[1:] == (20.1, 9.9)
    assert read_segmentation_info(seg_model).validation_scores == ()
    labels = tmp_path / "seg.nii.gz"
    segment = ["--segment", str(recorded), "--segmentation-output", str(labels)]
    assert synthesize(synthesis_model, inputs(dataset), tmp_path / "t1ce.nii.gz", *segment) == 0
    assert (
        "mean Dice measured on 9 validation cases with T1ce synthesized by cones-lite-t1ce.pt: ET 0.42, TC 0.55, "
        "WT 0.84; with every sequence real: ET 0.71, TC 0.74, WT 0.86"
    ) in capsys.readouterr().out
    # given every sequence, the segmentation uses no synthesized one and no note is printed
    everything = [*inputs(dataset), f"t1ce={dataset / 'case0' / 'case0_t1ce.nii.gz'}"]
    assert synthesize(synthesis_model, everything, tmp_path / "again.nii.gz", *segment, "--overwrite") == 0
    assert "mean Dice measured" not in capsys.readouterr().out


def test_the_validation_scores_is_a_copy_of_the_model_that_cannot_replace_it(seg_model: Path) -> None:
    before = sha256(seg_model)
    with pytest.raises(ValueError, match="is the model itself"):
        record_validation_scores(
            seg_model, seg_model, (ValidationScores((), "", 1, (0.5,) * 3, (1.0,) * 3),), overwrite=True
        )
    assert sha256(seg_model) == before
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ValidationScores((), "", 1, (1.5, 0.5, 0.5), (1.0,) * 3)


def test_info_describes_a_segmentation_model_with_its_validation_scores(
    tmp_path: Path, seg_model: Path, capsys: pytest.CaptureFixture
) -> None:
    scores = (ValidationScores((Sequence.T1CE,), "t1ce.pt", 4, (0.25, 0.5, 0.75), (30.0, 20.0, 10.0)),)
    recorded = record_validation_scores(seg_model, tmp_path / "scored.pt", scores)
    assert main(["info", str(recorded)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"CoNeS segmentation model {recorded}"
    fields = dict(line.strip().split(":", 1) for line in lines[1:])
    assert fields["segments"].strip() == "T1, T1ce, T2, FLAIR -> background 0, NCR 1, ED 2, ET 4"
    assert fields["iterations"].strip() == "2"
    assert fields["validation"].strip() == (
        "4 cases, T1ce synthesized by t1ce.pt: Dice ET 0.25, TC 0.50, WT 0.75; HD95 ET 30.0 mm, TC 20.0 mm, WT 10.0 mm"
    )
    assert main(["info", str(tmp_path / "absent.pt")]) == 2


def test_synthesize_segment_alone_uses_the_bundled_segmentation_model(
    tmp_path: Path, dataset: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    labels = tmp_path / "seg.nii.gz"
    assert (
        synthesize(
            synthesis_model,
            inputs(dataset),
            tmp_path / "t1ce.nii.gz",
            "--segment",
            "--segmentation-output",
            str(labels),
        )
        == 0
    )
    sidecar = json.loads(sidecar_path(labels).read_text())
    assert sidecar["segmentation_model"]["path"] == str(BUNDLED_SEGMENTATION_MODEL)
    bundled = read_segmentation_info(BUNDLED_SEGMENTATION_MODEL)
    assert bundled.sequences == (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)
    assert "mean Dice measured on" in capsys.readouterr().out, "the bundled card records its Table 5 rows"


def test_only_synthesized_sequences_the_model_uses_mark_its_segmentation(seg_model: Path) -> None:
    info = read_segmentation_info(seg_model)
    assert synthesized_sequences_used(info, ["t1", "t2", "flair"], ["t1ce"]) == (Sequence.T1CE,)
    assert synthesized_sequences_used(info, ["t1", "t1ce", "t2", "flair"], ["t1ce"]) == (), "given ones win"
    assert synthesized_sequences_used(info, ["t1", "t1ce", "t2"], ["flair"]) == (Sequence.FLAIR,)


def test_synthesize_segment_refusals_come_before_synthesis(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    synthesized, labels = tmp_path / "t1ce.nii.gz", tmp_path / "seg.nii.gz"
    segment = ["--segment", str(seg_model), "--segmentation-output", str(labels)]
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    refusals = [
        (inputs(dataset, ("t1", "t2")), segment, "FLAIR is neither given (given: T1, T2)"),
        (inputs(dataset, ("t1", "t2", "flair")), ["--segment", str(seg_model)], "must be given together"),
        (inputs(dataset), ["--segment", str(foreign), "--segmentation-output", str(labels)], "not a CoNeS segment"),
    ]
    for arguments, extra, message in refusals:
        assert synthesize(synthesis_model, arguments, synthesized, *extra) == 2
        assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [foreign]
    labels.write_bytes(b"earlier result")
    assert synthesize(synthesis_model, inputs(dataset), synthesized, *segment) == 2
    assert "seg.nii.gz' already exists; pass --overwrite" in capsys.readouterr().err
    assert not synthesized.exists() and labels.read_bytes() == b"earlier result"


def test_a_segmentation_sequence_that_synthesis_does_not_make_is_refused(
    tmp_path: Path, dataset: Path, seg_model: Path, capsys: pytest.CaptureFixture
) -> None:
    # a T1 + T2 -> FLAIR model completes T1 and T2 with FLAIR: the segmentation model still lacks T1ce
    config = dataclasses.replace(TINY_GENERATOR, in_channels=2)
    card = ModelCard(
        architecture="cones",
        preset=None,
        generator=config,
        sources=(Sequence.T1, Sequence.T2),
        targets=(Sequence.FLAIR,),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "test"),
    )
    flair_model = save_model(tmp_path / "flair.pt", CoNeSGenerator(config), card)
    output, labels = tmp_path / "flair.nii.gz", tmp_path / "seg.nii.gz"
    segment = ["--segment", str(seg_model), "--segmentation-output", str(labels)]
    assert synthesize(flair_model, inputs(dataset, ("t1", "t2")), output, *segment) == 2
    assert "T1ce is neither given (given: T1, T2) nor synthesized (synthesis makes FLAIR)" in capsys.readouterr().err
    assert not output.exists() and not labels.exists()


def test_mismatched_grids_are_refused_up_front_or_resampled_with_resample(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    flair = read_image(dataset / "case0" / "case0_flair.nii.gz")
    flair.SetOrigin(tuple(value + 2.0 for value in flair.GetOrigin()))
    shifted = tmp_path / "flair.nii.gz"
    sitk.WriteImage(flair, str(shifted))
    arguments = [*inputs(dataset, ("t1", "t2")), f"flair={shifted}"]
    synthesized, labels = tmp_path / "t1ce.nii.gz", tmp_path / "seg.nii.gz"
    segment = ["--segment", str(seg_model), "--segmentation-output", str(labels)]
    assert synthesize(synthesis_model, arguments, synthesized, *segment) == 2
    assert "is not on the grid of T1: origin" in capsys.readouterr().err
    assert not synthesized.exists() and not labels.exists()
    assert synthesize(synthesis_model, arguments, synthesized, *segment, "--resample") == 0
    assert grid_difference(read_image(labels), read_image(dataset / "case0" / "case0_t1.nii.gz")) is None


def test_given_sequences_win_over_synthesized_ones(seg_model: Path) -> None:
    images = case_images(shape=SHAPE)
    sources = {name: images[name] for name in ("t1", "t1ce", "t2", "flair")}
    model = load_segmentation_model(seg_model)
    blank = sitk.Image(sources["t1"])
    blank *= 0
    real = sitk.GetArrayFromImage(model.segment(sources))
    chained = sitk.GetArrayFromImage(segment_with_synthesis(model, sources, {"t1ce": blank}))
    np.testing.assert_array_equal(chained, real)


def test_evaluate_segmentation_writes_the_table(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    second = tiny_synthesis_model(tmp_path / "other" / "t1ce.pt", seed=1)
    output = tmp_path / "eval"
    command = ["evaluate-segmentation", "--seg-model", str(seg_model), "--data", str(dataset), "--missing", "t1c"]
    models = ["--synthesis-model", str(synthesis_model), "--synthesis-model", str(second)]
    arguments = [*command, *models, "--output", str(output), "--device", "cpu"]
    assert main(arguments) == 0
    assert "| T1ce = zeros |" in capsys.readouterr().out
    with (output / "segmentation.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    synthesis_keys = {f"cones:{synthesis_model.parent.name}/t1ce", "cones:other/t1ce"}
    assert len(rows) == 2 * 7 * 3  # cases x conditions x regions
    assert {row["condition"] for row in rows} == {"real", "zeros", "mean", "copy-t1", "linear", *synthesis_keys}
    assert {row["region"] for row in rows} == {"ET", "TC", "WT"}
    assert all(0.0 <= float(row["dice"]) <= 1.0 for row in rows)
    assert all(row["reference_voxels"] != "0" for row in rows)  # every synthetic case has a lesion
    table = (output / "segmentation.md").read_text(encoding="utf-8")
    assert "| T1ce = cones:other/t1ce synthesis |" in table and "Dice ET" in table and "2 case(s)" in table
    assert f"per-case Dice against T1ce = cones:{synthesis_model.parent.name}/t1ce synthesis" in table
    assert "| T1ce = copy of T1 |" in table and "| T1ce = learned-linear map |" in table
    assert main(arguments) == 2
    assert "segmentation.csv already exists" in capsys.readouterr().err


def predicted_voxels(output: Path, condition: str) -> dict[tuple[str, str], int]:
    with (output / "segmentation.csv").open() as stream:
        rows = [row for row in csv.DictReader(stream) if row["condition"] == condition]
    return {(row["case_id"], row["region"]): int(row["predicted_voxels"]) for row in rows}


def expected_voxels(model_path: Path, dataset: Path, stand_in: Callable[[str, dict], sitk.Image]) -> dict:
    """Predicted voxels per (case, region) when ``stand_in(case_id, images)`` takes T1ce's place."""
    model = load_segmentation_model(model_path)
    counts = {}
    for case in find_cases(dataset):
        images = {seq: read_image(case.sequences[seq]) for seq in model.sequences if seq != Sequence.T1CE}
        labels = sitk.GetArrayFromImage(model.segment({**images, Sequence.T1CE: stand_in(case.case_id, images)}))
        for region, mask in region_masks(labels, model.labels).items():
            counts[(case.case_id, region.value)] = int(mask.sum())
    return counts


def test_the_copy_and_linear_rows_segment_with_t1_and_with_the_map_fitted_on_the_training_cases(
    tmp_path: Path, dataset: Path, seg_model: Path
) -> None:
    training = tmp_path / "training"
    for seed in (5, 6, 7):
        write_case(training, f"train{seed}", shape=SHAPE, seed=seed)
    output = tmp_path / "eval"
    command = ["evaluate-segmentation", "--seg-model", str(seg_model), "--data", str(dataset), "--missing", "t1c"]
    assert main([*command, "--fit-from", str(training), "--output", str(output), "--device", "cpu"]) == 0

    assert predicted_voxels(output, "copy-t1") == expected_voxels(
        seg_model, dataset, lambda _, images: images[Sequence.T1]
    )
    others = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
    fitted = fit_baselines(find_cases(dataset), training, others, Sequence.T1CE, NormalizationConfig())
    assert fitted is not None and "3 cases" in fitted.fitted_on

    def linear(case_id: str, images: dict) -> sitk.Image:
        linear_map = fitted.linear.maps[case_id]
        prediction = linear_map.predict({seq: sitk.GetArrayFromImage(images[seq]) for seq in others})
        reference = images[Sequence.T1]
        image = sitk.GetImageFromArray(prediction.astype(np.float32))
        image.CopyInformation(reference)
        return image

    assert predicted_voxels(output, "linear") == expected_voxels(seg_model, dataset, linear)
    assert predicted_voxels(output, "linear") != predicted_voxels(output, "copy-t1")


def test_evaluate_segmentation_refuses_to_copy_the_missing_sequence(
    tmp_path: Path, dataset: Path, seg_model: Path, capsys: pytest.CaptureFixture
) -> None:
    command = ["evaluate-segmentation", "--seg-model", str(seg_model), "--data", str(dataset), "--missing", "t1c"]
    assert main([*command, "--copy-from", "t1ce", "--output", str(tmp_path / "eval")]) == 2
    assert "copy_from=T1ce must be another input of the segmentation model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_segmentation_refuses_a_synthesis_model_for_another_sequence(
    tmp_path: Path, dataset: Path, seg_model: Path, synthesis_model: Path, capsys: pytest.CaptureFixture
) -> None:
    command = ["evaluate-segmentation", "--seg-model", str(seg_model), "--data", str(dataset), "--missing", "flair"]
    assert main([*command, "--synthesis-model", str(synthesis_model), "--output", str(tmp_path / "eval")]) == 2
    assert "synthesizes T1ce, not missing=FLAIR" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_imports_without_torch_or_monai() -> None:
    # `cones --help` must stay fast although the parser now has the segmentation commands.
    code = "import sys, cones.cli; cones.cli.build_parser(); print(sorted({'torch', 'monai'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
