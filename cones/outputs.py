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
* :func:`published_together` makes the outputs of one command one publication: inside it every
  :func:`write_atomically` only stages its hidden file, and all are published when the block
  ends, or none (:class:`Publication`).
* :func:`check_name_length` refuses a name the file system cannot hold (with the room its
  hidden file needs) before the work; :func:`check_output_file` and :func:`check_output_folder` call it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OVERWRITE_FLAG",
    "OutputExistsError",
    "Publication",
    "check_name_length",
    "check_output_file",
    "check_output_folder",
    "forget_log_entries_after",
    "published_together",
    "same_file",
    "write_atomically",
]

OVERWRITE_FLAG = "--overwrite"
"""The option every command that writes files uses to allow replacing an existing output."""
_HIDDEN_ID_LENGTH = 12
"""Hex digits of the random part of a hidden file's name (``.<name>.<id>.partial<suffix>``)."""
_HIDDEN_NAME_EXTRA = len(".") + len(".") + _HIDDEN_ID_LENGTH + len(".previous")
"""How much longer than the output's own name its longest hidden name is, without the suffix."""


class OutputExistsError(FileExistsError):
    """An output file exists and replacing it was not asked for; the message names the file and the option."""

    def __init__(self, path: Path, appeared: bool = False) -> None:
        when = " (it appeared while this command ran)" if appeared else ""
        super().__init__(f"{str(path)!r} already exists{when}; pass {OVERWRITE_FLAG} to replace it")
        self.path = path


def forget_log_entries_after(path: Path, iteration: int) -> None:
    """Drop the lines of a training run's ``log.jsonl`` written after ``iteration``, its last checkpoint.

    A resumed run writes those iterations anew; without this its log would hold them twice, with
    different losses. A missing log is left missing.
    """
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if json.loads(line)["iteration"] <= iteration]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


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
    check_name_length(path)
    if path.is_dir():
        raise ValueError(f"the output {str(path)!r} is a folder; give a file name")
    suffixes = tuple(suffixes) if suffixes is not None else None
    if suffixes is not None and not path.name.lower().endswith(suffixes):
        raise ValueError(f"cannot write {str(path)!r}: the output must end with one of {', '.join(suffixes)}")
    _refuse_reads(path, reads, "file")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    _check_writable_folder(path, path.parent)
    return path


def check_output_folder(
    path: str | os.PathLike[str], *, reads: Mapping[str, str | os.PathLike[str] | None] | None = None
) -> Path:
    """Refuse an output folder (a training run's) that is a file, is one of ``reads``, or cannot be written.

    Raises:
        ValueError: naming the folder and the problem.
    """
    path = Path(path)
    check_name_length(path, hidden=False)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the output folder {str(path)!r} is a file")
    _refuse_reads(path, reads, "folder")
    _check_writable_folder(path, path)
    return path


def check_name_length(path: str | os.PathLike[str], *, hidden: bool = True) -> None:
    """Refuse an output whose name (or a folder name on its way) the file system cannot hold, before any work.

    Found only when writing, such a name fails after the work with a bare ``[Errno 36]``. The
    limit is the file system's (``PC_NAME_MAX``, 255 bytes on most), read where the output goes.

    Args:
        path: the output file or folder.
        hidden: the output is written through a hidden name (:func:`write_atomically`), which
            is longer by an id, a role and the suffix; that one must fit too.

    Raises:
        ValueError: naming the output, the length of its name and the limit.
    """
    path = Path(path)
    existing = _nearest_existing(path.parent)
    limit, path_limit = _name_limits(existing)
    for name in path.relative_to(existing).parts:
        length = len(os.fsencode(name))
        extra = _HIDDEN_NAME_EXTRA + len("".join(Path(name).suffixes[-2:])) if hidden and name == path.name else 0
        if length + extra > limit:
            room = (
                f", and the hidden file it is written through needs {extra} more" if extra and length <= limit else ""
            )
            raise ValueError(
                f"cannot write {str(path)!r}: the name {_shortened(name)!r} is too long ({length} bytes; the file "
                f"system allows {limit}{room}); choose a shorter name"
            )
    length = len(os.fsencode(path.absolute())) + (_HIDDEN_NAME_EXTRA + len(".nii.gz") if hidden else 0)
    if length >= path_limit:
        raise ValueError(
            f"cannot write {str(path)!r}: the path is too long (the file system allows {path_limit} bytes)"
        )


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest parent that exists (a name too long for the file system exists as little)."""
    while folder != folder.parent:
        with contextlib.suppress(OSError):
            if folder.exists():
                return folder
        folder = folder.parent
    return folder


def _name_limits(folder: Path) -> tuple[int, int]:
    """(longest name, longest path) in bytes on ``folder``'s file system; POSIX's usual values where unknown."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _shortened(name: str) -> str:
    """A long name as its start and end, so that the one error line stays readable."""
    return name if len(name) <= 40 else f"{name[:16]}...{name[-16:]}"


