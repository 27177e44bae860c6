"""The Table-1 experiment script (Testing/experiments/table1.py): where its cases come from, its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_scripts import load_experiment


@pytest.fixture(scope="module")
def table1():
    return load_experiment("table1")


def test_the_real_split_without_its_cases_is_refused_with_how_to_get_them(table1, tmp_path: Path, capsys) -> None:
    assert table1.main(["--real-split", str(tmp_path / "none"), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "public-brats/extract" in error
    assert not (tmp_path / "out" / "runs").exists(), "nothing was trained"


def test_cases_must_come_from_folders_or_the_real_split(table1, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        table1.main(["--train-data", str(tmp_path), "--output", str(tmp_path / "out")])
    assert raised.value.code == 2 and "--real-split" in capsys.readouterr().err
