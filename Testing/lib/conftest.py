"""Fixtures of the Slicer-side tests: the module folders on ``sys.path``, a real MRML scene, tiny models.

The scene is the slicer-core wheel's real MRML (no Qt, no Slicer application); the synthesis model
is a random-init generator of a few thousand weights, so every synthesis runs in about a second, and
the segmentation model a random-init two-level U-Net.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = ROOT / "CoNeSSynthesis" / "Resources" / "batch_synthesize.py"
MODULE_FOLDERS = (ROOT / "CoNeSSynthesis", ROOT / "CoNeSTraining")
for folder in MODULE_FOLDERS:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def scene():
    """An empty MRML scene."""
    slicer = pytest.importorskip("slicer")
    return slicer.vtkMRMLScene()


@pytest.fixture
def case(scene):
    """The four sequences of a generated case, on an oblique left-handed grid, keyed by sequence."""
    from CoNeSSynthesisLib import testing

    return testing.addSyntheticCase(scene, "CASE-001")


@pytest.fixture(scope="session")
def tinyModel(tmp_path_factory) -> Path:
    """A random-init T1 + T2 + FLAIR -> T1ce model file."""
    pytest.importorskip("slicer")
    from CoNeSSynthesisLib import testing

    return testing.writeTinyModel(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def tinySegmentationModel(tmp_path_factory) -> Path:
    """A random-init built-in segmentation model that needs T1, T1ce, T2 and FLAIR."""
    pytest.importorskip("slicer")
    from CoNeSSynthesisLib import testing

    return testing.writeTinySegmentationModel(tmp_path_factory.mktemp("segmentation") / "last.pt")


@pytest.fixture(scope="session")
def batch():
    """The headless batch's work (:mod:`CoNeSSynthesisLib.batch`), to call its ``main`` in this process."""
    pytest.importorskip("slicer")
    from CoNeSSynthesisLib import batch

    return batch


@pytest.fixture(scope="session")
def batchScript():
    """The headless batch's entry point (``Resources/batch_synthesize.py``) as a module, to call its ``run``."""
    spec = importlib.util.spec_from_file_location("batch_synthesize", BATCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
