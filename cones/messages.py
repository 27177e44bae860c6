"""The command line's messages on stderr: ``warning: ...`` lines, ITK's warnings among them.

A user reads stderr line by line, and a script looks for ``warning:`` and ``error:``. The log of
``cones`` itself goes through :mod:`logging`; :class:`CommandLineFormatter` writes its warnings and
errors in that form (information keeps its ``INFO`` prefix, which the Slicer modules parse).

ITK (and GDCM through it) writes its warnings straight to stderr as multi-line blocks that name
the source file of the ITK build and the address of a C++ object, such as::

    WARNING: In /tmp/SimpleITK-build/ITK/Modules/IO/NIFTI/src/itkNiftiImageIO.cxx, line 2008
    NiftiImageIO (0x5576b4ef1fb0): /data/t1.nii.gz has unexpected scales in sform

:func:`capture_itk_messages` installs a SimpleITK logger that turns each such block into one line
of the ``cones.itk`` logger, ``NiftiImageIO: /data/t1.nii.gz has unexpected scales in sform``, once
per command, and drops the warnings about what ``cones`` checks itself with its own message. ITK's
error text is logged at debug level only: the exception that follows it carries the same text,
and ``cones`` turns that into its one ``error:`` line.
"""

from __future__ import annotations

import atexit
import functools
import logging
import re

import SimpleITK as sitk

__all__ = ["ITK_LOGGER_NAME", "CommandLineFormatter", "capture_itk_messages", "itk_message_line"]

ITK_LOGGER_NAME = "cones.itk"
HANDLED_ITK_WARNINGS = ("Non uniform sampling or missing slices detected",)
"""ITK warnings about something ``cones`` checks itself and reports in its own words.

Slice positions of a DICOM series are checked before the series is read
(:func:`cones.data.dicom.read_dicom_series`): an uneven series is refused, or with ``--resample``
interpolated at the true positions, and said so.
"""
_SOURCE_LINE = re.compile(r"^(WARNING|ERROR|DEBUG)?:?\s*In .*, line \d+\s*$")
_OBJECT_ADDRESS = re.compile(r"\s*\(0x[0-9a-fA-F]+\)")

logger = logging.getLogger(ITK_LOGGER_NAME)


class CommandLineFormatter(logging.Formatter):
    """``warning: text`` and ``error: text`` for warnings and errors, ``INFO text`` for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"{record.levelname.lower()}:" if record.levelno >= logging.WARNING else record.levelname
        return f"{prefix} {text}"


def itk_message_line(text: str) -> str:
    """One line of an ITK message block: without the ITK source line and the C++ object's address."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and _SOURCE_LINE.match(lines[0]):
        lines = lines[1:]
    return _OBJECT_ADDRESS.sub("", " ".join(line for line in lines if line))


class _ItkToLogging(sitk.LoggerBase):
    """SimpleITK's global ITK logger, handing each distinct message to :mod:`logging` once (ITK names the methods)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def DisplayText(self, text: str) -> None:
        logger.debug("%s", itk_message_line(text))

    def DisplayErrorText(self, text: str) -> None:
        logger.debug("%s", itk_message_line(text))

    def DisplayWarningText(self, text: str) -> None:
        line = itk_message_line(text)
        if line in self.seen or any(handled in line for handled in HANDLED_ITK_WARNINGS):
            return
        self.seen.add(line)
        logger.warning("%s", line)

    def DisplayGenericOutputText(self, text: str) -> None:
        logger.debug("%s", itk_message_line(text))

    def DisplayDebugText(self, text: str) -> None:
        logger.debug("%s", itk_message_line(text))


@functools.cache
def _itk_logger() -> _ItkToLogging:
    """The one installed logger; ITK's own is put back at exit, before Python objects go away."""
    installed = _ItkToLogging()
    previous = installed.SetAsGlobalITKLogger()
    atexit.register(previous.SetAsGlobalITKLogger)
    return installed


def capture_itk_messages() -> None:
    """Route ITK's messages to :mod:`logging` from now on; each command reports each warning once."""
    _itk_logger().seen.clear()
