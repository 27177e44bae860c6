"""Running ``cones`` processes from the Slicer application: work folders and the process launchers.

This is the one file of :mod:`CoNeSCommon` that needs the application (``slicer.app``, ``qt``); it
imports them inside the functions, so the package stays importable under the slicer-core wheel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["launchSlicerProcess", "startSlicerProcess", "workDirectory"]


def workDirectory() -> Path:
    """A new folder in Slicer's temporary folder, for one job's files."""
    import slicer

    return Path(slicer.util.tempDirectory("CoNeS"))


def startSlicerProcess(args: list[str], environment: Mapping[str, str]) -> subprocess.Popen:
    """Start a process with Slicer's startup environment, for runs that wait for it (scripts)."""
    import slicer

    return slicer.util.launchConsoleProcess(args, updateEnvironment=dict(environment))


def launchSlicerProcess(
    args: list[str], environment: Mapping[str, str], onLine: Callable[[str], None], onExit: Callable[[int], None]
) -> subprocess.Popen:
    """Start a process in the background; its lines and its end arrive on the GUI thread (Slicer >= 5.12)."""
    import slicer

    return slicer.util.launchConsoleProcess(
        args, updateEnvironment=dict(environment), blocking=False, logCallback=onLine, completedCallback=onExit
    )
