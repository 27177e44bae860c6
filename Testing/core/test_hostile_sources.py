"""Hostile model files and source volumes, second pass: refused on one line, or named in a warning.

A model file with damaged weights, a complex-valued or vector volume, a segmentation model given as
the synthesis model: each is refused before any work, with one ``error:`` line naming the file and
the problem, and every file that was there before left byte-identical. What is only doubtful (a
NIfTI whose two orientation headers disagree, an input the model does not use, a volume too small to
tell skull from brain) is named in a warning or recorded as a skipped check instead of passing silently.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from refusals import Refusal, assert_refused
from synthetic_cases import case_images, synthesize_arguments, train_arguments, write_case, write_dataset
from tiny_models import write_tiny_model, write_tiny_segmentation_model

from cones.checkpoint import CheckpointError
from cones.checkpoint.torch_free import read_model_card_without_torch
from cones.cli import main
from cones.domain import TrainingDomain, check_inputs
from cones.segmentation.builtin import (
    read_segmentation_card,
)

SOURCES = ("t1", "t2", "flair")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-iteration training run (``last.pt`` with its training state) and its data."""
    root = tmp_path_factory.mktemp("hostile-sources")
    assert main(train_arguments(write_dataset(root / "data", cases=3), root / "run", iterations=2)) == 0
    return root


@pytest.fixture(scope="module")
def trained(run: Path) -> Path:
    return run / "run" / "last.pt"


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path / "in", "PATIENT")


def source(case: Path, name: str) -> Path:
    return case / f"PATIENT_{name}.nii.gz"


def inputs(case: Path, names: tuple[str, ...] = SOURCES, **replaced: Path) -> list[str]:
    return [f"{name}={replaced.get(name, source(case, name))}" for name in names]


@pytest.fixture
def refused(capsys: pytest.CaptureFixture, snapshot):
    """``refused(arguments, folder, *expected, code=2)``: :func:`refusals.assert_refused`, and before any work."""

    def run_command(arguments: list[str], folder: Path, *expected: str, code: int = 2) -> Refusal:
        refusal = assert_refused(capsys, snapshot, arguments, folder, *expected, code=code)
        assert not any(line.startswith("CONES_PROGRESS") for line in refusal.out), "refused before work"
        return refusal

    return run_command


def segmentation_model(path: Path) -> Path:
    return write_tiny_segmentation_model(path, patch_size=(8, 16, 16))


# 5. a model file whose weights changed after it was written ----------------------------------------------


