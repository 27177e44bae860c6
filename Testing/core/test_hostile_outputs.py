"""Hostile outputs and process lifecycle: what a command writes is complete, published together, or not there.

Every refusal here is checked the same way as in ``test_hostile_inputs``: exit code, one ``error:``
line naming the file and the problem, and every file that was there before byte-identical after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import SimpleITK as sitk
from dicom_series import write_series
from refusals import assert_refused
from synthetic_cases import synthesize_arguments, train_arguments, write_case, write_dataset
from test_cli_prepare import raw_case  # noqa: F401 (a fixture)

from cones.cli import main

SOURCES = ("t1", "t2", "flair")
ACQUIRED_SERIES = "1.2.826.0.1.3680043.8.498.7001"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    assert main(train_arguments(write_dataset(root / "data", cases=3), root / "run", iterations=2)) == 0
    return root / "run" / "last.pt"


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path / "in", "PATIENT")


def inputs(case: Path) -> list[str]:
    return [f"{name}={case / f'PATIENT_{name}.nii.gz'}" for name in SOURCES]


@pytest.fixture
def refused(capsys: pytest.CaptureFixture, snapshot):
    """``refused(arguments, folder, *expected, code=2)``: :func:`refusals.assert_refused`."""
    return partial(assert_refused, capsys, snapshot)


# 1. data loss: --overwrite onto an acquired DICOM series --------------------------------------------


def _acquired_series(case: Path, folder: Path) -> Path:
    """An acquired-looking MR series (ORIGINAL\\PRIMARY, a scanner's description), not an input of the command."""
    image = sitk.ReadImage(str(case / "PATIENT_t1ce.nii.gz"))
    image.SetMetaData("0008|0008", "ORIGINAL\\PRIMARY\\M\\ND")
    return write_series(image, folder, ACQUIRED_SERIES, description="T1 AX POST GD")


def test_dicom_overwrite_never_replaces_an_acquired_series(trained: Path, case: Path, tmp_path: Path, refused) -> None:
    folder = _acquired_series(case, tmp_path / "scan")
    count = len(list(folder.iterdir()))
    refused(
        synthesize_arguments(trained, inputs(case), folder, "--output-format", "dicom", "--overwrite"),
        tmp_path,
        str(folder),
        "not an earlier output of CoNeS",
    )
    assert len(list(folder.iterdir())) == count, "the acquired series is intact"


def test_dicom_overwrite_replaces_an_earlier_synthetic_series_but_not_one_with_acquired_files_mixed_in(
    trained: Path, case: Path, tmp_path: Path, refused, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "t1ce"
    dicom = ("--output-format", "dicom", "--overwrite")
    assert main(synthesize_arguments(trained, inputs(case), folder, *dicom)) == 0
    assert main(synthesize_arguments(trained, inputs(case), folder, *dicom)) == 0, "an earlier CoNeS series is replaced"
    capsys.readouterr()
    acquired = _acquired_series(case, tmp_path / "scan")
    first = sorted(acquired.iterdir())[0]
    os.link(first, folder / first.name)
    refused(synthesize_arguments(trained, inputs(case), folder, *dicom), tmp_path, str(folder), first.name)


# 4. an interrupt while the outputs are published leaves none of them ----------------------------------


def _interrupt_on_call(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...], nth: int) -> None:
    """Raise KeyboardInterrupt (once) on the ``nth`` call of any of these ``os`` functions: a Ctrl-C mid-publication."""
    calls = {"count": 0}
    for name in names:
        real = getattr(os, name)

        def interrupted(*args, _real=real, **kwargs):
            calls["count"] += 1
            if calls["count"] == nth:
                raise KeyboardInterrupt
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, interrupted)


