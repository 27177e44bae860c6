"""The first-use dependency step: what is pinned, what is refused, and how it fails outside Slicer."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from CoNeSCommon import dependencies


def test_torch_is_found_from_its_metadata() -> None:
    assert dependencies.torchInstalled()


@pytest.mark.parametrize("version", ["2.2.0", "2.13.0+cpu", "2.5.1+cu121"])
def test_a_recent_torch_is_accepted(version: str) -> None:
    dependencies.checkTorchVersion(version)


def test_an_old_torch_is_refused_with_what_to_do() -> None:
    with pytest.raises(dependencies.DependencyError, match=r"needs PyTorch >=2\.2 but 2\.1\.2 is installed; uninstall"):
        dependencies.checkTorchVersion("2.1.2")


def test_constraints_pin_the_packages_slicer_owns_to_their_installed_versions(tmp_path: Path) -> None:
    lines = dependencies.writeConstraints(tmp_path).read_text(encoding="utf-8").splitlines()
    pins = {line.split("==")[0]: line.split("==")[1].split()[0] for line in lines}
    assert pins == {
        name: importlib.metadata.version(name) for name in ("torch", "numpy", "SimpleITK", "scipy", "pydicom")
    }
    assert all("  # " in line for line in lines), "every pin says why"


def test_outside_slicer_the_missing_pytorch_extension_is_named(tmp_path: Path) -> None:
    with pytest.raises(dependencies.DependencyError, match="install 'PyTorch' from the Extensions Manager"):
        dependencies.ensureDependencies(tmp_path)
