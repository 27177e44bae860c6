"""Each segmentation backend on tiny models built here: built-in U-Net file, TorchScript, ONNX, nnU-Net folder.

The exported networks are hand-made thresholds with a known answer (enhancing tumour where the
second channel is bright), so a wrong channel order, label mapping or geometry shows as a wrong map.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import OBLIQUE_LEFT_HANDED, case_images
from tiny_models import write_tiny_segmentation_model

from cones.checkpoint import CheckpointError
from cones.data.geometry import grid_difference
from cones.segmentation import (
    Imputation,
    SegmentationInfo,
    load_segmentation_model,
    read_segmentation_info,
)
from cones.segmentation.exported import load_exported_segmentation
from cones.segmentation.labels import BRATS_2023_LABELS
from cones.segmentation.metrics import dice_hd95
from cones.segmentation.nnunet import NnUNetSegmentation, read_nnunet_dataset
from cones.sequences import Sequence

SHAPE = (16, 32, 32)
SEQUENCES = (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)


def images(**kwargs: object) -> dict[str, sitk.Image]:
    """One case's images and its reference label map ("seg")."""
    return case_images(shape=SHAPE, direction=OBLIQUE_LEFT_HANDED, origin=(3.0, -2.0, 5.0), **kwargs)


def sequences_of(case: dict[str, sitk.Image]) -> dict[str, sitk.Image]:
    return {name: image for name, image in case.items() if name != "seg"}


class BrightSecondChannel(torch.nn.Module):
    """Logits for (background, NCR, ED, ET): ET where channel 1 exceeds 0.5 after normalization."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(x[:, 1:2])
        return torch.cat([zero, zero - 10.0, zero - 10.0, (x[:, 1:2] - 0.5) * 10.0], dim=1)


def write_sidecar(model: Path, label_values: tuple[int, ...] = (0, 1, 2, 4), **extra: object) -> None:
    content = {
        "sequences": ["t1", "t1ce", "t2", "flair"],
        "label_names": ["background", "NCR", "ED", "ET"],
        "label_values": list(label_values),
        "patch_size": [8, 16, 16],
        **extra,
    }
    model.with_suffix(".json").write_text(json.dumps(content))


def builtin_model(path: Path) -> Path:
    return write_tiny_segmentation_model(path, patch_size=SHAPE)


def assert_enhancing_found(label_map: sitk.Image, case: dict[str, sitk.Image], enhancing_value: int) -> None:
    assert grid_difference(label_map, case["t1"]) is None
    assert label_map.GetDirection() == pytest.approx(OBLIQUE_LEFT_HANDED)
    predicted = sitk.GetArrayFromImage(label_map)
    assert set(np.unique(predicted)) <= {0, enhancing_value}
    dice, _ = dice_hd95(predicted == enhancing_value, sitk.GetArrayFromImage(case["seg"]) == 4, (1.5, 1.0, 1.0))
    assert dice > 0.9


def test_torchscript_backend_follows_the_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "seg.ts"
    with pytest.warns(DeprecationWarning):
        torch.jit.trace(BrightSecondChannel(), torch.zeros(1, 4, 8, 16, 16)).save(str(path))
    write_sidecar(path, label_values=BRATS_2023_LABELS.values)
    model = load_segmentation_model(path)
    assert model.sequences == SEQUENCES
    assert read_segmentation_info(path) == SegmentationInfo(SEQUENCES, BRATS_2023_LABELS, path)
    case = images()
    assert_enhancing_found(model.segment(sequences_of(case)), case, enhancing_value=3)


def test_onnx_backend_follows_the_sidecar(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "seg.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(BrightSecondChannel(), (torch.zeros(1, 4, 8, 16, 16),), str(path), dynamo=False)
    write_sidecar(path)
    case = images()
    assert_enhancing_found(load_segmentation_model(path).segment(sequences_of(case)), case, enhancing_value=4)


class UpperHalfAlongFirstAxis(torch.nn.Module):
    """ET in the first half of the patch's first (z) axis, wherever the image is: it shows the orientation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = x.shape[2]
        ramp = torch.arange(depth, dtype=x.dtype).view(1, 1, depth, 1, 1).expand_as(x[:, :1])
        zero = torch.zeros_like(ramp)
        return torch.cat([zero, zero - 10.0, zero - 10.0, (depth / 2 - 0.5 - ramp) * 10.0], dim=1)


