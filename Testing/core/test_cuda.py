"""CUDA paths: whole-volume synthesis agrees with the CPU, and training runs (bf16 autocast) on the GPU.

Skipped without a CUDA device (CI has none); run on a GPU machine with ``pytest -m gpu``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_cases import case_images, write_dataset

from cones.checkpoint import load_model, load_training_state
from cones.demo import BUNDLED_MODEL
from cones.inference import SynthesisOptions, synthesize_volume
from cones.precision import Precision
from cones.sequences import Sequence
from cones.training.config import TrainConfig
from cones.training.run import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


def test_cuda_synthesis_matches_the_cpu() -> None:
    """fp32 on CUDA reproduces the CPU volume; bf16 (``auto`` on CUDA) stays within 1 % of the scale.

    The bundled model is used for the bf16 check: a trained network's activations are what bf16's
    8-bit mantissa has to carry, whereas a random one amplifies rounding without meaning anything.
    """
    model = load_model(BUNDLED_MODEL)
    images = case_images((16, 96, 80), seed=3)
    sources = {sequence: sitk.GetArrayFromImage(images[sequence.value]) for sequence in SOURCES}
    foreground = sources[Sequence.T1] > 0

    def run(device: str, precision: Precision) -> np.ndarray:
        options = SynthesisOptions(device=device, precision=precision)
        card = model.card
        volumes = synthesize_volume(model.generator, sources, card.sources, card.targets, card.normalization, options)
        return volumes[Sequence.T1CE]

    on_cpu = run("cpu", Precision.FP32)
    np.testing.assert_allclose(run("cuda", Precision.FP32), on_cpu, atol=0.5)  # output scale 0..1000
    bfloat16_error = np.abs(run("cuda", Precision.BF16) - on_cpu)[foreground]
    assert bfloat16_error.mean() < 10.0, f"bf16 mean error {bfloat16_error.mean():.2f} of 1000"
    assert next(model.generator.parameters()).device.type == "cpu", "the generator goes back where it was"


def test_training_on_cuda_writes_a_model_that_loads_on_the_cpu(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", cases=3)
    config = TrainConfig(iterations=3, batch_size=2, crop_size=(32, 32), log_interval=1, validation_interval=3)
    last = train(config, data, tmp_path / "run", device="cuda", show_progress=False)
    state = load_training_state(last)
    assert state["iteration"] == 3
    model = load_model(last, device="cpu")
    assert all(torch.isfinite(parameter).all() for parameter in model.generator.parameters())
