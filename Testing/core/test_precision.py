"""Choosing the compute path, and the accuracy guard: every path stays >= 40 dB PSNR of the authors' protocol.

The guard compares, for each path of :data:`cones.precision.CANDIDATE_PATHS`, the whole-volume
output of :func:`cones.inference.synthesize_volume` (the neural field on the foreground pixels only,
as synthesis runs) against the authors' protocol: plain fp32, NCHW, whole slices, same generator,
same case. PSNR over the source foreground, both volumes rescaled by the reference's value range
(the paper's convention, :func:`cones.metrics.psnr`). Skipping the background alone (the fp32 NCHW
path) changes only the order of floating-point sums: it must stay >= 60 dB.
Generator: the bundled lite model (a random one outputs a near-constant field that any precision
reproduces). Cases: a generated one and, when ``../shared/data`` (or ``$CONES_REAL_DATA``) is
present, central slices of a real BraTS-space case. The paper preset's guard needs a briefly trained
generator (100 Adam steps, minutes on 2 cores, over the suite's 10-minute limit on a loaded machine):
it runs in ``Testing/benchmarks/precision_accuracy.py``, which reuses :func:`guard_psnrs`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import case_images

import cones.precision
from cones.checkpoint import load_model
from cones.config import NormalizationConfig
from cones.data import CaseFiles, find_cases, read_image
from cones.demo import BUNDLED_MODEL
from cones.inference import SynthesisOptions, synthesize_volume
from cones.metrics import psnr, rescale_pair
from cones.model import CoNeSGenerator, build_generator
from cones.precision import CANDIDATE_PATHS, REFERENCE_PATH, ComputePath, Precision, choose_path, parse_precision
from cones.sequences import Sequence

REAL_DATA = Path(os.environ.get("CONES_REAL_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
GUARD_DB = 40.0
SKIPPED_BACKGROUND_DB = 60.0
CPU = torch.device("cpu")


def test_parse_precision_refuses_unknown_names() -> None:
    assert parse_precision("bf16") is Precision.BF16
    with pytest.raises(ValueError, match="unknown precision 'half'; use auto, fp32, bf16"):
        parse_precision("half")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        SynthesisOptions(precision="fp16")


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu_bf16_units(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(cones.precision, "cpu_has_native_bfloat16", lambda: native)
    assert choose_path("auto", CPU) == ComputePath(bfloat16=native, channels_last=False)
    assert choose_path("fp32", CPU).bfloat16 is False and choose_path("bf16", CPU).bfloat16 is True
    assert choose_path("bf16", CPU, channels_last=True) == ComputePath(bfloat16=True, channels_last=True)


def test_the_cpu_layout_is_timed_once_per_network_and_number_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first synthesis times both layouts (two runs each); later ones, of any size, reuse the choice."""
    monkeypatch.setattr(cones.precision, "_CALIBRATED_LAYOUTS", {})
    generator = build_generator("lite", 3, 1).eval()
    calls = []
    generator.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].is_contiguous()))
    sample = torch.rand(1, 3, 32, 32)
    chosen = cones.precision.calibrated_path(generator, sample, ComputePath(False, False), CPU)
    assert calls == [True, True, False, False], "NCHW twice, then channels_last twice"
    assert next(generator.parameters()).is_contiguous(memory_format=chosen.memory_format)
    calls.clear()
    again = cones.precision.calibrated_path(generator, torch.rand(1, 3, 64, 48), ComputePath(False, False), CPU)
    assert again == chosen and calls == [], "no second timing for the same network and format"
    cones.precision.calibrated_path(generator, sample, ComputePath(True, False), CPU)
    assert len(calls) == 4, "bf16 is timed on its own"
    assert cones.precision.calibrated_path(generator, sample, ComputePath(True, False), torch.device("meta")) == (
        ComputePath(True, False)
    ), "only the CPU is calibrated"


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64", reason="reads /proc/cpuinfo of an x86 CPU"
)
def test_native_bf16_detection_matches_the_cpu_flags() -> None:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    flags = set(next(line for line in cpuinfo if line.startswith("flags")).split())
    assert cones.precision.cpu_has_native_bfloat16() == bool(flags & {"avx512_bf16", "amx_tile"})


def test_synthesis_restores_the_generator_layout_and_mode() -> None:
    generator = build_generator("lite", 3, 1).train()
    images = case_images((6, 48, 40), seed=1)
    sources = {seq: sitk.GetArrayFromImage(images[seq.value]) for seq in SOURCES}
    options = SynthesisOptions(device="cpu", precision="bf16", channels_last=True)
    synthesize_volume(generator, sources, SOURCES, (Sequence.T1CE,), NormalizationConfig(), options)
    assert generator.training
    assert all(p.is_contiguous() for p in generator.parameters()), "weights go back to the NCHW layout"


def guard_psnrs(
    generator: CoNeSGenerator, volumes: dict[Sequence, np.ndarray], sources: tuple[Sequence, ...], target: Sequence
) -> dict[str, float]:
    """PSNR (dB) of every path's output (background skipped) against fp32 NCHW whole slices, in the foreground."""

    def run(path: ComputePath, skip_background: bool = True) -> np.ndarray:
        options = SynthesisOptions(
            device="cpu", precision=path.precision, channels_last=path.channels_last, skip_background=skip_background
        )
        return synthesize_volume(generator, volumes, sources, (target,), NormalizationConfig(), options)[target]

    reference = run(REFERENCE_PATH, skip_background=False)
    foreground = np.any([volumes[seq] > 0 for seq in sources], axis=0)
    assert reference[foreground].std() > 0, "the fp32 output must not be constant, or the guard compares nothing"
    return {path.name: psnr(*rescale_pair(run(path), reference), mask=foreground) for path in CANDIDATE_PATHS}


def generated_case(shape: tuple[int, int, int], seed: int) -> dict[Sequence, np.ndarray]:
    images = case_images(shape, seed=seed)
    return {seq: sitk.GetArrayFromImage(images[seq.value]) for seq in (*SOURCES, Sequence.T1CE)}


def central_slices(case: CaseFiles, slices: int) -> dict[Sequence, np.ndarray]:
    """The central ``slices`` axial slices of a real case's sources and T1ce."""
    volumes = {seq: sitk.GetArrayFromImage(read_image(case.sequences[seq])) for seq in (*SOURCES, Sequence.T1CE)}
    middle = next(iter(volumes.values())).shape[0] // 2
    return {seq: volume[middle - slices // 2 : middle + slices // 2] for seq, volume in volumes.items()}


def real_case(slices: int) -> dict[Sequence, np.ndarray]:
    folder = REAL_DATA / "coregistered"
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set CONES_REAL_DATA)")
    return central_slices(find_cases(folder)[0], slices)


@pytest.mark.parametrize("case", ["generated", "real"])
def test_bundled_lite_model_stays_within_the_guard_on_every_path(case: str) -> None:
    model = load_model(BUNDLED_MODEL)
    volumes = generated_case((12, 160, 144), seed=3) if case == "generated" else real_case(slices=6)
    scores = guard_psnrs(model.generator, volumes, model.card.sources, model.card.targets[0])
    assert scores[REFERENCE_PATH.name] >= SKIPPED_BACKGROUND_DB, f"background skipping on the {case} case: {scores}"
    assert min(scores.values()) >= GUARD_DB, f"PSNR against fp32 whole slices on the {case} case: {scores}"
