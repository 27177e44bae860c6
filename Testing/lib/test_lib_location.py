"""Finding the core package and the bundled model, in an installed extension and in a source checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from CoNeSCommon import location


def makeFile(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_the_installed_layout_has_cones_beside_the_modules(tmp_path: Path) -> None:
    modules = tmp_path / "lib" / "Slicer-5.12" / "qt-scripted-modules"
    makeFile(modules / "cones" / "__init__.py")
    makeFile(tmp_path / "lib" / "Slicer-5.12" / "cones" / "__init__.py")
    assert location.conesParentDirectory(modules) == modules


def test_a_source_checkout_has_cones_at_the_repository_root(tmp_path: Path) -> None:
    makeFile(tmp_path / "cones" / "__init__.py")
    assert location.conesParentDirectory(tmp_path / "CoNeSSynthesis") == tmp_path


def test_without_cones_the_error_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=f"neither in {tmp_path / 'CoNeSSynthesis'} .* nor in {tmp_path} "):
        location.conesParentDirectory(tmp_path / "CoNeSSynthesis")


def test_this_checkout_is_found() -> None:
    assert (location.conesParentDirectory() / "cones" / "cli.py").is_file()


def test_the_bundled_model_is_looked_for_installed_then_in_the_checkout(tmp_path: Path) -> None:
    module = tmp_path / "CoNeSSynthesis"
    installed = module / "Resources" / "Models" / location.BUNDLED_MODEL_NAME
    assert location.bundledModelPath(module) == installed, "missing everywhere: where an installed one would be"
    checkout = makeFile(tmp_path / "Resources" / "Models" / location.BUNDLED_MODEL_NAME)
    assert location.bundledModelPath(module) == checkout
    makeFile(installed)
    assert location.bundledModelPath(module) == installed


def test_the_bundled_segmentation_model_is_looked_for_the_same_way(tmp_path: Path) -> None:
    module = tmp_path / "CoNeSSynthesis"
    installed = module / "Resources" / "Models" / location.BUNDLED_SEGMENTATION_MODEL_NAME
    assert location.bundledSegmentationModelPath(module) == installed
    checkout = makeFile(tmp_path / "Resources" / "Models" / location.BUNDLED_SEGMENTATION_MODEL_NAME)
    assert location.bundledSegmentationModelPath(module) == checkout
    assert location.bundledModelPath(module) != checkout, "the synthesis model keeps its own name"
