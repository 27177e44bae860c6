"""The oldest Slicer the CoNeS modules run on, checked before anything that needs it is imported.

Slicer 5.12 is the first release with what the modules rely on: Python 3.12 (``enum.StrEnum``),
``slicer.packaging.pip_ensure`` and a non-blocking ``slicer.util.launchConsoleProcess`` with
``logCallback``/``completedCallback``. On an older Slicer the import would fail somewhere deep
(``ImportError: StrEnum`` on 5.8) or the first Apply would raise a ``TypeError`` (5.10), so this file
must itself import on any Python 3.9 or later (annotations stay strings) and say plainly what is needed.
"""

from __future__ import annotations

import logging

__all__ = ["MINIMUM_SLICER_VERSION", "checkSlicerVersion", "unsupportedSlicerMessage"]

MINIMUM_SLICER_VERSION = (5, 12)
"""(major, minor) of the oldest supported Slicer; CMakeLists.txt and README.md state the same."""


def unsupportedSlicerMessage(version: tuple[int, int]) -> str | None:
    """Why Slicer ``version`` (major, minor) cannot run CoNeS, or None when it can."""
    if tuple(version) >= MINIMUM_SLICER_VERSION:
        return None
    required = ".".join(map(str, MINIMUM_SLICER_VERSION))
    found = ".".join(map(str, version))
    return f"CoNeS needs 3D Slicer {required} or later, but this is Slicer {found}: install a newer Slicer"


def checkSlicerVersion() -> None:
    """Refuse to load the modules in a Slicer application older than :data:`MINIMUM_SLICER_VERSION`.

    Outside the application (``PythonSlicer``, the slicer-core wheel) there is no ``slicer.app``
    and nothing to check: the interpreter itself then decides what imports.

    Raises:
        ImportError: the running Slicer is too old; the message says which version is needed. Slicer
            reports it as the module's load error, and it is also written to the error log.
    """
    import slicer

    application = getattr(slicer, "app", None)
    if application is None:
        return
    message = unsupportedSlicerMessage((application.majorVersion, application.minorVersion))
    if message is not None:
        logging.getLogger(__name__).error(message)
        raise ImportError(message)
