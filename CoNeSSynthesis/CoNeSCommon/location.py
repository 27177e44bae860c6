"""Where the ``cones`` core package and the bundled models live, installed or in a source checkout.

An installed extension puts ``cones/`` beside the scripted modules and the bundled model in the
modules' ``Resources/Models``. A source checkout loaded through the Extension Wizard has both one
folder above the module folder, at the repository root, which Slicer does not put on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = [
    "BUNDLED_MODEL_NAME",
    "BUNDLED_SEGMENTATION_MODEL_NAME",
    "MODULE_DIRECTORY",
    "bundledModelPath",
    "bundledSegmentationModelPath",
    "conesParentDirectory",
    "makeConesImportable",
]

MODULE_DIRECTORY = Path(__file__).resolve().parent.parent
"""The folder holding the module files (``CoNeSSynthesis/`` in a checkout, ``qt-scripted-modules/`` installed)."""

BUNDLED_MODEL_NAME = "cones-lite-t1ce.pt"
BUNDLED_SEGMENTATION_MODEL_NAME = "cones-seg-brats.pt"


def _searchedFolders(moduleDirectory: Path) -> tuple[Path, Path]:
    """Installed layout first, then the source checkout's repository root."""
    return moduleDirectory, moduleDirectory.parent


def conesParentDirectory(moduleDirectory: Path = MODULE_DIRECTORY) -> Path:
    """The folder that holds the ``cones`` package.

    Raises:
        ImportError: neither layout has it; the message names both places looked at.
    """
    folders = _searchedFolders(moduleDirectory)
    for folder in folders:
        if (folder / "cones" / "__init__.py").is_file():
            return folder
    raise ImportError(
        f"the CoNeS core package 'cones' is neither in {folders[0]} (installed extension) nor in {folders[1]} "
        "(source checkout); reinstall the CoNeS extension"
    )


def makeConesImportable(moduleDirectory: Path = MODULE_DIRECTORY) -> None:
    """Append the folder holding ``cones`` to ``sys.path`` unless ``cones`` is importable already.

    Appending (not prepending) keeps an installed ``cones`` (a pip install, or the extension's own copy
    beside the modules) in charge.
    """
    if importlib.util.find_spec("cones") is None:
        sys.path.append(str(conesParentDirectory(moduleDirectory)))


def bundledModelPath(moduleDirectory: Path = MODULE_DIRECTORY, name: str = BUNDLED_MODEL_NAME) -> Path:
    """The model shipped with the extension: the first layout that has it, else where an installed one would be.

    Returning the installed location even when the file is missing gives the module a default that
    the user sees and a "model file not found" message that names the expected place.
    """
    candidates = [folder / "Resources" / "Models" / name for folder in _searchedFolders(moduleDirectory)]
    return next((path for path in candidates if path.is_file()), candidates[0])


def bundledSegmentationModelPath(moduleDirectory: Path = MODULE_DIRECTORY) -> Path:
    """The tumour segmentation model shipped with the extension ("Segment after synthesis" uses it by default)."""
    return bundledModelPath(moduleDirectory, BUNDLED_SEGMENTATION_MODEL_NAME)