def _refuse_reads(path: Path, reads: Mapping[str, str | os.PathLike[str] | None] | None, kind: str) -> None:
    for name, read in (reads or {}).items():
        if read is not None and same_file(path, read):
            raise ValueError(
                f"the output {str(path)!r} is {name} ({str(read)!r}); an output never replaces what it is made "
                f"from, choose another {kind}"
            )


def _check_writable_folder(path: Path, folder: Path) -> None:
    """Create and remove a nameless file in ``folder``, or in its nearest existing parent if it is still to be made.

    Trying is the only check that holds for read-only mounts, ACLs and root alike; ``os.access``
    says yes to root on a read-only folder. Messages name ``path``, the output as the user gave it.
    """
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

    Inside :func:`published_together` the file is only staged, and published with the command's
    other outputs when the block ends.

    Args:
        path: the destination; missing parent folders are created (and removed again when nothing is published).
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
    with published_together() as publication:
        hidden = publication.hidden_path(path, path.suffix if suffix is None else suffix)
        write(hidden)
        _flush_to_disk(hidden)
        publication.stage(hidden, path, overwrite=overwrite)
    return path


def _flush_to_disk(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


@dataclass(frozen=True)
class _Staged:
    """A finished hidden file or folder and where it goes."""

    hidden: Path
    path: Path
    overwrite: bool
    replaceable: Callable[[Path], None] | None


@dataclass(frozen=True)
class _Published:
    """A published output and what it replaced, until the whole publication is known to have succeeded."""

    path: Path
    previous: Path | None
    was_empty_folder: bool

    def undo(self) -> None:
        _remove(self.path)
        if self.previous is not None:
            os.rename(self.previous, self.path)
        elif self.was_empty_folder:
            self.path.mkdir()

    def commit(self) -> None:
        if self.previous is not None:
            _remove(self.previous)


class Publication:
    """The outputs of one command: each written into a hidden file or folder, then all published at once.

    A command that writes a synthesized volume, its sidecar, an uncertainty map and a brain mask
    must not leave some of them when it is interrupted or fails half-way: a map without its
    volume, or a volume without the sidecar that says it is synthetic, passes for something it is
    not. Outputs are staged while the work runs and published (renamed into place) only when all
    are written; a failure or interrupt while publishing puts back what was already published,
    and the earlier outputs it replaced. Publishing holds Ctrl-C until it has finished or been
    rolled back, so no interrupt can leave half of it. Use it through :func:`published_together`.
    """

    def __init__(self) -> None:
        self._hidden: list[Path] = []
        self._made_folders: list[Path] = []
        self._staged: list[_Staged] = []

    def hidden_path(self, path: Path, suffix: str = "") -> Path:
        """A new hidden name beside ``path``, to write into; missing folders on the way are made.

        The name is recorded before anything is created, so an interrupt at any moment leaves nothing behind.
        """
        hidden = _hidden_name(path, "partial", suffix)
        self._hidden.append(hidden)
        self._made_folders += _make_folders(path.parent)
        return hidden

    def stage(
        self, hidden: Path, path: Path, *, overwrite: bool, replaceable: Callable[[Path], None] | None = None
    ) -> None:
        """Publish the finished ``hidden`` file or folder at ``path`` with the others.

        Args:
            hidden: a name from :meth:`hidden_path`, written completely.
            path: where it goes.
            overwrite: replace what is at ``path`` then; otherwise :class:`OutputExistsError`.
            replaceable: called with ``path`` before replacing it; raises (``ValueError``) to keep it.
        """
        self._staged.append(_Staged(hidden, Path(path), overwrite, replaceable))

    def publish(self) -> None:
        """Move every staged output into place, or, on any failure or Ctrl-C, none.

        Raises:
            OutputExistsError: an output appeared meanwhile and ``overwrite`` was not given.
            KeyboardInterrupt: Ctrl-C while publishing; everything is as it was before.
            OSError, ValueError: publishing failed, or ``replaceable`` refused; everything is as it was before.
        """
        published: list[_Published] = []
        with _HeldInterrupts() as held:
            try:
                for staged in self._staged:
                    published.append(_publish(staged))
                held.raise_if_interrupted()
            except BaseException:
                for done in reversed(published):
                    done.undo()
                self.discard()
                raise
            for done in published:
                done.commit()
            self._remove_hidden()

    def discard(self) -> None:
        """Remove every hidden file and folder, and the folders made for them (nothing was published)."""
        self._remove_hidden()
        for folder in reversed(self._made_folders):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _remove_hidden(self) -> None:
        for hidden in self._hidden:
            _remove(hidden)


_CURRENT: ContextVar[Publication | None] = ContextVar("cones_publication", default=None)


@contextlib.contextmanager
def published_together() -> Iterator[Publication]:
    """Publish every output written inside the block (:func:`write_atomically`) together when it ends.

    When the block raises (a refusal, a failure, Ctrl-C) nothing it wrote is published and every
    hidden file is removed. Nested blocks join the outermost one.
    """
    current = _CURRENT.get()
    if current is not None:
        yield current
        return
    publication = Publication()
    token = _CURRENT.set(publication)
    try:
        yield publication
    except BaseException:
        publication.discard()
        raise
    finally:
        _CURRENT.reset(token)
    publication.publish()


class _HeldInterrupts:
    """Hold Ctrl-C (SIGINT) while a block runs; :meth:`raise_if_interrupted` turns a held one into KeyboardInterrupt.

    Only the main thread receives signals; elsewhere (a Slicer worker thread) nothing is held.
    """

    def __init__(self) -> None:
        self._interrupted = False
        self._holding = False
        self._previous: Any = None

    def __enter__(self) -> _HeldInterrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._hold)
            self._holding = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._holding:
            # None: the handler was not set from Python; the default is what it was.
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)

    def _hold(self, signum: int, frame: object) -> None:
        self._interrupted = True

    def raise_if_interrupted(self) -> None:
        if self._interrupted:
            raise KeyboardInterrupt


