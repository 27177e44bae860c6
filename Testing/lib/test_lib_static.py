"""Static checks of the module sources: Qt-free libraries, .ui files that match the code, CMake lists.

None of these need Slicer: they read the files, so a module that would fail to load in Slicer (a
misspelt ``self.ui`` name, a field bound to no widget, a file missing from the CMake list) fails here.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("CoNeSSynthesis", "CoNeSTraining")
COMMON = ROOT / "CoNeSSynthesis" / "CoNeSCommon"
APPLICATION_FILES = {COMMON / "application.py"}
"""The shared files that run only inside the Slicer application (they import it inside functions)."""
LIBRARY_FILES = sorted(
    {path for module in MODULES for path in (ROOT / module / f"{module}Lib").glob("*.py")}
    | set(COMMON.glob("*.py")) - APPLICATION_FILES
)
FORBIDDEN_MODULES = {"qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper"}
FORBIDDEN_SLICER_NAMES = {"app", "mrmlScene", "ScriptedLoadableModule"}
SLICER_OWNED_PACKAGES = {
    "torch", "torchvision",  # installed by the PyTorch extension (PyTorchUtils), CUDA or CPU build
    # bundled with Slicer 5.12 (SuperBuild/External_python-*.cmake and VTK)
    "numpy", "scipy", "simpleitk", "vtk", "pydicom", "pillow", "requests", "packaging", "dicomweb-client",
    "highdicom", "pip", "setuptools", "wheel",
}  # fmt: skip


def forbiddenUses(source: str) -> list[str]:
    """What a library file must not touch: Qt, CTK, the scripted-module base classes, the application and
    the global scene (libraries take the scene as an argument)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if node.module in FORBIDDEN_MODULES:
                found.append(node.module)
            elif node.module == "slicer":
                found += [f"slicer.{alias.name}" for alias in node.names if alias.name in FORBIDDEN_SLICER_NAMES]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "slicer"
            and node.attr in FORBIDDEN_SLICER_NAMES
        ):
            found.append(f"slicer.{node.attr}")
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import qt", ["qt"]),
        ("import ctk, os", ["ctk"]),
        ("from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic", ["slicer.ScriptedLoadableModule"]),
        ("from slicer import app", ["slicer.app"]),
        ("import slicer\nscene = slicer.mrmlScene", ["slicer.mrmlScene"]),
        ("import slicer\npath = slicer.app.temporaryPath", ["slicer.app"]),
        ("import slicer.util\nimport vtk\nfrom slicer import vtkMRMLScene", []),
    ],
)
def test_forbiddenUses_finds_what_a_library_must_not_touch(source: str, expected: list[str]) -> None:
    assert forbiddenUses(source) == expected


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_library_files_are_qt_free(path: Path) -> None:
    assert forbiddenUses(path.read_text(encoding="utf-8")) == []


def test_every_library_is_checked() -> None:
    assert {path.parent.name for path in LIBRARY_FILES} == {f"{module}Lib" for module in MODULES} | {"CoNeSCommon"}


def uiTree(module: str) -> ElementTree.Element:
    return ElementTree.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def parameterFields(module: str) -> set[str]:
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapper = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == f"{module}ParameterNode"
    )
    return {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}


