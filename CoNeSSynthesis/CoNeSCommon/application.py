"""Running ``cones`` processes from the Slicer application: work folders, the launcher, a responsive wait.

This is the one file of :mod:`CoNeSCommon` that needs the application (``slicer.app``, ``qt``); it
imports them inside the functions, so the package stays importable under the slicer-core wheel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from CoNeSCommon.jobs import makeWorkDirectory

__all__ = ["choosePath", "launchSlicerProcess", "newWorkDirectory", "runEventLoopUntil"]


def newWorkDirectory() -> Path:
    """A new, unique folder in Slicer's temporary folder for one job's files (see :func:`makeWorkDirectory`)."""
    import slicer

    return makeWorkDirectory(Path(slicer.app.temporaryPath))


def launchSlicerProcess(
    args: list[str], environment: Mapping[str, str], onLine: Callable[[str], None], onExit: Callable[[int], None]
) -> subprocess.Popen:
    """Start a process with Slicer's startup environment in the background.

    Its lines and its end arrive on the GUI thread through a QTimer (``launchConsoleProcess`` with
    ``blocking=False``, Slicer >= 5.12).
    """
    import slicer

    return slicer.util.launchConsoleProcess(
        args, updateEnvironment=dict(environment), blocking=False, logCallback=onLine, completedCallback=onExit
    )


def runEventLoopUntil(condition: Callable[[], bool], timeoutSeconds: float | None = None) -> bool:
    """Run a local Qt event loop until ``condition()`` holds (or the timeout passes); returns ``condition()``.

    This is how the console API waits for a background job (``wait=True``) without freezing Slicer:
    the job's lines and its end are delivered by QTimers, which need a running event loop, and the
    views keep repainting meanwhile. A local ``QEventLoop`` instead of a ``processEvents()`` loop
    sleeps while nothing happens.
    """
    import qt

    if condition():
        return True
    loop = qt.QEventLoop()
    poll = qt.QTimer()
    poll.setInterval(100)
    poll.timeout.connect(lambda: condition() and loop.quit())
    if timeoutSeconds is not None:
        qt.QTimer.singleShot(round(timeoutSeconds * 1000), loop.quit)
    poll.start()
    loop.exec_()
    poll.stop()
    return condition()


def choosePath(parent, title: str, current: str = "", *, folder: bool = False, nameFilter: str = "") -> str | None:
    """Ask for a file (``nameFilter``, e.g. ``"Models (*.pt)"``) or a folder; None when the user cancels.

    Optional paths are plain text fields with these browse buttons rather than ``ctkPathLineEdit``s:
    a ``ctkPathLineEdit`` never accepts empty text (its validator needs at least one character, or
    a name-filter match), so an optional path could not be cleared, and with name filters set a
    folder could be neither typed nor browsed.
    """
    import qt

    start = current if current.strip() else ""
    if folder:
        chosen = qt.QFileDialog.getExistingDirectory(parent, title, start)
    else:
        chosen = qt.QFileDialog.getOpenFileName(parent, title, start, nameFilter)
    return chosen or None
