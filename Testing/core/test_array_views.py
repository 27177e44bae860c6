"""No NumPy view of a SimpleITK image that nothing keeps alive.

``sitk.GetArrayViewFromImage`` returns a view into the image's buffer without holding the image
(SimpleITK's docstring: the image must be "kept around while the buffer is being used"). A view of
a temporary, ``GetArrayViewFromImage(sitk.Resample(...))``, reads freed memory as soon as the call
returns: the registration check once scored a pose on garbage and NaN that way, on one machine and
not another. The rule is checked on the source, since the failure it prevents is not reproducible.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path for folder in ("cones", "CoNeSSynthesis", "CoNeSTraining", "Testing") for path in (ROOT / folder).rglob("*.py")
)


def views_of_temporaries(source: str) -> list[int]:
    """Line numbers of ``GetArrayViewFromImage`` calls whose image is the result of another call."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "GetArrayViewFromImage"
        and node.args
        and isinstance(node.args[0], ast.Call)
    ]


def test_the_rule_finds_a_view_of_a_temporary_and_passes_a_view_of_a_named_image() -> None:
    assert views_of_temporaries("v = sitk.GetArrayViewFromImage(sitk.Resample(a, b))\n") == [1]
    assert views_of_temporaries("from SimpleITK import GetArrayViewFromImage\nv = GetArrayViewFromImage(f(a))\n") == [2]
    assert views_of_temporaries("r = sitk.Resample(a, b)\nv = sitk.GetArrayViewFromImage(r)\n") == []
    assert views_of_temporaries("v = sitk.GetArrayFromImage(sitk.Resample(a, b))\n") == []


def test_no_array_view_outlives_its_image() -> None:
    assert len(SOURCES) > 100
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in SOURCES
        if (lines := views_of_temporaries(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"views of temporary images (name the image first): {offenders}"