@pytest.mark.parametrize("module", MODULES)
def test_ui_is_a_qt_designer_form_of_the_module(module: str) -> None:
    root = uiTree(module)
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    declared = {custom.findtext("class") for custom in root.iter("customwidget")}
    for widget in root.iter("widget"):
        assert widget.get("class").startswith("Q") or widget.get("class") in declared, widget.get("class")
    names = [widget.get("name") for widget in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_the_module_uses_exists(module: str) -> None:
    names = {widget.get("name") for widget in uiTree(module).iter("widget")}
    used = set(re.findall(r"\.ui\.(\w+)", (ROOT / module / f"{module}.py").read_text(encoding="utf-8")))
    assert used, "the module binds its .ui"
    assert used - names == set()


@pytest.mark.parametrize("module", MODULES)
def test_every_parameter_is_bound_to_one_widget(module: str) -> None:
    bound = [
        prop.findtext("string") for prop in uiTree(module).iter("property") if prop.get("name") == "SlicerParameterName"
    ]
    assert sorted(bound) == sorted(parameterFields(module))


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_python_file_and_resource(module: str) -> None:
    folder = ROOT / module
    listed = set(re.findall(r"^\s+(\S+\.\w+)\s*$", (folder / "CMakeLists.txt").read_text(), flags=re.MULTILINE))
    listed = {entry.replace("${MODULE_NAME}", module) for entry in listed}
    python = {path.relative_to(folder).as_posix() for path in folder.glob(f"{module}*.py")}
    for package in (f"{module}Lib", "CoNeSCommon"):
        python |= {path.relative_to(folder).as_posix() for path in (folder / package).glob("*.py")}
    resources = {
        path.relative_to(folder).as_posix()
        for path in (folder / "Resources").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert python | resources == listed


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "CoNeSSynthesis" / "CoNeSSynthesis.py",
        ROOT / "CoNeSTraining" / "CoNeSTraining.py",
        ROOT / "CoNeSSynthesis" / "CoNeSSynthesisLib" / "batch.py",
    ],
    ids=lambda path: path.name,
)
def test_cones_is_imported_after_the_library_that_makes_it_importable(path: Path) -> None:
    lines = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            lines.setdefault(node.module.split(".")[0], node.lineno)
    assert lines["CoNeSCommon"] < lines["cones"]


def test_requirements_leave_slicer_owned_packages_alone() -> None:
    lines = (ROOT / "CoNeSSynthesis" / "Resources" / "requirements.txt").read_text().splitlines()
    names = {re.split(r"[<>=!~; \[]", line.strip())[0].lower() for line in lines if line.strip()[:1].isalnum()}
    assert names and names.isdisjoint(SLICER_OWNED_PACKAGES)


def test_the_panel_self_test_sets_every_choice_explicitly() -> None:
    # The generated case turns "Prepare raw scans" on by itself (it does not look skull-stripped); a self-test
    # that left any choice to the panel or to an earlier test would run what it does not mean to.
    tree = ast.parse((ROOT / "CoNeSSynthesis" / "CoNeSSynthesis.py").read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    fields = {node.target.id for node in classes["CoNeSSynthesisParameterNode"].body if isinstance(node, ast.AnnAssign)}
    selfTest = next(
        node
        for node in classes["CoNeSSynthesisTest"].body
        if isinstance(node, ast.FunctionDef) and node.name == "test_panelApplyCreatesTheOutput"
    )
    assigned = {
        target.attr
        for node in ast.walk(selfTest)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "parameters"
    }
    assert fields and fields <= assigned, f"not set: {sorted(fields - assigned)}"
    assert "prepareRawScans" in fields


@pytest.mark.parametrize("module", MODULES)
def test_each_panel_shows_its_process_log_in_a_collapsed_read_only_box(module: str) -> None:
    root = uiTree(module)
    box = next(widget for widget in root.iter("widget") if widget.get("name") == "processLogCollapsibleButton")
    properties = {prop.get("name"): prop for prop in box.findall("property")}
    assert box.get("class") == "ctkCollapsibleButton" and properties["collapsed"].findtext("bool") == "true"
    log = next(widget for widget in box.iter("widget") if widget.get("name") == "processLogTextEdit")
    assert log.get("class") == "QPlainTextEdit"
    assert {prop.get("name"): prop.findtext("bool") for prop in log.findall("property")}["readOnly"] == "true"
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    assert "onLog=self.ui.processLogTextEdit.appendPlainText" in source


def test_the_generated_case_is_registered_with_sample_data_without_files() -> None:
    # SampleData.py (v5.12.0) SampleDataSource: uris, fileNames, nodeNames... must have equal lengths (empty
    # here: nothing is downloaded), and a source's button calls customDownloader(source) instead of downloading.
    source = (ROOT / "CoNeSSynthesis" / "CoNeSSynthesis.py").read_text(encoding="utf-8")
    assert 'slicer.app.connect("startupCompleted()", registerSampleData)' in source
    (call,) = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "registerCustomSampleDataSource"
    ]
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    for name in ("uris", "fileNames", "nodeNames"):
        assert isinstance(keywords[name], ast.List) and not keywords[name].elts, name
    assert (
        isinstance(keywords["customDownloader"], ast.Name) and keywords["customDownloader"].id == "generateSampleCase"
    )
    assert (ROOT / "CoNeSSynthesis" / "Resources" / "Icons" / "CoNeSSynthesis.png").is_file()
