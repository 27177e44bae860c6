"""The input checks on real scans with the bundled model: quiet on every clean case, loud on every swap.

Skipped without ``../shared/data`` (or ``$CONES_REAL_DATA``). The native case with ``--prepare`` is
checked in Testing/real/test_raw_scans.py, where it is synthesized anyway.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from cones.checkpoint import read_model_card
from cones.data import find_cases, read_image
from cones.demo import BUNDLED_MODEL
from cones.domain import check_inputs
from cones.sequences import Sequence

REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


def real_cases():
    folder = REAL_DATA / "coregistered"
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set CONES_REAL_DATA)")
    return find_cases(folder)


@pytest.fixture(scope="module")
def card():
    return read_model_card(BUNDLED_MODEL)


@pytest.fixture(scope="module", params=["TCGA-DU-7294", "TCGA-FG-6692", "brainles-example"])
def case(request):
    found = {case.case_id: case for case in real_cases()}
    return {sequence: read_image(found[request.param].sequences[sequence]) for sequence in SOURCES}


def test_the_bundled_model_records_its_training_statistics(card) -> None:
    assert card.training_domain.cases == 17 and card.training_domain.skull_stripped
    assert [statistics.sequence for statistics in card.training_domain.statistics] == list(SOURCES)


def test_a_clean_real_case_passes_every_check(card, case) -> None:
    report = check_inputs(card, case)
    assert report.results == (), [result.message for result in report.results]
    assert {"sequence-contrast", "intensity-range", "registration", "skull", "spacing"} <= set(report.checked)


@pytest.mark.parametrize("first, second", list(itertools.combinations(SOURCES, 2)))
def test_every_swapped_pair_is_named(card, case, first: Sequence, second: Sequence) -> None:
    swapped = {**case, first: case[second], second: case[first]}
    named = [result for result in check_inputs(card, swapped).results if result.check == "sequence-contrast"]
    assert len(named) == 1 and set(named[0].sequences) == {first, second}, named