def with_bad_crc(model: Path, copy: Path) -> Path:
    """A copy of ``model`` with one byte flipped inside its first tensor entry (``<name>/data/0``).

    The zip structure stays intact, so only the CRC-32 of that entry tells: torch.load reads it
    without complaint and the network gets a different weight.
    """
    data = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as archive:
        entry = next(info for info in archive.infolist() if info.filename.endswith("/data/0"))
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26 : entry.header_offset + 30])
    start = entry.header_offset + 30 + name_length + extra_length
    data[start + entry.file_size // 2] ^= 0xFF
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(bytes(data))
    return copy


def crc_entry(model: Path) -> str:
    with zipfile.ZipFile(model) as archive:
        return next(info.filename for info in archive.infolist() if info.filename.endswith("/data/0"))


def test_a_model_file_with_a_bad_crc_still_loads_with_torch(trained: Path, tmp_path: Path) -> None:
    """Why the check is ours: torch.load does not verify the archive's CRCs."""
    bad = with_bad_crc(trained, tmp_path / "bad.pt")
    assert torch.load(bad, weights_only=True)["format"] == "cones-model"


def test_info_refuses_a_model_file_with_a_bad_crc(trained: Path, tmp_path: Path, refused) -> None:
    bad = with_bad_crc(trained, tmp_path / "bad.pt")
    refused(["info", str(bad)], tmp_path, str(bad), f"is corrupt: CRC mismatch in {crc_entry(bad)}")


def test_synthesize_refuses_a_model_file_with_a_bad_crc(trained: Path, case: Path, tmp_path: Path, refused) -> None:
    bad = with_bad_crc(trained, tmp_path / "models" / "bad.pt")
    refused(synthesize_arguments(bad, inputs(case), tmp_path / "t1ce.nii.gz"), tmp_path, str(bad), "CRC mismatch")


def test_synthesize_refuses_a_segmentation_model_with_a_bad_crc(
    trained: Path, case: Path, tmp_path: Path, refused
) -> None:
    bad = with_bad_crc(segmentation_model(tmp_path / "seg.pt"), tmp_path / "models" / "seg.pt")
    (tmp_path / "seg.pt").unlink()
    segment = ["--segment", str(bad), "--segmentation-output", str(tmp_path / "seg.nii.gz")]
    refused(
        synthesize_arguments(trained, inputs(case), tmp_path / "t1ce.nii.gz", *segment),
        tmp_path,
        str(bad),
        "CRC mismatch",
    )


def test_train_refuses_to_resume_or_start_from_a_model_file_with_a_bad_crc(run: Path, tmp_path: Path, refused) -> None:
    resumed = tmp_path / "run"
    with_bad_crc(run / "run" / "last.pt", resumed / "last.pt")
    arguments = [*train_arguments(run / "data", resumed, iterations=4), "--resume"]
    refused(arguments, tmp_path, str(resumed / "last.pt"), "CRC mismatch")
    start = with_bad_crc(run / "run" / "last.pt", tmp_path / "start.pt")
    arguments = [*train_arguments(run / "data", tmp_path / "fresh", iterations=2), "--init-from", str(start)]
    refused(arguments, tmp_path, str(start), "CRC mismatch")


def test_the_torch_free_readers_refuse_a_model_file_with_a_bad_crc(trained: Path, tmp_path: Path) -> None:
    bad = with_bad_crc(trained, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=f"{bad}: it is corrupt: CRC mismatch in {crc_entry(bad)}"):
        read_model_card_without_torch(bad)
    bad_segmentation = with_bad_crc(segmentation_model(tmp_path / "seg.pt"), tmp_path / "bad-seg.pt")
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        read_segmentation_card(bad_segmentation)


def test_a_torchscript_segmentation_network_with_a_bad_crc_is_refused(tmp_path: Path) -> None:
    from cones.segmentation.exported import load_exported_segmentation

    network = tmp_path / "seg.ts"
    with pytest.warns(DeprecationWarning):
        torch.jit.trace(torch.nn.Conv3d(4, 4, 1), torch.zeros(1, 4, 8, 16, 16)).save(str(network))
    bad = with_bad_crc(network, tmp_path / "bad" / "seg.ts")
    sidecar = {"sequences": ["t1", "t1ce", "t2", "flair"], "label_names": ["background", "NCR", "ED", "ET"]}
    sidecar |= {"label_values": [0, 1, 2, 4], "patch_size": [8, 16, 16]}
    bad.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match=f"{bad}: it is corrupt: CRC mismatch in {crc_entry(bad)}"):
        load_exported_segmentation(bad)


# 7. complex-valued and vector volumes --------------------------------------------------------------------


def complex_copy(path: Path) -> Path:
    """A complex64 NIfTI of ``path``'s voxels (magnitude and a phase), as a raw reconstruction writes it."""
    image = nib.load(path)
    voxels = np.asarray(image.dataobj, dtype=np.float32)
    written = path.with_name("complex_" + path.name)
    nib.save(nib.Nifti1Image((voxels * np.exp(0.3j)).astype(np.complex64), image.affine), written)
    return written


def vector_copy(path: Path) -> Path:
    """An RGB (3-component 8-bit) NIfTI of ``path``'s voxels, as a screenshot or a colour map is stored."""
    image = sitk.ReadImage(str(path))
    scaled = sitk.Cast(sitk.RescaleIntensity(image, 0, 255), sitk.sitkUInt8)
    rgb = sitk.Compose(scaled, scaled, scaled)
    written = path.with_name("rgb_" + path.name)
    sitk.WriteImage(rgb, str(written))
    return written


@pytest.mark.parametrize(
    ("make", "pixel_type"), [(complex_copy, "complex of 32-bit float"), (vector_copy, "vector of 8-bit unsigned")]
)
def test_synthesize_refuses_a_volume_that_is_not_real_scalar_naming_its_pixel_type(
    trained: Path, case: Path, tmp_path: Path, make, pixel_type: str, refused
) -> None:
    odd = make(source(case, "t2"))
    line = refused(
        synthesize_arguments(trained, inputs(case, t2=odd), tmp_path / "t1ce.nii.gz"), tmp_path, str(odd)
    ).line
    assert pixel_type in line


# 13. a segmentation model given as the synthesis model -----------------------------------------------------


def test_a_segmentation_model_given_as_synthesis_model_says_which_option_takes_it(
    case: Path, tmp_path: Path, refused
) -> None:
    model = segmentation_model(tmp_path / "seg.pt")
    refused(
        synthesize_arguments(model, inputs(case), tmp_path / "t1ce.nii.gz"),
        tmp_path,
        str(model),
        "it is a CoNeS segmentation model",
        "--segment of 'cones synthesize'",
    )


# smaller: an internal file name in a message ---------------------------------------------------------------


def test_an_unwritable_run_folder_is_named_as_given(tmp_path: Path, monkeypatch, refused) -> None:
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    data = write_dataset(tmp_path / "data", cases=3)
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    folder = tmp_path / "run"
    line = refused(train_arguments(data, folder, iterations=2), tmp_path, f"cannot write '{folder}'", "Read-only").line
    assert "probe" not in line