def _hidden_name(path: Path, role: str, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:_HIDDEN_ID_LENGTH]}.{role}{suffix}")


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns the ones made here, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    made = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        made.append(folder)
    return made


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _publish(staged: _Staged) -> _Published:
    """Put one staged output in place; what it replaces is kept aside, to delete once all are published."""
    path, hidden = staged.path, staged.hidden
    was_empty_folder = hidden.is_dir() and path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    if was_empty_folder:
        path.rmdir()  # an empty folder is taken over by the new one
    try:
        if not os.path.lexists(path):
            if hidden.is_dir():
                os.rename(hidden, path)
            else:
                _publish_new_file(hidden, path)
            return _Published(path, None, was_empty_folder)
    except BaseException:
        if was_empty_folder and not os.path.lexists(path):
            path.mkdir()
        raise
    if not staged.overwrite:
        raise OutputExistsError(path, appeared=True)
    if staged.replaceable is not None:
        staged.replaceable(path)
    previous = _hidden_name(path, "previous")
    _replace_keeping(hidden, path, previous)
    return _Published(path, previous, False)


def _replace_keeping(hidden: Path, path: Path, previous: Path) -> None:
    """Replace ``path`` by ``hidden`` and keep what it was at ``previous``.

    A file is kept through a hard link and then replaced in one step, so a reader never finds
    ``path`` missing; a folder (or a file system without hard links) is moved aside first.
    """
    try:
        os.link(path, previous, follow_symlinks=False)
    except OSError:
        os.rename(path, previous)
        try:
            os.rename(hidden, path)
        except BaseException:
            os.rename(previous, path)
            raise
        return
    try:
        os.replace(hidden, path)
    except BaseException:
        previous.unlink()
        raise


def _publish_new_file(hidden: Path, path: Path) -> None:
    """Hard-link ``hidden`` to ``path``, which fails if a file appeared there meanwhile (it is kept)."""
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