@pytest.mark.parametrize(("orientation", "first_half_is_et"), [("stored", True), ("LPS", False), ("RAS", False)])
def test_exported_network_sees_the_orientation_its_sidecar_names(
    tmp_path: Path, orientation: str, first_half_is_et: bool
) -> None:
    # The case's third axis is mirrored (OBLIQUE_LEFT_HANDED): in LPS or RAS, stored slice 0 comes last.
    path = tmp_path / "seg.ts"
    with pytest.warns(DeprecationWarning):
        torch.jit.trace(UpperHalfAlongFirstAxis(), torch.zeros(1, 4, *SHAPE)).save(str(path))
    write_sidecar(path, patch_size=list(SHAPE), orientation=orientation)
    case = images()
    label_map = sitk.GetArrayFromImage(load_segmentation_model(path).segment(sequences_of(case)))
    half = SHAPE[0] // 2
    assert (label_map[:half] == 4).all() == first_half_is_et
    assert (label_map[half:] == 4).all() != first_half_is_et


def test_exported_network_without_a_valid_sidecar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "seg.ts"
    with pytest.warns(DeprecationWarning):
        torch.jit.trace(BrightSecondChannel(), torch.zeros(1, 4, 8, 16, 16)).save(str(path))
    with pytest.raises(ValueError, match="no sidecar"):
        load_exported_segmentation(path)
    write_sidecar(path, sequences=["t1", "t1ce", "t2", "dwi"])
    with pytest.raises(ValueError, match="invalid"):
        load_exported_segmentation(path)
    write_sidecar(path, orientation="LPR")
    with pytest.raises(ValueError, match="orientation"):
        load_exported_segmentation(path)
    write_sidecar(path, label_names=["background", "NCR", "ED", "enhancing"])
    with pytest.raises(ValueError, match="lack the BraTS class"):
        load_exported_segmentation(path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_exported_segmentation(path)
    onnx_without_sidecar = tmp_path / "other.onnx"
    onnx_without_sidecar.write_bytes(b"\0")
    with pytest.raises(ValueError, match="no sidecar"):
        load_segmentation_model(onnx_without_sidecar)


def test_builtin_model_file_round_trips_and_keeps_the_input_geometry(tmp_path: Path) -> None:
    model = load_segmentation_model(builtin_model(tmp_path / "last.pt"))
    assert model.sequences == SEQUENCES
    assert model.training_means == (0.1, 0.2, 0.3, 0.4)
    case = images()
    label_map = model.segment(sequences_of(case))
    assert grid_difference(label_map, case["t1"]) is None
    assert set(np.unique(sitk.GetArrayFromImage(label_map))) <= {0, 1, 2, 4}


def test_the_builtin_network_segments_only_the_window_around_the_foreground(tmp_path: Path) -> None:
    model = load_segmentation_model(write_tiny_segmentation_model(tmp_path / "last.pt", patch_size=(8, 16, 16)))
    last_bias = [name for name, value in model.network.state_dict().items() if name.endswith("bias")][-1]
    with torch.no_grad():
        model.network.state_dict()[last_bias].copy_(torch.tensor([0.0, 0.0, 0.0, 100.0]))  # ET wherever it looks
    case = images()
    padded = {name: sitk.ConstantPad(image, (9, 7, 3), (5, 11, 4), 0.0) for name, image in sequences_of(case).items()}
    predicted = sitk.GetArrayFromImage(model.segment(padded))
    foreground = np.argwhere(np.any([sitk.GetArrayFromImage(image) > 0 for image in padded.values()], axis=0))
    low, high = foreground.min(axis=0), foreground.max(axis=0) + 1
    window = np.argwhere(predicted == 4)
    assert len(window) == int(np.prod(window.max(axis=0) - window.min(axis=0) + 1)), "one box"
    assert (window.min(axis=0) == low).all() and (window.max(axis=0) + 1 == high).all()
    assert set(np.unique(predicted)) == {0, 4}, "the air around it is background"


def test_missing_sequence_must_be_given_or_imputed(tmp_path: Path) -> None:
    model = load_segmentation_model(builtin_model(tmp_path / "last.pt"))
    case = {name: image for name, image in sequences_of(images()).items() if name != "t1ce"}
    with pytest.raises(ValueError, match="needs T1ce"):
        model.segment(sequences_of(case))
    for method in Imputation:
        assert model.segment(case, impute={"t1ce": method}).GetSize() == case["t1"].GetSize()


def test_mean_imputation_fills_the_foreground_with_the_training_mean(tmp_path: Path) -> None:
    model = load_segmentation_model(builtin_model(tmp_path / "last.pt"))
    arrays = {seq: np.full((2, 2, 2), 5.0, dtype=np.float32) for seq in (Sequence.T1, Sequence.T2)}
    mask = np.zeros((2, 2, 2), dtype=bool)
    mask[0] = True
    channel = model._channel(1, Sequence.T1CE, arrays, {Sequence.T1CE: Imputation.MEAN}, mask)
    np.testing.assert_allclose(channel[0], 0.2)
    np.testing.assert_array_equal(channel[1], -1.0)
    zeros = model._channel(1, Sequence.T1CE, arrays, {Sequence.T1CE: Imputation.ZEROS}, mask)
    assert (zeros == -1).all()


def test_mismatched_geometry_is_refused(tmp_path: Path) -> None:
    model = load_segmentation_model(builtin_model(tmp_path / "last.pt"))
    case = images()
    case["t2"].SetSpacing((1.0, 1.0, 3.0))
    with pytest.raises(ValueError, match="not on the grid"):
        model.segment(sequences_of(case))


def test_foreign_and_synthesis_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a CoNeS segmentation model"):
        load_segmentation_model(foreign)
    synthesis = tmp_path / "synthesis.pt"
    torch.save({"format": "cones-model", "format_version": 1}, synthesis)
    with pytest.raises(CheckpointError, match="synthesis model"):
        load_segmentation_model(synthesis)
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(CheckpointError, match="not a PyTorch model file"):
        load_segmentation_model(text)
    with pytest.raises(ValueError, match="does not exist"):
        load_segmentation_model(tmp_path / "absent.pt")


def test_builtin_file_with_weights_of_another_network_is_refused(tmp_path: Path) -> None:
    path = builtin_model(tmp_path / "last.pt")
    raw = torch.load(path, weights_only=True)
    raw["card"]["network"]["channels"] = [4, 16]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_segmentation_model(path)


def test_a_version_1_file_loads_without_validation_scores_and_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = builtin_model(tmp_path / "last.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 2 and raw["card"]["validation_scores"] == []
    del raw["card"]["validation_scores"]
    torch.save({**raw, "format_version": 1}, path)
    assert load_segmentation_model(path).card.validation_scores == ()
    torch.save({**raw, "format_version": 3}, path)
    with pytest.raises(CheckpointError, match="format version 3 is not supported; upgrade CoNeS"):
        load_segmentation_model(path)


def nnunet_folder(root: Path, dataset: dict[str, object]) -> Path:
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps(dataset))
    (root / "plans.json").write_text("{}")
    return root


BRATS_REGION_DATASET = {
    "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
    "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
    "regions_class_order": [1, 2, 3],
}


def test_nnunet_dataset_json_maps_channels_and_region_labels(tmp_path: Path) -> None:
    sequences, labels = read_nnunet_dataset(nnunet_folder(tmp_path / "model", BRATS_REGION_DATASET))
    assert sequences == SEQUENCES
    assert (labels.value_of("ED"), labels.value_of("NCR"), labels.value_of("ET")) == (1, 2, 3)


def test_nnunet_dataset_json_maps_brats_2023_names_and_plain_labels(tmp_path: Path) -> None:
    dataset = {
        "channel_names": {"1": "t1c", "0": "t1n", "3": "t2f", "2": "t2w"},
        "labels": {"background": 0, "NETC": 1, "SNFH": 2, "ET": 3},
    }
    sequences, labels = read_nnunet_dataset(nnunet_folder(tmp_path / "model", dataset))
    assert sequences == SEQUENCES
    assert labels == BRATS_2023_LABELS


def test_nnunet_dataset_with_unknown_channels_or_labels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MRI sequence"):
        read_nnunet_dataset(nnunet_folder(tmp_path / "a", {**BRATS_REGION_DATASET, "channel_names": {"0": "CT"}}))
    with pytest.raises(ValueError, match="cannot tell which"):
        read_nnunet_dataset(
            nnunet_folder(tmp_path / "b", {**BRATS_REGION_DATASET, "labels": {"background": 0, "x": 1}})
        )
    with pytest.raises(ValueError, match="not a trained nnU-Net folder"):
        load_segmentation_model(tmp_path)


RAW_THRESHOLD = 950.0


class RecordingPredictor:
    """Stands in for nnU-Net's predictor: records what it is given, answers 'ET' above a raw value."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, dict[str, object]]] = []

    def predict_single_npy_array(
        self,
        image: np.ndarray,
        properties: dict[str, object],
        segmentation_previous: object,
        output_file: object,
        return_probs: bool,
    ) -> np.ndarray:
        self.calls.append((image, properties))
        return (image[1] > RAW_THRESHOLD).astype(np.uint8) * 3


def test_nnunet_backend_gets_raw_intensities_in_channel_order(tmp_path: Path) -> None:
    sequences, labels = read_nnunet_dataset(nnunet_folder(tmp_path / "model", BRATS_REGION_DATASET))
    predictor = RecordingPredictor()
    model = NnUNetSegmentation(predictor, sequences, labels, tmp_path / "model")
    case = images()
    label_map = model.segment(sequences_of(case))
    assert grid_difference(label_map, case["t1"]) is None
    expected = (sitk.GetArrayFromImage(case["t1ce"]) > RAW_THRESHOLD) * 3
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label_map), expected)
    ((image, properties),) = predictor.calls
    assert image.shape == (4, *SHAPE) and image.max() > 1000  # raw, not normalised
    assert properties == {"spacing": [1.5, 1.0, 1.0]}
    with pytest.raises(ValueError, match="no training means"):
        model.segment({k: v for k, v in sequences_of(case).items() if k != "t1ce"}, impute={"t1ce": "mean"})


def tiny_nnunet_folder(root: Path, reader: str) -> Path:
    """A trained nnU-Net v2 folder as nnU-Net writes it, with a randomly initialised 2-stage PlainConvUNet.

    Channels are listed T1ce first so that a channel order taken from anywhere but dataset.json
    shows; the plans' spacing equals the case's, so nnU-Net does not resample.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset = {
        "channel_names": {"0": "T1ce", "1": "T1", "2": "FLAIR", "3": "T2"},
        "labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 3},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    resampling = {"order": 1, "order_z": 0, "force_separate_z": None}
    arch_kwargs = {
        "n_stages": 2,
        "features_per_stage": [4, 8],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [2, 2, 2]],
        "n_conv_per_stage": [1, 1],
        "n_conv_per_stage_decoder": [1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 1,
        "patch_size": list(SHAPE),
        "median_image_size_in_voxels": list(SHAPE),
        "spacing": [1.5, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"] * 4,
        "use_mask_for_norm": [True] * 4,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, **resampling},
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_seg_kwargs": {"is_seg": True, **resampling},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, **resampling},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": arch_kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": False,
    }
    intensities = {"mean": 0.0, "std": 1.0, "median": 0.0, "min": 0.0, "max": 1.0}
    plans = {
        "dataset_name": "Dataset001_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.5, 1.0, 1.0],
        "original_median_shape_after_transp": list(SHAPE),
        "image_reader_writer": reader,
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {str(i): intensities for i in range(4)},
    }
    folder = nnunet_folder(root, dataset)
    (folder / "plans.json").write_text(json.dumps(plans))
    manager = PlansManager(plans)
    torch.manual_seed(0)
    network = nnUNetTrainer.build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 4, 4, enable_deep_supervision=False
    )
    checkpoint = {
        "network_weights": network.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {"configuration": "3d_fullres"},
        # No mirroring at test time: averaging over flips would make a flipped orientation invisible.
        "inference_allowed_mirroring_axes": None,
    }
    (folder / "fold_0").mkdir()
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


@pytest.mark.parametrize("reader", ["SimpleITKIO", "SimpleITKIOWithReorient"])
def test_nnunet_folder_predicts_as_nnunet_does_from_files(tmp_path: Path, reader: str) -> None:
    pytest.importorskip("nnunetv2")
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO, SimpleITKIOWithReorient

    folder = tiny_nnunet_folder(tmp_path / "model", reader)
    model = load_segmentation_model(folder)
    assert isinstance(model, NnUNetSegmentation)
    assert model.sequences == (Sequence.T1CE, Sequence.T1, Sequence.FLAIR, Sequence.T2)
    assert read_segmentation_info(folder) == SegmentationInfo(model.sequences, BRATS_2023_LABELS, folder)
    case = images()
    label_map = model.segment(sequences_of(case))
    assert grid_difference(label_map, case["t1"]) is None
    # nnU-Net's own path: its reader on the files, in dataset.json's channel order, and its writer's geometry
    files = []
    for name in ("t1ce", "t1", "flair", "t2"):
        files.append(str(tmp_path / f"case_{len(files):04d}.nii.gz"))
        sitk.WriteImage(case[name], files[-1])
    io_class = SimpleITKIO if reader == "SimpleITKIO" else SimpleITKIOWithReorient
    data, properties = io_class().read_images(files)
    expected = model.predictor.predict_single_npy_array(data, properties, None, None, False)
    if reader == "SimpleITKIOWithReorient":
        io_class().write_seg(expected, str(tmp_path / "expected.nii.gz"), properties)
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "expected.nii.gz")))
    predicted = sitk.GetArrayFromImage(label_map)
    assert len(np.unique(predicted)) > 1  # a constant map would hide a wrong channel order or orientation
    np.testing.assert_array_equal(predicted, expected)


def test_nnunet_folder_without_a_trained_fold_or_with_a_2d_reader_is_refused(tmp_path: Path) -> None:
    folder = nnunet_folder(tmp_path / "model", BRATS_REGION_DATASET)
    with pytest.raises(ValueError, match="no fold_"):
        load_segmentation_model(folder)
    (folder / "plans.json").write_text(json.dumps({"image_reader_writer": "NaturalImage2DIO"}))
    with pytest.raises(ValueError, match="NaturalImage2DIO"):
        load_segmentation_model(folder)


def test_images_without_foreground_are_refused(tmp_path: Path) -> None:
    model = load_segmentation_model(builtin_model(tmp_path / "last.pt"))
    blank = {name: image * 0 for name, image in sequences_of(images()).items()}
    with pytest.raises(ValueError, match="empty foreground"):
        model.segment(blank)
