"""Whole-volume synthesis: slicing, background skipping, progress, cancel and exact output geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import OBLIQUE_LEFT_HANDED, case_images
from tiny_models import TINY_GENERATOR

from cones.checkpoint import ModelCard, load_model, make_provenance, save_model
from cones.config import NormalizationConfig
from cones.inference import SynthesisCancelled, SynthesisOptions, synthesize_images, synthesize_volume
from cones.model import CoNeSGenerator
from cones.sequences import Sequence

# a larger initial gain than training uses, so an untrained model's output is not flat
TINY = dataclasses.replace(TINY_GENERATOR, init_gain=1.0)
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    generator = CoNeSGenerator(TINY)
    card = ModelCard(
        architecture="cones",
        preset=None,
        generator=TINY,
        sources=SOURCES,
        targets=(Sequence.T1CE,),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "test"),
    )
    return save_model(tmp_path / "model.pt", generator, card)


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    images = case_images(seed=seed)
    return {name: sitk.GetArrayFromImage(images[name]) for name in ("t1", "t2", "flair")}


def synthesize_t1ce(model_path: Path, sources: dict[str, np.ndarray], options: SynthesisOptions, **callbacks):
    """The tiny model's T1ce from ``sources``, with ``progress`` / ``should_cancel`` passed through."""
    generator = load_model(model_path).generator
    volumes = synthesize_volume(
        generator, sources, SOURCES, (Sequence.T1CE,), NormalizationConfig(), options, **callbacks
    )
    return volumes[Sequence.T1CE]


def test_synthesize_volume_skips_background_slices_and_reports_progress(model_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    sources = arrays()
    output = synthesize_t1ce(
        model_path,
        sources,
        SynthesisOptions(device="cpu", batch_size=3),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert output.shape == sources["t1"].shape and output.dtype == np.float32
    foreground = sources["t1"] > 0
    assert np.all(output[~foreground] == 0), "background must stay exactly 0"
    assert np.all(output[[0, -1]] == 0), "empty slices are left at background"
    assert output[foreground].std() > 0
    total = int(foreground.any(axis=(1, 2)).sum())
    assert calls[-1] == (total, total) and [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert total < sources["t1"].shape[0], "the generated case has empty slices to skip"


def test_synthesize_volume_runs_one_slice_at_a_time_on_the_cpu_by_default(model_path: Path) -> None:
    """Batching slices measured slower and heavier on the CPU (see SynthesisOptions), so the default is 1."""
    calls: list[int] = []
    sources = arrays()
    synthesize_t1ce(model_path, sources, SynthesisOptions(device="cpu"), progress=lambda done, _: calls.append(done))
    assert calls == list(range(1, int((sources["t1"] > 0).any(axis=(1, 2)).sum()) + 1))


def test_synthesize_volume_slices_along_the_requested_axis(model_path: Path) -> None:
    sources = {name: np.transpose(volume, (1, 0, 2)) for name, volume in arrays().items()}  # axial planes on axis 1
    foreground_planes = int((sources["t1"] > 0).any(axis=(0, 2)).sum())
    assert foreground_planes != int((sources["t1"] > 0).any(axis=(1, 2)).sum()), "the axes must be told apart"
    totals: list[int] = []
    synthesize_t1ce(
        model_path,
        sources,
        SynthesisOptions(device="cpu", slice_axis=1),
        progress=lambda done, total: totals.append(total),
    )
    assert totals[-1] == foreground_planes


def test_synthesize_volume_can_be_cancelled(model_path: Path) -> None:
    with pytest.raises(SynthesisCancelled):
        synthesize_t1ce(model_path, arrays(), SynthesisOptions(device="cpu", batch_size=1), should_cancel=lambda: True)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.pop("flair"), "needs source sequence"),
        (lambda s: s.__setitem__("t2", s["t2"][:, :-1]), "share one grid"),
        (lambda s: s["t2"].__setitem__((5, 20, 20), np.nan), "NaN"),
        (lambda s: s.__setitem__("t2", (s["t2"] > 0) * 7.0), "constant"),
        (lambda s: [v.fill(0) for v in s.values()], "empty foreground"),
    ],
)
def test_synthesize_volume_refuses_bad_sources(model_path: Path, change, match: str) -> None:
    sources = arrays()
    change(sources)
    with pytest.raises(ValueError, match=match):
        synthesize_volume(load_model(model_path).generator, sources, SOURCES, (Sequence.T1CE,), NormalizationConfig())


def test_synthesize_images_keeps_oblique_left_handed_geometry(model_path: Path) -> None:
    images = case_images(spacing=(0.9, 1.1, 3.0), direction=OBLIQUE_LEFT_HANDED, origin=(12.5, -30.0, 7.25))
    assert np.linalg.det(np.reshape(OBLIQUE_LEFT_HANDED, (3, 3))) < 0
    sources = {name: images[name] for name in ("t1", "t2", "flair")}
    output = synthesize_images(load_model(model_path), sources, options=SynthesisOptions(device="cpu"))[Sequence.T1CE]
    reference = images["t1"]
    assert output.GetSize() == reference.GetSize()
    assert output.GetSpacing() == reference.GetSpacing()
    assert output.GetOrigin() == reference.GetOrigin()
    assert output.GetDirection() == reference.GetDirection()
    values = sitk.GetArrayFromImage(output)
    inside = sitk.GetArrayFromImage(reference) > 0
    assert values[inside].max() > 0 and np.all(values[~inside] == 0), "output overlays the input voxels"


def test_synthesize_images_is_independent_of_the_files_axis_order(model_path: Path) -> None:
    """A volume stored in another orientation gives the same voxels once turned back."""
    model = load_model(model_path)
    images = {name: case_images()[name] for name in ("t1", "t2", "flair")}
    flipped = {name: sitk.DICOMOrient(image, "RAS") for name, image in images.items()}
    direct = synthesize_images(model, images)[Sequence.T1CE]
    via_flipped = sitk.DICOMOrient(synthesize_images(model, flipped)[Sequence.T1CE], "LPS")
    np.testing.assert_allclose(sitk.GetArrayFromImage(via_flipped), sitk.GetArrayFromImage(direct), atol=1e-4)


def test_synthesize_images_refuses_or_resamples_mismatched_grids(model_path: Path) -> None:
    model = load_model(model_path)
    sources = {name: case_images()[name] for name in ("t1", "t2", "flair")}
    sources["flair"].SetOrigin((0.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="FLAIR is not on the grid of T1"):
        synthesize_images(model, sources)
    output = synthesize_images(model, sources, resample=True)[Sequence.T1CE]
    assert output.GetSize() == sources["t1"].GetSize()


def test_synthesis_options_validation() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SynthesisOptions(batch_size=0)
    with pytest.raises(ValueError, match="slice_axis"):
        SynthesisOptions(slice_axis=3)
