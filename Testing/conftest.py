"""Fixtures every part of the suite uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest


def fileDigests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, hidden ones too: a new, changed or missing file shows."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, str]]:
    """:func:`fileDigests`, to compare a folder before and after a command that must leave it as it was."""
    return fileDigests
