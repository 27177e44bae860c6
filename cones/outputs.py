"""Writing outputs without ever losing data: checked before the work, published atomically, never over an input.

A synthesis can take minutes; a refusal found only when its result is written wastes them, and a
careless write can destroy the scan it was computed from. Every command that writes a file goes
through this module:

* :func:`check_output_file` runs *before* any work: the output is not a folder, has an ending the
  writer understands, is none of the files the command reads (compared as files, so symbolic links,
  ``./x`` against ``x`` and hard links are caught), does not exist unless replacing it was asked
  for, and its folder can be written.
* :func:`write_atomically` writes into a hidden file beside the output and publishes it in one
  step. Without ``overwrite`` the publishing step is a hard link, which fails when a file appeared
  at the output meanwhile (a second run writing the same name), so it is never replaced silently.
  The hidden file is named before anything is created, so an interrupt at any moment leaves nothing
  behind, and it is created like any other file (mode from the umask, not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = [
    "OVERWRITE_FLAG",
    "OutputExistsError",
    "check_output_file",
    "check_output_folder",
    "same_file",
    "write_atomically",
]

OVERWRITE_FLAG = "--overwrite"
"""The option every command that writes files uses to allow replacing an existing output."""


class OutputExistsError(FileExistsError):
    """An output file exists and replacing it was not asked for; the message names the file and the option."""

    def __init__(self, path: Path, appeared: bool = False) -> None:
        when = " (it appeared while this command ran)" if appeared else ""
        super().__init__(f"{str(path)!r} already exists{when}; pass {OVERWRITE_FLAG} to replace it")
        self.path = path


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: the same inode when both exist, else the same resolved path."""
    first, second = Path(first), Path(second)
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_output_file(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    suffixes: Iterable[str] | None = None,
    reads: Mapping[str, str | os.PathLike[str] | None] | None = None,
) -> Path:
    """Refuse an output file that may not or cannot be written, before any work is done.

    Args:
        path: the file to write.
        overwrite: an existing file may be replaced.
        suffixes: the endings the writer understands (lower case, e.g. ``.nii.gz``); None accepts any.
        reads: what the command reads, by the name a person knows it by (``{"the T1 input": path}``);
            the output may be none of them, even with ``overwrite``. None values are skipped.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the output is a folder, has an unknown ending, is one of ``reads``, or its folder
            cannot be written (a read-only folder, a path through a regular file); the message names
            the file and the problem.
        OutputExistsError: the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"the output {str(path)!r} is a folder; give a file name")
    suffixes = tuple(suffixes) if suffixes is not None else None
    if suffixes is not None and not path.name.lower().endswith(suffixes):
        raise ValueError(f"cannot write {str(path)!r}: the output must end with one of {', '.join(suffixes)}")
    _refuse_reads(path, reads, "file")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    _check_writable_folder(path)
    return path


def check_output_folder(
    path: str | os.PathLike[str], *, reads: Mapping[str, str | os.PathLike[str] | None] | None = None
) -> Path:
    """Refuse an output folder (a training run's) that is a file, is one of ``reads``, or cannot be written.

    Raises:
        ValueError: naming the folder and the problem.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the output folder {str(path)!r} is a file")
    _refuse_reads(path, reads, "folder")
    _check_writable_folder(path / "probe")
    return path


def _refuse_reads(path: Path, reads: Mapping[str, str | os.PathLike[str] | None] | None, kind: str) -> None:
    for name, read in (reads or {}).items():
        if read is not None and same_file(path, read):
            raise ValueError(
                f"the output {str(path)!r} is {name} ({str(read)!r}); an output never replaces what it is made "
                f"from, choose another {kind}"
            )


def _check_writable_folder(path: Path) -> None:
    """Create and remove a nameless file where ``path`` will be written (or where its folder will be made).

    Trying is the only check that holds for read-only mounts, ACLs and root alike; ``os.access``
    says yes to root on a read-only folder.
    """
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: {str(folder)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror or error}") from None


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, overwrite: bool, suffix: str | None = None
) -> Path:
    """Write a file through ``write(hidden_path)`` and publish it at ``path`` in one step.

    Args:
        path: the destination; missing parent folders are created.
        write: writes the whole file at the path it is given (which ends with ``suffix``, so writers
            that choose the format by the ending, as SimpleITK does, write the right one).
        overwrite: replace an existing file; otherwise a file found at ``path`` when publishing,
            even one that appeared while ``write`` ran, is kept and :class:`OutputExistsError` raised.
        suffix: the ending of the hidden file (default: ``path``'s last suffix).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: see ``overwrite``; nothing is left behind.
        OSError: writing failed; nothing is left behind.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    hidden = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(hidden)
        _flush_to_disk(hidden)
        _publish(hidden, path, overwrite)
    finally:
        hidden.unlink(missing_ok=True)
    return path


def _flush_to_disk(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


def _publish(hidden: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(hidden, path)
        return
    try:
        os.link(hidden, path)
    except FileExistsError:
        raise OutputExistsError(path, appeared=True) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        _publish_without_links(hidden, path)


def _publish_without_links(hidden: Path, path: Path) -> None:
    """Claim ``path`` exclusively, then move the finished file onto the claim (file systems without hard links)."""
    try:
        with path.open("xb"):
            pass
    except FileExistsError:
        raise OutputExistsError(path, appeared=True) from None
    os.replace(hidden, path)
