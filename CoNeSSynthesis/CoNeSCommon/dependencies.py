"""Installing what the ``cones`` process needs into Slicer's Python, on first use and after asking.

Nothing is installed at import or at startup: the modules call :func:`ensureDependencies` from the
first Apply (or Start). torch is never pip-installed here: Slicer's PyTorch extension
(``PyTorchUtils``) picks the build that matches the GPU driver, or the CPU build. The other
requirements then go through ``slicer.packaging.pip_ensure`` (one confirmation dialog), with the
packages Slicer already owns pinned to their installed versions so pip can never replace them.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path

from CoNeSCommon.location import MODULE_DIRECTORY

__all__ = [
    "PINNED_PACKAGES",
    "REQUIREMENTS_PATH",
    "TORCH_REQUIREMENT",
    "DependencyError",
    "checkTorchVersion",
    "ensureDependencies",
    "torchInstalled",
    "torchVersion",
    "writeConstraints",
]

TORCH_REQUIREMENT = ">=2.2"
"""The oldest torch the core supports (as ``pyproject.toml`` declares)."""

REQUIREMENTS_PATH = MODULE_DIRECTORY / "Resources" / "requirements.txt"

PINNED_PACKAGES: Mapping[str, str] = {
    "torch": "installed by PyTorchUtils with the CUDA or CPU build that fits this computer; a PyPI wheel would "
    "replace it",
    "numpy": "bundled with Slicer, whose compiled modules are built against this version",
    "SimpleITK": "bundled with Slicer and loaded by its core modules",
    "scipy": "bundled with Slicer, compiled against its numpy; scikit-image requires it and must not upgrade it",
    "pydicom": "bundled with Slicer (3.0.2 in 5.12) for its DICOM module; CoNeS writes DICOM series with it",
}
"""Packages pinned to their installed version while installing the requirements, each with the reason."""

_INSTALL_PYTORCH_EXTENSION = (
    "CoNeS needs the PyTorch extension: install 'PyTorch' from the Extensions Manager, restart Slicer and try again"
)


class DependencyError(RuntimeError):
    """A dependency is missing and could not (or may not) be installed; the message says what to do."""


def _installedVersion(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torchVersion() -> str | None:
    """The installed torch's version from its package metadata, or ``None``; torch is not imported.

    Importing a broken install can lock its files, and then it cannot even be uninstalled; and torch
    runs only in the ``cones`` process, never in Slicer's.
    """
    return _installedVersion("torch")


def torchInstalled() -> bool:
    """Whether torch's package metadata is present (see :func:`torchVersion`)."""
    return torchVersion() is not None


def checkTorchVersion(version: str) -> None:
    """Refuse a torch older than :data:`TORCH_REQUIREMENT`.

    Raises:
        DependencyError: naming the version found and how to update it.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    if Version(version) not in SpecifierSet(TORCH_REQUIREMENT):
        raise DependencyError(
            f"CoNeS needs PyTorch {TORCH_REQUIREMENT} but {version} is installed; uninstall it in the PyTorch Utils "
            "module, restart Slicer and try again"
        )


def writeConstraints(folder: Path) -> Path:
    """A pip constraints file pinning every installed :data:`PINNED_PACKAGES` entry, with its reason as a comment."""
    versions = {name: _installedVersion(name) for name in PINNED_PACKAGES}
    lines = [f"{name}=={version}  # {PINNED_PACKAGES[name]}" for name, version in versions.items() if version]
    path = folder / "cones-constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ensureDependencies(
    workDirectory: Path,
    requirementsPath: Path = REQUIREMENTS_PATH,
    *,
    extraRequirements: SequenceOf[str] = (),
    installWithoutAsking: bool = False,
) -> None:
    """Make sure torch and the module's requirements are installed, asking before installing anything.

    Runs inside Slicer only (it needs ``PyTorchUtils`` and ``slicer.packaging``); quick once all is
    installed. In testing mode (``--testing``, as ctest runs the self-tests) ``pip_ensure`` installs
    nothing at all unless told to, and PyTorchUtils installs torch without its prompt; the self-tests
    therefore pass ``installWithoutAsking``, since a clean Slicer has none of the requirements.

    Args:
        workDirectory: where the constraints file is written when something is to be installed.
        requirementsPath: the module's ``requirements.txt`` (it never lists torch).
        extraRequirements: requirements of one feature (e.g. nilearn for the sample case), asked for in
            the same dialog as any missing requirement of the file.
        installWithoutAsking: install the requirements without a dialog, in testing mode too (self-tests).

    Raises:
        DependencyError: the PyTorch extension is missing, the user declined installing torch, or the
            installed torch is too old.
        RuntimeError: the user declined installing the other requirements (from ``pip_ensure``).
    """
    try:
        import PyTorchUtils
    except ImportError:
        raise DependencyError(_INSTALL_PYTORCH_EXTENSION) from None
    if not torchInstalled():
        installed = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT
        )
        if installed is None:
            raise DependencyError("CoNeS needs PyTorch, and its installation was declined")
    checkTorchVersion(importlib.metadata.version("torch"))

    import slicer.packaging

    requirements = [*slicer.packaging.load_requirements(requirementsPath), *extraRequirements]
    if not slicer.packaging.pip_check(requirements):
        slicer.packaging.pip_ensure(
            requirements,
            constraints=writeConstraints(workDirectory),
            requester="CoNeS",
            prompt_install=not installWithoutAsking,
            skip_in_testing=not installWithoutAsking,
        )
