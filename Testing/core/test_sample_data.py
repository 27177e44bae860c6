"""Sample data: deterministic, BraTS-shaped, physically plausible contrasts, and careful with existing files.

Cases are generated on a coarse 48 x 48 x 32 grid of 5 mm voxels (the full 240 x 240 x 155 mm field of
view), which takes a few hundredths of a second per case once the template is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from cones.sample_data import BRATS_LABELS, SampleCase, SampleDataConfig, Tissue, generate_case, write_sample_dataset
from cones.sample_data.case import build_case
from cones.sample_data.dataset import case_seed
from cones.sample_data.signal import PROTOCOLS, spin_echo, varied_protocol
from cones.sample_data.template import Template, load_template
from cones.sequences import Sequence

SMALL = SampleDataConfig(shape=(48, 48, 32), spacing_mm=5.0)
CLEAN = dataclasses.replace(SMALL, noise_level=0.0, bias_field_strength=0.0)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def template() -> Template:
    pytest.importorskip("nilearn")
    return load_template(SMALL.spacing_mm)


@pytest.fixture(scope="module")
def case(template: Template) -> SampleCase:
    return build_case("CONES-SAMPLE-000", 0, SMALL, template)


def _normal(case: SampleCase, tissue: Tissue) -> np.ndarray:
    """Voxels mostly made of one healthy tissue, away from tumour and contrast agent."""
    return (case.tissues[tissue] > 0.8) & (case.label == 0) & (case.contrast_mm == 0)


def _mean(case: SampleCase, sequence: Sequence, where: np.ndarray) -> float:
    assert where.sum() >= 5, "too few voxels for a meaningful mean"
    return float(case.images[sequence][where].mean())


def test_generate_case_same_seed_gives_identical_arrays_and_other_seeds_differ(template: Template) -> None:
    first = generate_case("a", 7, SMALL)
    again = build_case("a", 7, SMALL, template)
    other = build_case("a", 8, SMALL, template)
    for sequence in Sequence:
        np.testing.assert_array_equal(first.images[sequence], again.images[sequence])
        assert not np.array_equal(first.images[sequence], other.images[sequence])
    np.testing.assert_array_equal(first.label, again.label)
    assert not np.array_equal(first.label, other.label)


@pytest.mark.parametrize("seed", SEEDS)
def test_generate_case_labels_are_brats_values_with_all_three_tumour_compartments(
    template: Template, seed: int
) -> None:
    case = build_case("a", seed, SMALL, template)
    values = set(np.unique(case.label).tolist())
    assert values <= {0, 1, 2, 4}
    assert {1, 2, 4} <= values
    assert sorted(BRATS_LABELS.values()) == [1, 2, 4]
    assert case.label.dtype == np.uint8
    assert not case.label[~case.brain_mask].any()


def test_generate_case_volumes_share_the_configured_grid(case: SampleCase) -> None:
    for volume in (*case.images.values(), case.label, case.brain_mask, case.contrast_mm, *case.tissues.values()):
        assert volume.shape == SMALL.shape
    assert set(case.images) == set(Sequence)
    assert all(image.dtype == np.float32 for image in case.images.values())


def test_generate_case_background_is_exactly_zero_outside_the_brain(case: SampleCase) -> None:
    brain = case.brain_mask
    assert 0.05 < brain.mean() < 0.5
    for sequence, image in case.images.items():
        assert np.all(image[~brain] == 0), sequence
        assert np.all(image[brain] > 0), sequence  # Rician noise is never exactly zero


def test_generate_case_tissue_fractions_sum_to_one_inside_the_brain(case: SampleCase) -> None:
    total = sum(case.tissues.values())
    np.testing.assert_allclose(total[case.brain_mask], 1.0, atol=1e-5)
    assert not total[~case.brain_mask].any()


def test_generate_case_grey_white_csf_contrast_matches_each_sequence(case: SampleCase) -> None:
    wm, gm, csf = (_normal(case, tissue) for tissue in (Tissue.WHITE_MATTER, Tissue.GREY_MATTER, Tissue.CSF))
    assert _mean(case, Sequence.T1, wm) > _mean(case, Sequence.T1, gm) > _mean(case, Sequence.T1, csf)
    assert _mean(case, Sequence.T2, csf) > 1.5 * _mean(case, Sequence.T2, wm)
    assert _mean(case, Sequence.T2, gm) > _mean(case, Sequence.T2, wm)
    assert _mean(case, Sequence.FLAIR, gm) > _mean(case, Sequence.FLAIR, wm)


def test_generate_case_flair_suppresses_csf_that_t2_shows_bright(case: SampleCase) -> None:
    wm, csf = _normal(case, Tissue.WHITE_MATTER), _normal(case, Tissue.CSF)
    assert _mean(case, Sequence.FLAIR, csf) < 0.5 * _mean(case, Sequence.FLAIR, wm)
    assert _mean(case, Sequence.T2, csf) > 2.0 * _mean(case, Sequence.T2, wm)


def test_generate_case_oedema_is_bright_on_flair(case: SampleCase) -> None:
    oedema, wm = case.label == BRATS_LABELS["oedema"], _normal(case, Tissue.WHITE_MATTER)
    assert _mean(case, Sequence.FLAIR, oedema) > 1.3 * _mean(case, Sequence.FLAIR, wm)


def test_generate_case_only_t1ce_enhances_in_the_tumour_rim(case: SampleCase) -> None:
    rim, wm = case.label == BRATS_LABELS["enhancing"], _normal(case, Tissue.WHITE_MATTER)
    rim_ratio = _mean(case, Sequence.T1CE, rim) / _mean(case, Sequence.T1, rim)
    wm_ratio = _mean(case, Sequence.T1CE, wm) / _mean(case, Sequence.T1, wm)
    assert rim_ratio > 1.5 * wm_ratio
    assert 0.75 < wm_ratio < 1.33  # same tissue, differing only by the two acquisitions' bias and noise
    assert case.contrast_mm[rim].min() > 0
    assert not case.contrast_mm[case.label == BRATS_LABELS["necrosis"]].all()


def test_generate_case_t1ce_enhancement_is_as_strong_as_in_real_scans(case: SampleCase) -> None:
    """Calibrated on real BraTS-space T1ce: rim 1.6x the brain median, dura only in patches of the surface.

    Stronger enhancement would set the normalization's upper percentile far above the parenchyma and
    teach a model trained on sample data to darken real scans (Resources/Models/README.md).
    """
    t1ce = case.images[Sequence.T1CE]
    brain_median = float(np.median(t1ce[case.brain_mask]))
    rim_median = float(np.median(t1ce[case.label == BRATS_LABELS["enhancing"]]))
    assert 1.4 < rim_median / brain_median < 2.2
    surface = case.brain_mask & ~ndimage.binary_erosion(case.brain_mask)
    assert np.median(t1ce[surface]) < brain_median, "the brain surface does not glow as a whole"
    assert 0 < (case.contrast_mm[surface] > 0).mean() < 0.5


def test_generate_case_t1ce_equals_t1_wherever_there_is_no_gadolinium(template: Template) -> None:
    clean = build_case("a", 0, CLEAN, template)
    without, with_contrast = clean.brain_mask & (clean.contrast_mm == 0), clean.contrast_mm > 0
    np.testing.assert_array_equal(clean.images[Sequence.T1CE][without], clean.images[Sequence.T1][without])
    assert np.all(clean.images[Sequence.T1CE][with_contrast] > clean.images[Sequence.T1][with_contrast])
    normal_structures = with_contrast & (clean.tissues[Tissue.ENHANCING] == 0)
    assert normal_structures.sum() > 10, "vessels and meninges enhance too"


def test_protocols_only_the_post_contrast_acquisition_responds_to_gadolinium() -> None:
    responsive = [
        sequence
        for sequence, protocol in PROTOCOLS.items()
        if protocol.signal(Tissue.ENHANCING, 0.5) != protocol.signal(Tissue.ENHANCING, 0.0)
    ]
    assert responsive == [Sequence.T1CE]


def test_protocols_flair_inversion_time_nulls_csf_and_spin_echo_matches_hand_value() -> None:
    assert abs(float(PROTOCOLS[Sequence.FLAIR].signal(Tissue.CSF))) < 1e-12
    assert float(PROTOCOLS[Sequence.FLAIR].signal(Tissue.WHITE_MATTER)) > 0.05
    expected = 0.7 * (1 - np.exp(-500 / 800)) * np.exp(-10 / 80)
    assert spin_echo(0.7, 800.0, 80.0, tr_ms=500.0, te_ms=10.0) == pytest.approx(expected)


def test_varied_protocol_scales_tr_and_te_and_retimes_flair_to_keep_csf_null() -> None:
    flair = varied_protocol(PROTOCOLS[Sequence.FLAIR], 0.7, 1.2)
    assert flair.repetition_ms == pytest.approx(0.7 * PROTOCOLS[Sequence.FLAIR].repetition_ms)
    assert flair.echo_ms == pytest.approx(1.2 * PROTOCOLS[Sequence.FLAIR].echo_ms)
    assert flair.inversion_ms != PROTOCOLS[Sequence.FLAIR].inversion_ms
    assert abs(float(flair.signal(Tissue.CSF))) < 1e-12
    t1ce = varied_protocol(PROTOCOLS[Sequence.T1CE], 1.5, 1.0)
    assert t1ce.post_contrast and t1ce.inversion_ms is None


def test_acquisition_variation_gives_each_case_its_own_contrast_and_keeps_the_anatomy(template: Template) -> None:
    """Varied cases differ in grey/white contrast and in T1ce against T1; their anatomy and labels do not."""
    varied = dataclasses.replace(CLEAN, acquisition_variation=0.6)
    fixed = build_case("a", 0, CLEAN, template)
    cases = [build_case("a", seed, varied, template) for seed in (0, 1, 2)]
    np.testing.assert_array_equal(cases[0].label, fixed.label)
    np.testing.assert_array_equal(cases[0].tissues[Tissue.GREY_MATTER], fixed.tissues[Tissue.GREY_MATTER])

    def contrast(case: SampleCase, sequence: Sequence) -> float:
        wm, gm = _normal(case, Tissue.WHITE_MATTER), _normal(case, Tissue.GREY_MATTER)
        return _mean(case, sequence, wm) / _mean(case, sequence, gm)

    t1ce_contrasts = [contrast(case, Sequence.T1CE) for case in cases]
    assert max(t1ce_contrasts) - min(t1ce_contrasts) > 0.02
    without = cases[0].brain_mask & (cases[0].contrast_mm == 0)
    assert not np.allclose(cases[0].images[Sequence.T1CE][without], cases[0].images[Sequence.T1][without])
    for case in cases:
        wm, csf = _normal(case, Tissue.WHITE_MATTER), _normal(case, Tissue.CSF)
        assert _mean(case, Sequence.FLAIR, csf) < 0.5 * _mean(case, Sequence.FLAIR, wm)
        assert contrast(case, Sequence.T1) > 1.0 and contrast(case, Sequence.T1CE) > 1.0  # still T1-weighted


def test_generate_case_mass_effect_pushes_tissue_outward_by_the_displaced_volume(template: Template) -> None:
    fixed = dataclasses.replace(SMALL, tumour_radius_mm=(20.0, 20.0))
    pushed = build_case("a", 0, fixed, template)
    infiltrating = build_case("a", 0, dataclasses.replace(fixed, mass_effect=0.0), template)
    grown_mm3 = (pushed.brain_mask.sum() - infiltrating.brain_mask.sum()) * SMALL.spacing_mm**3
    displaced_mm3 = 4 / 3 * np.pi * (fixed.mass_effect * 20.0) ** 3
    assert 0.5 * displaced_mm3 < grown_mm3 < 1.5 * displaced_mm3


def test_write_sample_dataset_writes_brats_layout_and_geometry(tmp_path: Path, template: Template) -> None:
    folders = write_sample_dataset(tmp_path, num_cases=2, seed=5, config=SMALL)
    assert [folder.name for folder in folders] == ["CONES-SAMPLE-000", "CONES-SAMPLE-001"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["CONES-SAMPLE-000", "CONES-SAMPLE-001"]
    for folder in folders:
        suffixes = ("flair", "seg", "t1", "t1ce", "t2")
        assert sorted(path.name for path in folder.iterdir()) == sorted(f"{folder.name}_{s}.nii.gz" for s in suffixes)
        for suffix in suffixes:
            image = nib.load(folder / f"{folder.name}_{suffix}.nii.gz")
            assert image.shape == SMALL.shape
            assert image.header.get_zooms() == (5.0, 5.0, 5.0)
            np.testing.assert_allclose(image.affine[:3, :3], np.diag([-5.0, -5.0, 5.0]))
            np.testing.assert_allclose(image.affine[:3, 3], [0.0, (SMALL.shape[1] - 1) * 5.0, 0.0])
            assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
            assert image.get_data_dtype() == (np.uint8 if suffix == "seg" else np.float32)
    expected = build_case("CONES-SAMPLE-001", case_seed(5, 1), SMALL, template)
    written = np.asanyarray(nib.load(folders[1] / "CONES-SAMPLE-001_t1ce.nii.gz").dataobj)
    np.testing.assert_array_equal(written, expected.images[Sequence.T1CE])
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(folders[1] / "CONES-SAMPLE-001_seg.nii.gz").dataobj), expected.label
    )


def test_write_sample_dataset_refuses_to_overwrite_unless_asked(tmp_path: Path, template: Template) -> None:
    (folder,) = write_sample_dataset(tmp_path, num_cases=1, seed=0, config=SMALL)
    t1_path = folder / f"{folder.name}_t1.nii.gz"
    before = t1_path.read_bytes()
    with pytest.raises(FileExistsError, match="CONES-SAMPLE-000"):
        write_sample_dataset(tmp_path, num_cases=2, seed=1, config=SMALL)
    assert t1_path.read_bytes() == before
    assert not (tmp_path / "CONES-SAMPLE-001").exists(), "nothing is written when refusing"
    write_sample_dataset(tmp_path, num_cases=1, seed=1, config=SMALL, overwrite=True)
    assert t1_path.read_bytes() != before


def test_write_sample_dataset_rejects_an_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_cases"):
        write_sample_dataset(tmp_path, num_cases=0, seed=0, config=SMALL)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"shape": (48, 48)}, r"shape must be three integers"),
        ({"shape": (48, 4, 32)}, r"shape must be three integers"),
        ({"shape": (48.5, 48, 32)}, r"shape must be three integers"),
        ({"spacing_mm": 0.0}, r"spacing_mm must be in"),
        ({"tumour_radius_mm": (20.0, 10.0)}, r"tumour_radius_mm must be \(low, high\)"),
        ({"tumour_radius_mm": (10.0, 50.0)}, r"tumour_radius_mm must be \(low, high\)"),
        ({"oedema_radius_factor": (0.5, 2.0)}, r"oedema_radius_factor"),
        ({"mass_effect": 1.5}, r"mass_effect must be in \[0.0, 1.0\], got 1.5"),
        ({"deformation_mm": -1.0}, r"deformation_mm must be in"),
        ({"rotation_deg": 90.0}, r"rotation_deg must be in"),
        ({"scaling": 0.9}, r"scaling must be in"),
        ({"translation_mm": -2.0}, r"translation_mm must be in"),
        ({"noise_level": -0.1}, r"noise_level must be in \[0.0, inf\], got -0.1"),
        ({"bias_field_strength": -0.5}, r"bias_field_strength must be in"),
        ({"acquisition_variation": -0.1}, r"acquisition_variation must be in \[0.0, 2.0\]"),
        ({"acquisition_variation": 3.0}, r"acquisition_variation must be in"),
    ],
)
def test_sample_data_config_rejects_bad_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SampleDataConfig(**changes)


def test_sample_data_config_round_trips_through_json_dicts() -> None:
    config = dataclasses.replace(SMALL, tumour_radius_mm=(15.0, 18.0), noise_level=0.05)
    assert SampleDataConfig.from_dict(config.to_dict()) == config
