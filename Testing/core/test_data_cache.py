"""The slice cache: contents equal the shared normalization, reuse without re-reading, clear refusals."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_cases import BRATS_2023, write_case, write_dataset

import cones.data.geometry
from cones.config import NormalizationConfig
from cones.data import SliceCache, build_slice_cache, data_fingerprint, find_cases, foreground_mask, normalize_volume
from cones.sequences import Sequence

SHAPE = (12, 20, 24)
SOURCES, TARGETS = ("t1", "t2", "flair"), ("t1ce",)
CONFIG = NormalizationConfig()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "data", cases=2, shape=SHAPE)
    write_case(tmp_path / "data", "CASE-2023", naming=BRATS_2023, shape=SHAPE, seed=7)
    return tmp_path / "data"


def expected_slices(
    folder: Path, case_id: str, naming: str = "_", axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the cache must hold for one case: (slices (S, C, h, w), masks (S, h, w), slice indices)."""
    names = {"t1": "t1", "t2": "t2", "flair": "flair", "t1ce": "t1ce"}
    if naming == "-":
        names = {"t1": "t1n", "t2": "t2w", "flair": "t2f", "t1ce": "t1c"}
    volumes = {
        name: sitk.GetArrayFromImage(sitk.ReadImage(str(folder / case_id / f"{case_id}{naming}{names[name]}.nii.gz")))
        for name in (*SOURCES, *TARGETS)
    }
    mask = foreground_mask([volumes[name] for name in SOURCES], CONFIG)
    normalized = np.stack([normalize_volume(volumes[name], mask, CONFIG) for name in (*SOURCES, *TARGETS)])
    normalized, mask = np.moveaxis(normalized, axis + 1, 0), np.moveaxis(mask, axis, 0)
    keep = np.flatnonzero(mask.mean(axis=(1, 2)) > 0.01)
    return normalized[keep], mask[keep], keep


def test_build_slice_cache_stores_the_normalized_foreground_slices(dataset: Path, tmp_path: Path) -> None:
    cache = build_slice_cache(find_cases(dataset), SOURCES, TARGETS, tmp_path / "cache", CONFIG, dtype="float32")
    assert cache.source_sequences == (Sequence.T1, Sequence.T2, Sequence.FLAIR)
    assert cache.target_sequences == (Sequence.T1CE,) and cache.axis == 0
    assert cache.sources.dtype == np.float32 and cache.masks.dtype == bool
    assert sorted(set(cache.case_ids)) == ["CASE-000", "CASE-001", "CASE-2023"]
    for case_id, naming in (("CASE-001", "_"), ("CASE-2023", "-")):
        slices, masks, kept = expected_slices(dataset, case_id, naming)
        rows = cache.slices_of([case_id])
        assert 0 < len(kept) < SHAPE[0], "empty slices are left out"
        np.testing.assert_array_equal(cache.slice_indices[rows], kept)
        np.testing.assert_array_equal(cache.sources[rows], slices[:, :3])
        np.testing.assert_array_equal(cache.targets[rows], slices[:, 3:])
        np.testing.assert_array_equal(cache.masks[rows], masks)
    assert len(cache) == cache.sources.shape[0] == cache.targets.shape[0] == len(cache.slice_indices)
    assert cache.sources.shape[1:] == (3, 20, 24) and cache.targets.shape[1:] == (1, 20, 24)
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["fingerprint"] == cache.fingerprint and index["description"]["dtype"] == "float32"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "index.json",
        "masks.npy",
        "sources.npy",
        "targets.npy",
    ]


def test_float16_cache_is_close_to_the_exact_normalization(dataset: Path, tmp_path: Path) -> None:
    cases = find_cases(dataset)
    exact = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "exact", CONFIG, dtype="float32")
    half = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "half", CONFIG)
    assert half.sources.dtype == np.float16 and half.fingerprint != exact.fingerprint
    np.testing.assert_allclose(half.sources, exact.sources, atol=1e-3)
    assert np.all(half.sources[~np.broadcast_to(half.masks[:, None], half.sources.shape)] == -1.0)


