"""The ``mirrored`` input check on real BraTS cases: quiet on every case as given, loud on its mirrored T2 and FLAIR.

Real brains are nearly symmetric; the check relies on their tumour. Skipped without the public BraTS
2018 cases extracted by ``../shared/data/public-brats/extract`` into ``../data/public-brats``
(or ``$CONES_PUBLIC_BRATS``); every sixth case keeps it to a minute. With ``--prepare``, on the native
case of ``../shared/data`` (or ``$CONES_REAL_DATA``), skipped without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import SimpleITK as sitk

from cones.checkpoint import read_model_card
from cones.demo import BUNDLED_MODEL
from cones.domain import check_inputs
from cones.preprocessing import RegistrationFailed, prepare_sources
from cones.sequences import Sequence

PUBLIC_BRATS = Path(
    os.environ.get("CONES_PUBLIC_BRATS", Path(__file__).resolve().parents[2].parent / "data" / "public-brats")
)
REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
NATIVE = REAL_DATA / "native" / "TCGA-FG-6692"
SUFFIXES = {Sequence.T1: "t1", Sequence.T2: "t2", Sequence.FLAIR: "flair"}


def case_folders() -> list[Path]:
    found = sorted(folder for folder in PUBLIC_BRATS.glob("Brats18_*") if folder.is_dir())
    if not found:
        pytest.skip(f"public BraTS cases not found at {PUBLIC_BRATS} (set CONES_PUBLIC_BRATS)")
    return found[::6]


@pytest.fixture(scope="module")
def card():
    return read_model_card(BUNDLED_MODEL)


def read_case(folder: Path) -> dict[Sequence, sitk.Image]:
    return {
        sequence: sitk.ReadImage(str(folder / f"{folder.name}_{suffix}.nii.gz"))
        for sequence, suffix in SUFFIXES.items()
    }


def mirrored(image: sitk.Image) -> sitk.Image:
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    flipped.CopyInformation(image)
    return flipped


def mirrored_findings(card, images: dict[Sequence, sitk.Image]) -> list:
    return [result for result in check_inputs(card, images).results if result.check == "mirrored"]


@pytest.mark.parametrize("index", range(6))
def test_a_real_case_is_quiet_as_given_and_named_mirrored(card, index: int) -> None:
    folders = case_folders()
    if index >= len(folders):
        pytest.skip("fewer cases")
    images = read_case(folders[index])
    assert mirrored_findings(card, images) == []
    for sequence in (Sequence.T2, Sequence.FLAIR):
        found = mirrored_findings(card, {**images, sequence: mirrored(images[sequence])})
        assert [result.sequences for result in found] == [(sequence,)], folders[index].name
        assert "mirrored left-right against T1" in found[0].message


def test_a_mirrored_native_scan_is_refused_by_the_registration() -> None:
    """The native T2 is tilted 15 degrees against T1 on a grid of its own: only registering its mirror tells."""
    if not NATIVE.is_dir():
        pytest.skip(f"real scans not found at {NATIVE} (set CONES_REAL_DATA)")
    t1, t2 = (sitk.ReadImage(str(NATIVE / f"{NATIVE.name}_{name}.nii.gz")) for name in ("t1", "t2"))
    with pytest.raises(RegistrationFailed, match="T2 looks mirrored left-right against T1"):
        prepare_sources({"t1": t1, "t2": mirrored(t2)}, "t1")
