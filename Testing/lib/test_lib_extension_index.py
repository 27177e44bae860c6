"""The Extensions Index entry (CoNeS.json) says what CMakeLists.txt says, in the index's own format.

The index builds the extension from ``scm_url`` with the ``build_dependencies`` it lists, so a
category, dependency or repository that differs from the CMake metadata would build or file the
extension differently from what the extension itself declares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PREFIX = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v"
INDEX_FIELDS = {
    "$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies", "dicom_support_rule",
    "build_subdirectory", "enabled", "tier",
}  # fmt: skip
"""The properties of the index's catalog entry schema v1.0.2 (it allows no others)."""


def cmakeVariable(name: str) -> str:
    match = re.search(rf'^set\({name} "([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{name} is not set in CMakeLists.txt"
    return match.group(1)


def entry() -> dict:
    return json.loads((ROOT / "CoNeS.json").read_text(encoding="utf-8"))


def test_entry_has_the_schema_fields_only_and_the_required_ones() -> None:
    data = entry()
    assert set(data) <= INDEX_FIELDS
    assert {"$schema", "category", "scm_url"} <= set(data)
    assert data["$schema"].startswith(SCHEMA_PREFIX)
    assert isinstance(data["tier"], int) and 1 <= data["tier"] <= 5


def test_entry_matches_the_cmake_metadata() -> None:
    data = entry()
    assert data["category"] == cmakeVariable("EXTENSION_CATEGORY")
    depends = cmakeVariable("EXTENSION_DEPENDS")
    assert data["build_dependencies"] == ([] if depends == "NA" else depends.split(";"))
    assert data["scm_url"].removesuffix(".git") == cmakeVariable("EXTENSION_HOMEPAGE")
    assert (ROOT / data["build_subdirectory"] / "CMakeLists.txt").is_file()


def test_entry_is_named_after_the_cmake_project() -> None:
    match = re.search(r"^project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text(encoding="utf-8"), re.MULTILINE)
    assert match and (ROOT / f"{match.group(1)}.json").is_file()


def test_the_licence_is_apache_2_and_the_readme_names_it() -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    assert "Apache-2.0" in (ROOT / "README.md").read_text(encoding="utf-8")
