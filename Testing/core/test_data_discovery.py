"""Finding cases in dataset folders: both BraTS namings, all image endings, labels, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cones.data import CaseFiles, find_cases, require_sequences
from cones.sequences import Sequence


def touch(folder: Path, *names: str) -> Path:
    """Empty files suffice: discovery reads names only."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()
    return folder


ALL = {Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR}


def test_find_cases_reads_both_brats_namings_sorted(tmp_path: Path) -> None:
    touch(tmp_path / "TCGA-DU-7294", *(f"TCGA-DU-7294_{k}.nii.gz" for k in ("t1", "t1ce", "t2", "flair", "seg")))
    touch(tmp_path / "BraTS-GLI-00001-000", *(f"BraTS-GLI-00001-000-{k}.nii.gz" for k in ("t1n", "t1c", "t2w", "t2f")))
    touch(tmp_path / "brainles-example", "brainles-example-t1c.nii.gz", "brainles-example-predseg.nii.gz")
    cases = find_cases(tmp_path)
    assert [case.case_id for case in cases] == ["BraTS-GLI-00001-000", "TCGA-DU-7294", "brainles-example"]
    assert set(cases[0].sequences) == ALL and cases[0].label is None
    assert cases[0].sequences[Sequence.FLAIR].name == "BraTS-GLI-00001-000-t2f.nii.gz"
    assert cases[1].sequences[Sequence.T1CE].name == "TCGA-DU-7294_t1ce.nii.gz"
    assert cases[1].label is not None and cases[1].label.name == "TCGA-DU-7294_seg.nii.gz"
    assert set(cases[2].sequences) == {Sequence.T1CE} and cases[2].label.name == "brainles-example-predseg.nii.gz"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".NII.GZ"])
def test_find_cases_accepts_every_image_ending(tmp_path: Path, suffix: str) -> None:
    touch(tmp_path / "c1", f"c1_t2{suffix}")
    assert find_cases(tmp_path)[0].sequences == {Sequence.T2: tmp_path / "c1" / f"c1_t2{suffix}"}


def test_find_cases_ignores_other_and_hidden_files(tmp_path: Path) -> None:
    touch(tmp_path / "c1", "c1_t1.nii.gz", "c1_t1.txt", "._c1_t2.nii.gz", ".c1_flair.nii.gz.tmp", "c1_dwi.nii.gz")
    touch(tmp_path / "notes")
    (tmp_path / "README.md").touch()
    assert find_cases(tmp_path) == [CaseFiles("c1", {Sequence.T1: tmp_path / "c1" / "c1_t1.nii.gz"}, None)]


def test_find_cases_accepts_bare_sequence_names(tmp_path: Path) -> None:
    touch(tmp_path / "patient", "T1.nrrd", "FLAIR.nii.gz")
    assert set(find_cases(tmp_path)[0].sequences) == {Sequence.T1, Sequence.FLAIR}


def test_find_cases_prefers_expert_labels_to_predicted_ones(tmp_path: Path) -> None:
    touch(tmp_path / "c1", "c1-t1n.nii.gz", "c1-predseg.nii.gz", "c1-seg.nii.gz")
    assert find_cases(tmp_path)[0].label == tmp_path / "c1" / "c1-seg.nii.gz"


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (("c1_t1ce.nii.gz", "c1-t1c.nii.gz"), r"case c1: both c1-t1c.nii.gz and c1_t1ce.nii.gz are T1ce"),
        (("c1_flair.nii", "c1_flair.nii.gz"), r"case c1: both .* are FLAIR"),
        (("c1_t1.nii.gz", "c1_seg.nii", "c1_seg.nrrd"), r"case c1: both c1_seg.nii and c1_seg.nrrd are label 'seg'"),
    ],
)
def test_find_cases_refuses_two_files_for_one_sequence(tmp_path: Path, names: tuple[str, ...], match: str) -> None:
    touch(tmp_path / "c1", *names)
    with pytest.raises(ValueError, match=match):
        find_cases(tmp_path)


def test_find_cases_refuses_missing_or_empty_roots(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        find_cases(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no case found"):
        find_cases(tmp_path)
    touch(tmp_path / "c1", "c1_dwi.nii.gz", "c1_t1.png")
    with pytest.raises(ValueError, match=r"no case found .*<case>_t1.nii.gz .*<case>-t1n.nii.gz"):
        find_cases(tmp_path)


def test_find_cases_hints_when_given_a_single_case_folder(tmp_path: Path) -> None:
    folder = touch(tmp_path / "c1", "c1_t1.nii.gz")
    with pytest.raises(ValueError, match="single case folder"):
        find_cases(folder)


def test_require_sequences_names_case_and_missing_sequence(tmp_path: Path) -> None:
    touch(tmp_path / "a", "a_t1.nii.gz", "a_t1ce.nii.gz", "a_t2.nii.gz")
    touch(tmp_path / "b", "b_t1.nii.gz", "b_t2.nii.gz")
    cases = find_cases(tmp_path)
    assert require_sequences(cases[:1], ["t1n", "t1c"]) == cases[:1]
    with pytest.raises(ValueError, match=r"case b has no T1ce image \(it has T1, T2\)"):
        require_sequences(cases, [Sequence.T1, "t1c"])
    with pytest.raises(ValueError, match="unknown sequence name 'dwi'"):
        require_sequences(cases, ["dwi"])
    with pytest.raises(ValueError, match="cases must not be empty"):
        require_sequences([], ["t1"])
