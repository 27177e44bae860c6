"""What a real Slicer would show that no slicer-core test reaches: path fields, the version check, labels.

These read the module sources and the .ui files (no Qt here), and run the parts that are plain Python.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from CoNeSCommon.compatibility import MINIMUM_SLICER_VERSION, unsupportedSlicerMessage

from cones.sequences import Sequence

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("CoNeSSynthesis", "CoNeSTraining")
TEXT_PATHS = {
    "CoNeSSynthesis": ("segmentationModelPath",),
    "CoNeSTraining": ("dataDirectory", "outputDirectory", "initialModel"),
}
"""The path parameters that are empty until chosen (optional ones, and folders that have no sensible default)."""


def uiWidgets(module: str) -> list[ElementTree.Element]:
    root = ElementTree.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()
    return list(root.iter("widget"))


def propertyText(widget: ElementTree.Element, name: str) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            return "".join(prop.itertext()).strip()
    return None


def test_no_path_field_combines_folder_mode_with_name_filters() -> None:
    """CTK turns name filters into a validator on the whole text: a folder could be neither typed nor browsed."""
    fields = [widget for module in MODULES for widget in uiWidgets(module) if widget.get("class") == "ctkPathLineEdit"]
    assert fields
    for field in fields:
        filters = propertyText(field, "filters") or ""
        assert not ("Dirs" in filters and propertyText(field, "nameFilters")), field.get("name")


def parameterAssignments(module: str) -> dict[str, ast.AnnAssign]:
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.endswith("ParameterNode"))
    return {node.target.id: node for node in wrapper.body if isinstance(node, ast.AnnAssign)}


@pytest.mark.parametrize(("module", "name"), [(module, name) for module, names in TEXT_PATHS.items() for name in names])
def test_paths_are_empty_text_until_chosen_and_can_be_cleared(module: str, name: str) -> None:
    """A ctkPathLineEdit never accepts empty text, and an unset Path parameter shows as "."."""
    field = parameterAssignments(module)[name]
    assert ast.unparse(field.annotation) == "str"
    assert ast.literal_eval(field.value) == ""
    bound = [widget for widget in uiWidgets(module) if propertyText(widget, "SlicerParameterName") == name]
    assert len(bound) == 1
    assert bound[0].get("class") == "QLineEdit"
    assert propertyText(bound[0], "clearButtonEnabled") == "true"


@pytest.mark.parametrize("module", MODULES)
def test_every_button_is_connected(module: str) -> None:
    """A button of the .ui that the module never connects would do nothing when clicked."""
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    buttons = [
        widget.get("name") for widget in uiWidgets(module) if widget.get("class") in ("QPushButton", "QToolButton")
    ]
    assert len(buttons) >= 2
    for button in buttons:
        assert re.search(rf"self\.ui\.{button}\.connect\(", source), button


def test_no_path_parameter_has_the_dot_default() -> None:
    """``Path`` parameters without a default read as ``Path()``: the panel would show "." until one is chosen."""
    for module in MODULES:
        for name, field in parameterAssignments(module).items():
            if ast.unparse(field.annotation) == "Path":
                assert field.value is not None, f"{module}.{name}"


def test_the_segmentation_model_can_be_browsed_as_a_file_and_as_a_folder() -> None:
    source = (ROOT / "CoNeSSynthesis" / "CoNeSSynthesis.py").read_text(encoding="utf-8")
    names = {widget.get("name") for widget in uiWidgets("CoNeSSynthesis")}
    for button in ("segmentationModelFileButton", "segmentationModelFolderButton"):
        assert button in names
        assert re.search(rf"self\.ui\.{button}\.connect\(", source), button


@pytest.mark.parametrize(
    ("version", "supported"), [((5, 8), False), ((5, 10), False), ((5, 12), True), ((5, 13), True), ((6, 0), True)]
)
def test_unsupportedSlicerMessage(version: tuple[int, int], supported: bool) -> None:
    message = unsupportedSlicerMessage(version)
    assert (message is None) is supported
    if not supported:
        assert "5.12 or later" in message and ".".join(map(str, version)) in message


def test_the_version_check_runs_before_anything_else_of_the_shared_package() -> None:
    body = ast.parse((ROOT / "CoNeSSynthesis" / "CoNeSCommon" / "__init__.py").read_text(encoding="utf-8")).body
    statements = [node for node in body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert ast.unparse(statements[0]) == "from CoNeSCommon.compatibility import checkSlicerVersion"
    assert ast.unparse(statements[1]) == "checkSlicerVersion()"


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "CoNeSSynthesis" / "CoNeSCommon" / "__init__.py",
        ROOT / "CoNeSSynthesis" / "CoNeSCommon" / "compatibility.py",
        ROOT / "CoNeSSynthesis" / "CoNeSCommon" / "location.py",
        ROOT / "CoNeSSynthesis" / "CoNeSSynthesisLib" / "__init__.py",
        ROOT / "CoNeSTraining" / "CoNeSTrainingLib" / "__init__.py",
        ROOT / "CoNeSSynthesis" / "CoNeSSynthesis.py",
        ROOT / "CoNeSTraining" / "CoNeSTraining.py",
    ],
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_what_runs_before_the_version_check_parses_as_python_3_9(path: Path) -> None:
    """Slicer 5.8 has Python 3.9: these files must compile there so that the check can speak."""
    ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))


def test_every_module_file_imports_the_shared_package_before_the_core() -> None:
    for module in MODULES:
        tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
        first = next(node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module.startswith("Co"))
        assert first.module.split(".")[0] == "CoNeSCommon", module


def test_cmake_and_readme_state_the_minimum_version() -> None:
    required = ".".join(map(str, MINIMUM_SLICER_VERSION))
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f'set(CoNeS_MINIMUM_SLICER_VERSION "{required}")' in cmake
    assert 'if(Slicer_VERSION VERSION_LESS "${CoNeS_MINIMUM_SLICER_VERSION}")' in cmake
    assert f"Slicer {required}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_sequences_have_labels_for_slicer_combo_boxes() -> None:
    """Slicer's enum connector shows ``label(member)`` when the enum has one, else the member name ("T1CE")."""
    labels = [Sequence.label(sequence) for sequence in Sequence]
    assert labels == ["T1", "T1ce", "T2", "FLAIR"]


def test_the_panel_reads_the_model_card_without_importing_torch() -> None:
    """What Slicer's own process runs when the panel shows a model: the module libraries and the card."""
    from CoNeSCommon.location import bundledModelPath

    if not bundledModelPath().is_file():
        pytest.skip("the bundled model is not in this checkout")
    script = (
        "import sys\n"
        f"sys.path[:0] = {[str(ROOT / module) for module in MODULES]!r}\n"
        "from CoNeSSynthesisLib.synthesis import readModelCard\n"
        "import CoNeSTrainingLib.training\n"
        "from CoNeSCommon.location import bundledModelPath\n"
        "card = readModelCard(bundledModelPath())\n"
        "print(' '.join(sequence.value for sequence in card.sources), 'torch' in sys.modules)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert result.stdout.split() == ["t1", "t2", "flair", "False"]


def test_every_resource_cmake_installs_is_in_the_checkout() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    resources = re.search(r"^\s*RESOURCES (.+)$", cmake, re.MULTILINE)
    assert resources, "CMakeLists.txt names no RESOURCES"
    names = resources.group(1).split()
    assert "Resources/Models/cones-seg-brats.pt" in names
    assert [name for name in names if not (ROOT / name).is_file()] == []