def test_build_slice_cache_reuses_a_matching_cache_without_reading(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    original = cones.data.geometry.read_image

    def counting_read(path: Path) -> sitk.Image:
        reads.append(Path(path))
        return original(path)

    monkeypatch.setattr(cones.data.geometry, "read_image", counting_read)
    cases = find_cases(dataset)
    first = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    assert len(reads) == 3 * 4
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    second = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    assert len(reads) == 12, "a matching cache is reused without reading any volume"
    assert second.fingerprint == first.fingerprint == data_fingerprint(cases, SOURCES, TARGETS, CONFIG)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == stamps
    np.testing.assert_array_equal(second.sources, first.sources)


@pytest.mark.parametrize(
    "change",
    ["touch a file", "normalization", "axis", "sequences", "fraction"],
)
def test_build_slice_cache_rebuilds_when_its_inputs_change(dataset: Path, tmp_path: Path, change: str) -> None:
    cases = find_cases(dataset)
    first = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    before = np.array(first.sources)
    arguments = {"config": CONFIG, "axis": 0, "min_foreground_fraction": 0.01}
    sources = SOURCES
    if change == "touch a file":
        path = cases[1].sequences[Sequence.T2]
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    elif change == "normalization":
        arguments["config"] = NormalizationConfig(upper_percentile=99.0)
    elif change == "axis":
        arguments["axis"] = 1
    elif change == "sequences":
        sources = ("t2", "t1", "flair")
    else:
        arguments["min_foreground_fraction"] = 0.2
    second = build_slice_cache(cases, sources, TARGETS, tmp_path / "cache", **arguments)
    assert second.fingerprint != first.fingerprint
    assert second.fingerprint == data_fingerprint(cases, sources, TARGETS, **arguments)
    assert SliceCache(tmp_path / "cache").fingerprint == second.fingerprint
    np.testing.assert_array_equal(first.sources, before, err_msg="an open cache keeps its files through a rebuild")


def test_interrupted_cache_is_not_opened_and_gets_rebuilt(dataset: Path, tmp_path: Path) -> None:
    cases = find_cases(dataset)
    first = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    (tmp_path / "cache" / "index.json").unlink()
    with pytest.raises(ValueError, match="no readable slice cache in"):
        SliceCache(tmp_path / "cache")
    assert build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG).fingerprint == first.fingerprint


def test_slices_along_another_axis(dataset: Path, tmp_path: Path) -> None:
    cases = find_cases(dataset)[:1]
    cache = build_slice_cache(cases, SOURCES, TARGETS, tmp_path / "cache", CONFIG, axis=2, dtype="float32")
    slices, masks, kept = expected_slices(dataset, "CASE-000", axis=2)
    assert cache.sources.shape[1:] == (3, 12, 20) and cache.axis == 2
    np.testing.assert_array_equal(cache.slice_indices, kept)
    np.testing.assert_array_equal(cache.sources, slices[:, :3])
    np.testing.assert_array_equal(cache.masks, masks)


def test_cases_of_other_sizes_are_padded_at_the_bottom_and_right(tmp_path: Path) -> None:
    write_case(tmp_path / "data", "a", shape=(12, 20, 24), seed=1)
    write_case(tmp_path / "data", "b", shape=(12, 16, 28), seed=2)
    cache = build_slice_cache(find_cases(tmp_path / "data"), SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    a, b = cache.slices_of(["a"]), cache.slices_of(["b"])
    assert cache.sources.shape[2:] == (20, 28)
    assert np.all(cache.sources[a][..., 24:] == -1) and not cache.masks[a][..., 24:].any()
    assert np.all(cache.targets[b][:, :, 16:] == -1) and not cache.masks[b][:, 16:].any()
    assert cache.masks[b][:, :16, :28].any() and cache.masks[a][:, :20, :24].any()


def test_slice_cache_pickles_as_its_directory(dataset: Path, tmp_path: Path) -> None:
    cache = build_slice_cache(find_cases(dataset), SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    payload = pickle.dumps(cache)
    assert len(payload) < 2000, "the arrays are reopened, not copied"
    copy = pickle.loads(payload)
    assert isinstance(copy.sources, np.memmap) and copy.case_ids == cache.case_ids
    np.testing.assert_array_equal(copy.targets, cache.targets)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"axis": 3}, "axis must be 0, 1 or 2, got 3"),
        ({"dtype": "int8"}, r"dtype must be one of \('float16', 'float32'\), got 'int8'"),
        ({"min_foreground_fraction": 1.0}, r"min_foreground_fraction must be in \[0, 1\), got 1.0"),
        ({"targets": ("t2",)}, "sources and targets must be non-empty and disjoint"),
        ({"sources": ()}, "sources and targets must be non-empty and disjoint"),
        ({"min_foreground_fraction": 0.95}, "no slice with enough foreground in any case"),
    ],
)
def test_build_slice_cache_refuses_bad_arguments(
    dataset: Path, tmp_path: Path, arguments: dict[str, object], match: str
) -> None:
    call = {"sources": SOURCES, "targets": TARGETS, "config": CONFIG, **arguments}
    with pytest.raises(ValueError, match=match):
        build_slice_cache(find_cases(dataset), cache_dir=tmp_path / "cache", **call)


def test_build_slice_cache_names_the_case_with_a_bad_volume(dataset: Path, tmp_path: Path) -> None:
    path = dataset / "CASE-001" / "CASE-001_t1ce.nii.gz"
    image = sitk.ReadImage(str(path))
    constant = sitk.Image(image.GetSize(), image.GetPixelID()) + 5
    constant.CopyInformation(image)
    sitk.WriteImage(constant, str(path))
    with pytest.raises(ValueError, match="case CASE-001 T1ce: the volume is constant inside the foreground"):
        build_slice_cache(find_cases(dataset), SOURCES, TARGETS, tmp_path / "cache", CONFIG)
    (dataset / "CASE-001" / "CASE-001_t1ce.nii.gz").unlink()
    with pytest.raises(ValueError, match="case CASE-001 has no T1ce image"):
        build_slice_cache(find_cases(dataset), SOURCES, TARGETS, tmp_path / "cache", CONFIG)