PUBLISHING = ("link", "replace", "rename")


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_an_interrupt_while_publishing_leaves_no_output(
    trained: Path, case: Path, tmp_path: Path, nth: int, monkeypatch, refused
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    maps = ("--uncertainty-output", str(out / "u.nii.gz"), "--enhancement-output", str(out / "e.nii.gz"))
    _interrupt_on_call(monkeypatch, PUBLISHING, nth)
    refused(synthesize_arguments(trained, inputs(case), out / "t1ce.nii.gz", *maps), tmp_path, "interrupted", code=130)


@pytest.mark.parametrize("nth", [1, 3, 5])
def test_an_interrupt_while_replacing_outputs_puts_the_earlier_ones_back(
    trained: Path, case: Path, tmp_path: Path, nth: int, monkeypatch, refused, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    maps = ("--uncertainty-output", str(out / "u.nii.gz"), "--enhancement-output", str(out / "e.nii.gz"))
    assert main(synthesize_arguments(trained, inputs(case), out / "t1ce.nii.gz", *maps)) == 0
    capsys.readouterr()
    _interrupt_on_call(monkeypatch, PUBLISHING, nth)
    arguments = synthesize_arguments(trained, inputs(case), out / "t1ce.nii.gz", *maps, "--overwrite")
    refused(arguments, tmp_path, "interrupted", code=130)


def test_an_interrupt_after_the_maps_are_written_leaves_no_map(
    trained: Path, case: Path, tmp_path: Path, monkeypatch, refused
) -> None:
    import cones.marking

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cones.marking, "write_sidecar", interrupted)
    maps = ("--uncertainty-output", str(tmp_path / "u.nii.gz"), "--enhancement-output", str(tmp_path / "e.nii.gz"))
    refused(
        synthesize_arguments(trained, inputs(case), tmp_path / "t1ce.nii.gz", *maps), tmp_path, "interrupted", code=130
    )


def test_an_interrupt_after_preparation_leaves_no_mask_and_no_prepared_folder(
    trained: Path,
    raw_case: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch,
    refused,
) -> None:
    import cones.marking

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cones.marking, "write_synthesized", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    pairs = [f"{name}={path}" for name, path in raw_case.items()]
    extra = ("--prepare", "--brain-mask-output", str(out / "mask.nii.gz"), "--prepared-output-dir", str(out / "prep"))
    refused(synthesize_arguments(trained, pairs, out / "t1ce.nii.gz", *extra), out, "interrupted", code=130)


# 10. names over the file system's limit ---------------------------------------------------------------


@pytest.mark.parametrize(("length", "what"), [(260, "t1ce"), (247, "sidecar"), (240, "hidden")])
def test_output_names_over_the_file_system_limit_are_refused_before_the_work(
    trained: Path, case: Path, tmp_path: Path, length: int, what: str, refused
) -> None:
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    output = tmp_path / ("a" * (length - len(".nii.gz")) + ".nii.gz")
    assert len(output.name) + len(".json") > limit - 30, "the name, its sidecar's or its hidden file's, is too long"
    stdout = refused(synthesize_arguments(trained, inputs(case), output), tmp_path, "too long", str(limit)).out
    assert not any(line.startswith("CONES_PROGRESS") for line in stdout), "refused before the work"


def test_a_dicom_output_folder_name_over_the_limit_is_refused(
    trained: Path, case: Path, tmp_path: Path, refused
) -> None:
    output = tmp_path / ("d" * 256)
    refused(synthesize_arguments(trained, inputs(case), output, "--output-format", "dicom"), tmp_path, "too long")


# 11. sample-data into a file -------------------------------------------------------------------------


@pytest.mark.parametrize("deeper", [False, True])
def test_sample_data_refuses_an_output_that_is_a_file(tmp_path: Path, deeper: bool, refused) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("a regular file")
    out = existing / "cases" if deeper else existing
    refused(["sample-data", "--out", str(out), "--size", "32x32x16"], tmp_path, str(existing), "is a file")


# smaller: option errors first, a resume below the finished count, an interrupt at the very end -------


def test_an_option_error_is_reported_before_the_input_checks_warn(
    trained: Path, case: Path, tmp_path: Path, refused, capsys: pytest.CaptureFixture
) -> None:
    pairs = []
    for name in SOURCES:  # a spacing unlike the training data's: the input checks warn about it
        image = sitk.ReadImage(str(case / f"PATIENT_{name}.nii.gz"))
        image.SetSpacing((3.0, 3.0, 3.0))
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
        pairs.append(f"{name}={tmp_path / f'{name}.nii.gz'}")
    assert main(synthesize_arguments(trained, pairs, tmp_path / "check.nii.gz")) == 0
    assert "warning: T1: 3 x 3 mm voxels" in capsys.readouterr().err
    refused(
        synthesize_arguments(trained, pairs, tmp_path / "o.nii.gz", "--batch-size", "0"), tmp_path, "--batch-size", "0"
    )


def test_a_resume_below_the_finished_iterations_is_refused_naming_both(
    tmp_path: Path, refused, capsys: pytest.CaptureFixture
) -> None:
    data, run = write_dataset(tmp_path / "data", cases=3), tmp_path / "run"
    assert main(train_arguments(data, run, iterations=2)) == 0
    capsys.readouterr()
    for iterations in (1, 2):
        arguments = [*train_arguments(data, run, iterations=iterations), "--resume"]
        refused(arguments, tmp_path, "has finished 2 iterations", f"--iterations {iterations}")


def test_an_interrupt_at_the_very_end_still_says_so(trained: Path, case: Path, tmp_path: Path) -> None:
    """A Ctrl-C right after the last line, while the interpreter tears torch down, said nothing (or a traceback)."""
    command = [sys.executable, "-m", "cones.cli", *synthesize_arguments(trained, inputs(case), tmp_path / "o.nii.gz")]
    for delay in (0.0, 0.01, 0.05):
        (tmp_path / "o.nii.gz").unlink(missing_ok=True)
        (tmp_path / "o.nii.gz.json").unlink(missing_ok=True)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if "written to" in line:
                time.sleep(delay)
                process.send_signal(signal.SIGINT)
                break
        _, err = process.communicate(timeout=120)
        assert "Traceback" not in err, err
        assert process.returncode in (0, 130), (delay, process.returncode, err)
        if process.returncode == 130:
            assert err.strip().splitlines()[-1] == "error: interrupted", err
