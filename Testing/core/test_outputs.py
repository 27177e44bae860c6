"""cones.outputs: outputs checked before the work, published atomically, never over an input."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cones.outputs import OutputExistsError, check_output_file, check_output_folder, same_file, write_atomically


def write_text(text: bytes):
    def write(hidden: Path) -> None:
        hidden.write_bytes(text)

    return write


def test_same_file_sees_through_spellings_and_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "scan.nii.gz"
    original.write_bytes(b"voxels")
    os.symlink(original, tmp_path / "symlink.nii.gz")
    os.link(original, tmp_path / "hardlink.nii.gz")
    monkeypatch.chdir(tmp_path)
    for alias in ("scan.nii.gz", "./scan.nii.gz", "sub/../scan.nii.gz", "symlink.nii.gz", "hardlink.nii.gz"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert same_file(alias, original), alias
    assert not same_file("other.nii.gz", original)
    assert same_file("new/out.nii.gz", tmp_path / "new" / "out.nii.gz"), "paths that do not exist yet compare resolved"


def test_check_output_file_refusals(tmp_path: Path) -> None:
    scan = tmp_path / "t1.nii.gz"
    scan.write_bytes(b"voxels")
    with pytest.raises(ValueError, match=r"'.*t1\.nii\.gz' is the T1 input \('.*t1\.nii\.gz'\)"):
        check_output_file(scan, overwrite=True, reads={"the T1 input": scan, "nothing": None})
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        check_output_file(scan, overwrite=False)
    with pytest.raises(ValueError, match="is a folder"):
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(ValueError, match=r"must end with one of \.nii\.gz, \.nrrd"):
        check_output_file(tmp_path / "out.png", overwrite=False, suffixes=(".nii.gz", ".nrrd"))
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_file(scan / "deeper" / "out.nrrd", overwrite=False)
    assert check_output_file(tmp_path / "new" / "out.NRRD", overwrite=False, suffixes=(".nrrd",)).name == "out.NRRD"
    assert not (tmp_path / "new").exists(), "checking creates nothing"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t1.nii.gz"]


def test_check_output_folder_refusals(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(ValueError, match="is the --data folder"):
        check_output_folder(tmp_path / "." / "data" / "..", reads={"the --data folder": tmp_path})
    assert check_output_folder(tmp_path / "run") == tmp_path / "run"


def test_write_atomically_publishes_once_and_keeps_what_appeared(tmp_path: Path) -> None:
    path = tmp_path / "out.nrrd"
    write_atomically(path, write_text(b"first"), overwrite=False)
    with pytest.raises(OutputExistsError, match="appeared while this command ran"):
        write_atomically(path, write_text(b"second"), overwrite=False)
    assert path.read_bytes() == b"first"
    write_atomically(path, write_text(b"third"), overwrite=True)
    assert path.read_bytes() == b"third"
    assert [entry.name for entry in tmp_path.iterdir()] == ["out.nrrd"]


def test_write_atomically_hands_the_writer_a_name_with_the_output_ending(tmp_path: Path) -> None:
    seen = []
    write_atomically(
        tmp_path / "a.seg.nrrd",
        lambda hidden: seen.append(hidden) or hidden.write_bytes(b""),
        overwrite=False,
        suffix=".seg.nrrd",
    )
    assert seen[0].name.startswith(".a.seg.nrrd.") and seen[0].name.endswith(".seg.nrrd")
    assert seen[0].parent == tmp_path, "beside the output, so publishing is a rename on one file system"


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_an_interrupted_write_leaves_nothing(tmp_path: Path, interrupt: type[BaseException]) -> None:
    def half_then_interrupted(hidden: Path) -> None:
        hidden.write_bytes(b"")  # a SIGINT right after the file was created
        raise interrupt()

    with pytest.raises(interrupt):
        write_atomically(tmp_path / "out.nii.gz", half_then_interrupted, overwrite=False, suffix=".nii.gz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_their_mode_from_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "out.nrrd", write_text(b"x"), overwrite=False)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_publishing_without_hard_links_still_never_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(source, destination):
        raise OSError(errno.EPERM, "hard links are not supported here")

    monkeypatch.setattr(os, "link", no_links)
    path = write_atomically(tmp_path / "out.nrrd", write_text(b"first"), overwrite=False)
    assert path.read_bytes() == b"first"
    with pytest.raises(OutputExistsError):
        write_atomically(path, write_text(b"second"), overwrite=False)
    assert path.read_bytes() == b"first"
    assert [entry.name for entry in tmp_path.iterdir()] == ["out.nrrd"]
