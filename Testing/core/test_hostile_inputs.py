"""Hostile and unusual inputs to the command line: nothing lost, nothing silently wrong.

Every refusal here is checked the same way: exit code, one ``error:`` line naming the file and the
problem, no output or partial file, and every file that was there before byte-identical after.
"""

from __future__ import annotations

import errno
import gzip
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from refusals import assert_refused
from synthetic_cases import synthesize_arguments, train_arguments, write_case, write_dataset

from cones.checkpoint import read_model_card
from cones.cli import main

SOURCES = ("t1", "t2", "flair")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    assert main(train_arguments(write_dataset(root / "data", cases=3), root / "run", iterations=2)) == 0
    return root / "run" / "last.pt"


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path / "in", "PATIENT")


def source(case: Path, name: str) -> Path:
    return case / f"PATIENT_{name}.nii.gz"


def inputs(case: Path, **replaced: Path) -> list[str]:
    return [f"{name}={replaced.get(name, source(case, name))}" for name in SOURCES]


@pytest.fixture
def refused(capsys: pytest.CaptureFixture, snapshot):
    """``refused(arguments, folder, *expected, code=2)``: :func:`refusals.assert_refused`."""
    return partial(assert_refused, capsys, snapshot)


# 1. data loss: an output that is an input -------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_synthesize_refuses_an_output_that_is_an_input_even_with_overwrite(
    trained: Path, case: Path, tmp_path: Path, spelling: str, monkeypatch, refused
) -> None:
    t1 = source(case, "t1")
    monkeypatch.chdir(case)
    aliases: dict[str, Callable[[], Path | str]] = {
        "same": lambda: t1,
        "dot": lambda: f"./{t1.name}",
        "symlink": lambda: _link(os.symlink, t1, tmp_path / "link.nii.gz"),
        "hardlink": lambda: _link(os.link, t1, tmp_path / "hard.nii.gz"),
    }
    output = aliases[spelling]()
    refused(
        synthesize_arguments(trained, [f"t1={t1.name}", *inputs(case)[1:]], output, "--overwrite"),
        tmp_path,
        "is the T1 input",
    )


def _link(make: Callable[[Path, Path], None], target: Path, link: Path) -> Path:
    make(target, link)
    return link


def test_synthesize_refuses_a_segmentation_output_that_is_an_input_or_the_output(
    trained: Path, case: Path, tmp_path: Path, refused
) -> None:
    output = tmp_path / "t1ce.nii.gz"
    segment = ["--segment", str(trained), "--overwrite"]
    for target, message in ((source(case, "flair"), "is the FLAIR input"), (output, "is the --output file")):
        arguments = synthesize_arguments(trained, inputs(case), output, *segment, "--segmentation-output", str(target))
        refused(arguments, tmp_path, str(target), message)


def test_export_refuses_to_write_over_the_model_it_reads(trained: Path, refused) -> None:
    for extra in ((), ("--overwrite",)):
        refused(["export", str(trained), "--output", str(trained), *extra], trained.parent, "is the model")


# 2. resume on other data ------------------------------------------------------------------------


def test_resume_on_other_data_is_refused_unless_allowed_and_then_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture, refused
) -> None:
    first, second = write_dataset(tmp_path / "first", cases=3), tmp_path / "second"
    write_dataset(second, cases=3, shape=(12, 40, 40))
    run = tmp_path / "run"
    assert main(train_arguments(first, run, iterations=2)) == 0
    capsys.readouterr()
    original = read_model_card(run / "last.pt").provenance.data_fingerprint
    resume = [*train_arguments(second, run, iterations=4), "--resume"]
    refused(resume, tmp_path, "other data", str(first.resolve()), str(second), "--allow-new-data")

    assert main([*resume, "--allow-new-data"]) == 0
    provenance = read_model_card(run / "last.pt").provenance
    assert provenance.iterations == 4 and provenance.data_fingerprint != original
    assert provenance.earlier_data_fingerprints == (original,)
    capsys.readouterr()
    assert main(["info", str(run / "last.pt")]) == 0
    described = capsys.readouterr().out
    assert "earlier data:" in described and original in described
    assert main([*train_arguments(second, run, iterations=6), "--resume"]) == 0, "the new data is now the run's"
    assert read_model_card(run / "last.pt").provenance.earlier_data_fingerprints == (original,)