# smaller: the skull check on a field of view too small to hold a head ----------------------------------------


def test_the_skull_check_skips_a_field_of_view_too_small_for_a_head(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "model.pt")
    card = read_model_card_without_torch(model)
    assert card.training_domain == TrainingDomain.assumed() and card.training_domain.skull_stripped
    images = case_images(shape=(16, 24, 24), spacing=(1.0, 1.0, 1.5))  # 24 x 24 x 24 mm
    report = check_inputs(card, {name: images[name] for name in SOURCES})
    assert "skull" not in {result.check for result in report.results}, report.results
    assert "skull" not in report.checked and "24 x 24 x 24 mm" in report.skipped["skull"]


def test_the_skull_check_still_names_a_skull_in_a_field_of_view_of_a_head(tmp_path: Path) -> None:
    card = read_model_card_without_torch(write_tiny_model(tmp_path / "model.pt"))
    images = case_images(shape=(16, 120, 120), spacing=(1.5, 1.5, 8.0))  # 180 x 180 x 128 mm
    noisy = {}
    for name in SOURCES:
        values = sitk.GetArrayFromImage(images[name])
        head = sitk.GetImageFromArray(values + np.random.default_rng(0).uniform(1, 20, values.shape).astype(np.float32))
        head.CopyInformation(images[name])
        noisy[name] = head
    report = check_inputs(card, noisy)
    assert "skull" in report.checked and {result.check for result in report.results} == {"skull"}


# smaller: an input the model does not use ---------------------------------------------------------------------


def test_synthesize_warns_about_an_input_the_model_does_not_use(
    trained: Path, case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = source(case, "t1ce")
    assert main(synthesize_arguments(trained, [*inputs(case), f"t1ce={target}"], tmp_path / "t1ce.nii.gz")) == 0
    (line,) = [line for line in capsys.readouterr().err.splitlines() if str(target) in line]
    assert line.startswith("warning: ") and "not used" in line and "synthesizes T1ce" in line

    small = write_tiny_model(tmp_path / "t1-t2.pt", sources=("t1", "t2"))
    flair = source(case, "flair")
    assert main(synthesize_arguments(small, inputs(case), tmp_path / "small.nii.gz")) == 0
    (line,) = [line for line in capsys.readouterr().err.splitlines() if str(flair) in line]
    assert line.startswith("warning: ") and "not used" in line


def test_synthesize_says_nothing_of_an_input_the_segmentation_model_uses(
    trained: Path, case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = source(case, "t1ce")
    segment = ["--segment", str(segmentation_model(tmp_path / "seg.pt"))]
    segment += ["--segmentation-output", str(tmp_path / "labels.nii.gz")]
    arguments = synthesize_arguments(trained, [*inputs(case), f"t1ce={target}"], tmp_path / "t1ce.nii.gz", *segment)
    assert main(arguments) == 0
    assert "not used" not in capsys.readouterr().err


# smaller: a NIfTI whose qform and sform disagree ------------------------------------------------------------


def with_qform_shifted(path: Path, shift_mm: float) -> Path:
    """A copy of ``path`` whose qform lies ``shift_mm`` off its sform along x (both codes set, as ITK writes)."""
    image = nib.load(path)
    qform = image.affine.copy()
    qform[0, 3] += shift_mm
    copy = nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)
    copy.set_sform(image.affine, code=1)
    copy.set_qform(qform, code=1)
    written = path.with_name(f"qform{shift_mm:g}_" + path.name)
    nib.save(copy, written)
    return written


def test_synthesize_warns_about_a_nifti_whose_qform_is_far_from_its_sform(
    trained: Path, case: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    shifted = with_qform_shifted(source(case, "t2"), 30.0)
    with caplog.at_level(logging.WARNING):
        assert main(synthesize_arguments(trained, inputs(case, t2=shifted), tmp_path / "t1ce.nii.gz")) == 0
    found = [record.getMessage() for record in caplog.records if str(shifted) in record.getMessage()]
    assert len(found) == 1 and "qform" in found[0] and "30.0 mm" in found[0], caplog.text
    assert caplog.records[[r.getMessage() for r in caplog.records].index(found[0])].levelno == logging.WARNING

    caplog.clear()
    close = with_qform_shifted(source(case, "t2"), 0.01)
    with caplog.at_level(logging.WARNING):
        assert main(synthesize_arguments(trained, inputs(case, t2=close), tmp_path / "close.nii.gz")) == 0
    assert not [record for record in caplog.records if "qform" in record.getMessage()], "rounding is no disagreement"
    capsys.readouterr()
