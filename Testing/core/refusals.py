"""The refusal contract every hostile-input test checks, in one place.

A refused command exits with its code (2 for refused input), prints exactly one ``error:`` line on
stderr naming the file and the problem, and leaves the folder it was given byte for byte as it was:
no output, no partial or hidden file, every input unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cones.cli import main


@dataclass(frozen=True)
class Refusal:
    """What a refused command printed."""

    line: str
    """The one ``error:`` line."""
    out: list[str]
    """Its stdout lines (progress, warnings of the work done before the refusal)."""


def assert_refused(
    capture: pytest.CaptureFixture,
    snapshot: Callable[[Path], dict[str, str]],
    arguments: list[str],
    folder: Path,
    *expected: str,
    code: int = 2,
) -> Refusal:
    """Run ``cones`` with ``arguments`` and assert the contract; ``expected`` texts must all be in the line.

    Args:
        capture: ``capsys``, or ``capfd`` where ITK writes to the file descriptors itself.
        snapshot: the ``snapshot`` fixture (file digests of a folder).
    """
    before = snapshot(folder)
    assert main(arguments) == code
    captured = capture.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for text in expected:
        assert text in lines[0], lines[0]
    assert snapshot(folder) == before, "an input changed, or an output or partial file was left"
    return Refusal(lines[0], captured.out.splitlines())