def test_train_refuses_a_run_folder_that_is_the_data_folder(tmp_path: Path, refused) -> None:
    data = write_dataset(tmp_path / "data", cases=3)
    refused(train_arguments(data, data, iterations=2), tmp_path, "is the --data folder")


# 3-4. truncated, corrupt and non-finite volumes ---------------------------------------------------


def _truncated(path: Path) -> Path:
    broken = path.with_name("broken_" + path.name)
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return broken


def _corrupt(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(byte ^ 0xFF for byte in data[middle : middle + 64])
    broken = path.with_name("broken_" + path.name)
    broken.write_bytes(bytes(data))
    return broken


def _uncompressed_truncated(path: Path) -> Path:
    plain = path.with_name("plain_" + path.name.removesuffix(".gz"))
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    return _truncated(plain)


def _with_value(path: Path, value: float, suffix: str = ".nii.gz") -> Path:
    image = sitk.ReadImage(str(path))
    voxels = sitk.GetArrayFromImage(image)
    voxels[tuple(s // 2 for s in voxels.shape)] = value
    broken = sitk.GetImageFromArray(voxels)
    broken.CopyInformation(image)
    written = path.with_name(f"nonfinite_{path.name.split('.')[0]}{suffix}")
    sitk.WriteImage(broken, str(written))
    return written


BROKEN_VOLUMES = {
    "truncated-nii-gz": (_truncated, "truncated or corrupt"),
    "truncated-nii": (_uncompressed_truncated, "truncated or corrupt"),
    "corrupt-gzip": (_corrupt, "truncated or corrupt"),
    "nan-nii-gz": (lambda path: _with_value(path, np.nan), "NaN or infinite"),
    "inf-nii": (lambda path: _with_value(path, np.inf, ".nii"), "NaN or infinite"),
    "nan-nrrd": (lambda path: _with_value(path, np.nan, ".nrrd"), "NaN or infinite"),
}


@pytest.mark.parametrize("kind", list(BROKEN_VOLUMES))
def test_synthesize_refuses_a_broken_volume_naming_it(
    trained: Path, case: Path, tmp_path: Path, kind: str, refused
) -> None:
    make, problem = BROKEN_VOLUMES[kind]
    broken = make(source(case, "t2"))
    arguments = synthesize_arguments(trained, inputs(case, t2=broken), tmp_path / "t1ce.nii.gz")
    stdout = refused(arguments, tmp_path, str(broken), problem).out
    assert not any(line.startswith("CONES_PROGRESS") for line in stdout), "refused before any slice is synthesized"


def test_train_refuses_a_dataset_with_a_truncated_volume_and_leaves_no_run(tmp_path: Path, refused) -> None:
    data = write_dataset(tmp_path / "data", cases=3)
    flair = data / "CASE-001" / "CASE-001_flair.nii.gz"
    flair.write_bytes(flair.read_bytes()[: flair.stat().st_size // 2])
    refused(train_arguments(data, tmp_path / "run", iterations=2), tmp_path, str(flair), "truncated")


def test_evaluate_refuses_a_case_with_non_finite_voxels(trained: Path, tmp_path: Path, refused) -> None:
    data = write_dataset(tmp_path / "data", cases=2)
    target = data / "CASE-001" / "CASE-001_t1ce.nii.gz"
    _with_value(target, np.nan).replace(target)
    arguments = ["evaluate", "--model", str(trained), "--data", str(data), "--output", str(tmp_path / "eval")]
    refused([*arguments, "--device", "cpu"], tmp_path, str(target), "NaN or infinite")


# 5. a sequence given twice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        lambda case: [*inputs(case), f"t1={source(case, 't2')}"],
        lambda case: [*inputs(case), f"t2f={source(case, 't1')}"],
    ],
)
def test_synthesize_refuses_a_sequence_given_twice(trained: Path, case: Path, tmp_path: Path, pairs, refused) -> None:
    given = pairs(case)
    refused(synthesize_arguments(trained, given, tmp_path / "o.nii.gz"), tmp_path, "given twice", given[-1])


def test_synthesize_collects_repeated_input_options(trained: Path, case: Path, tmp_path: Path) -> None:
    first, *rest = inputs(case)
    output = tmp_path / "o.nii.gz"
    assert main([*synthesize_arguments(trained, [first], output), "--input", *rest]) == 0
    assert output.is_file()


# 6. outputs that cannot or may not be written, found before the work ---------------------------------


def test_synthesize_refuses_unwritable_outputs_before_any_work(
    trained: Path, case: Path, tmp_path: Path, refused
) -> None:
    (tmp_path / "folder.nii.gz").mkdir()
    (tmp_path / "notes.txt").write_text("a regular file")
    for output, problem in (
        (tmp_path / "folder.nii.gz", "is a folder"),
        (tmp_path / "t1ce.xyz", "must end with one of"),
        (tmp_path / "notes.txt" / "t1ce.nii.gz", "is a file, not a folder"),
        (tmp_path / "notes.txt" / "deeper" / "t1ce.nii.gz", "is a file, not a folder"),
    ):
        stdout = refused(
            synthesize_arguments(trained, inputs(case), output, "--overwrite"), tmp_path, str(output), problem
        ).out
        assert not any(line.startswith("CONES_PROGRESS") for line in stdout)


def test_synthesize_refuses_a_read_only_folder_before_any_work(
    trained: Path, case: Path, tmp_path: Path, monkeypatch, refused
) -> None:
    # Root writes into read-only folders, so the file system's refusal is simulated where the probe meets it.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    output = tmp_path / "t1ce.nii.gz"
    refused(synthesize_arguments(trained, inputs(case), output), tmp_path, str(output), "Read-only file system")


def test_synthesize_keeps_a_file_that_appeared_while_it_ran(
    trained: Path, case: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch, snapshot
) -> None:
    import cones.inference

    output = tmp_path / "t1ce.nii.gz"
    real = cones.inference.synthesize_images

    def concurrent_writer(*args, **kwargs):
        results = real(*args, **kwargs)
        output.write_bytes(b"written by another run")
        return results

    monkeypatch.setattr(cones.inference, "synthesize_images", concurrent_writer)
    before = snapshot(tmp_path)
    assert main(synthesize_arguments(trained, inputs(case), output)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(output) in line and "appeared while this command ran); pass --overwrite" in line
    assert output.read_bytes() == b"written by another run"
    assert set(snapshot(tmp_path)) == {*before, output.relative_to(tmp_path).as_posix()}, "no partial file is left"


def test_a_failing_write_is_one_line_with_exit_code_1(
    trained: Path, case: Path, tmp_path: Path, monkeypatch, refused
) -> None:
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sitk, "WriteImage", disk_full)
    refused(synthesize_arguments(trained, inputs(case), tmp_path / "o.nii.gz"), tmp_path, "No space left", code=1)


# 8. file mode --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_synthesized_files_get_their_mode_from_the_umask(
    trained: Path, case: Path, tmp_path: Path, umask: int, mode: int
) -> None:
    output = tmp_path / "t1ce.nii.gz"
    previous = os.umask(umask)
    try:
        assert main(synthesize_arguments(trained, inputs(case), output)) == 0
    finally:
        os.umask(previous)
    assert output.stat().st_mode & 0o777 == mode


# 9. a model given to the wrong option ------------------------------------------------------------------


def test_a_synthesis_model_given_as_segmentation_model_says_which_option_takes_it(
    trained: Path, case: Path, tmp_path: Path, refused
) -> None:
    segment = ["--segment", str(trained), "--segmentation-output", str(tmp_path / "seg.nii.gz")]
    refused(
        synthesize_arguments(trained, inputs(case), tmp_path / "o.nii.gz", *segment),
        tmp_path,
        str(trained),
        "it is a CoNeS synthesis model",
        "--model of 'cones synthesize'",
    )
