"""Whole-volume synthesis: slice a volume, run the generator slice by slice, stack the result.

CoNeS is a 2D model (d = 2 in the paper): a volume is translated one slice at a time along the
axis the model was trained on. Slices without foreground are not sent through the network; they
stay background, which saves a third of the work on a skull-stripped BraTS volume. In the slices
that are, the CoNeS neural field runs on the foreground pixels only
(:meth:`~cones.model.CoNeSGenerator.forward_foreground`): the background is written as background
either way, so the output is the same, and half or more of each slice's per-pixel work is saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
import torch

from cones.checkpoint import LoadedModel
from cones.config import NormalizationConfig
from cones.data.geometry import check_same_grid, reorient, resample_to_reference, to_canonical
from cones.data.io import array_to_image, image_to_array
from cones.data.normalization import denormalize_volume, foreground_mask, normalize_volume
from cones.device import resolve_device
from cones.domain.checks import Preparation, check_inputs
from cones.model import CoNeSGenerator
from cones.precision import Precision, calibrated_path, choose_path, parse_precision
from cones.sequences import Sequence, parse_sequence
from cones.trust.uncertainty import PerturbedPasses

__all__ = [
    "ProgressCallback",
    "SynthesisCancelled",
    "SynthesisOptions",
    "model_sources",
    "slice_network",
    "synthesize_images",
    "synthesize_images_with_uncertainty",
    "synthesize_volume",
    "synthesize_volume_with_uncertainty",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (slices done, slices to do) after every batch."""


class SynthesisCancelled(RuntimeError):
    """Raised when the caller's cancel check returned True; nothing is returned or written."""


GPU_BATCH_SIZE = 4
"""Slices per forward pass on CUDA when :class:`SynthesisOptions` leaves it open."""


@dataclass(frozen=True)
class SynthesisOptions:
    """How to run synthesis (not what to synthesize).

    Attributes:
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        batch_size: slices per forward pass; memory grows linearly with it. ``None`` picks 1 on the
            CPU, where batching measured both slower and heavier (a 240x240x155 volume: lite 23.1 s /
            0.9 GB at 1 vs 25.9 s / 1.2 GB at 4; paper 438 s / 1.4 GB vs 553 s / 2.8 GB), and 4 on CUDA.
        slice_axis: numpy axis of the (z, y, x) volume along which slices are taken; must be the
            axis the model was trained on (0: axial for axially stored volumes).
        precision: ``auto`` (bfloat16 where the device has bfloat16 units, else fp32), ``fp32`` or
            ``bf16``; see :func:`cones.precision.choose_path` (measured on an H200 with the paper
            preset: 0.024 vs 0.029 s per slice, 1.5 vs 2.0 GB; on a 2-core AVX512-BF16 CPU 2.3x faster).
        channels_last: run in the channels_last memory layout; ``None``: on the CPU whichever layout
            is faster for the network, timed once per process (:func:`cones.precision.calibrated_path`),
            NCHW elsewhere.
        skip_background: evaluate a CoNeS neural field on the foreground pixels only (same output;
            other architectures always run on whole slices). ``False`` runs whole slices, the
            authors' protocol, which the benchmark times beside it.
    """

    device: str = "auto"
    batch_size: int | None = None
    slice_axis: int = 0
    precision: Precision = Precision.AUTO
    channels_last: bool | None = None
    skip_background: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", parse_precision(self.precision))
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {self.slice_axis!r}")


def _ordered_sources(sources: Mapping[Sequence | str, np.ndarray], required: tuple[Sequence, ...]) -> list[np.ndarray]:
    available = {parse_sequence(name): volume for name, volume in sources.items()}
    missing = [seq.display_name for seq in required if seq not in available]
    if missing:
        have = ", ".join(seq.display_name for seq in available) or "none"
        raise ValueError(f"the model needs source sequence(s) {', '.join(missing)}; given: {have}")
    volumes = [np.asarray(available[seq]) for seq in required]
    shapes = {volume.shape for volume in volumes}
    if len(shapes) != 1 or volumes[0].ndim != 3:
        described = ", ".join(f"{seq.display_name} {v.shape}" for seq, v in zip(required, volumes, strict=True))
        raise ValueError(f"source volumes must be 3D and share one grid, got {described}")
    return volumes


def synthesize_volume(
    generator: CoNeSGenerator,
    sources: Mapping[Sequence | str, np.ndarray],
    source_order: tuple[Sequence, ...],
    target_order: tuple[Sequence, ...],
    normalization: NormalizationConfig,
    options: SynthesisOptions | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[Sequence, np.ndarray]:
    """Synthesize the target volume(s) from co-registered source volumes of one grid.

    Args:
        generator: a trained generator (its mode and device are restored afterwards).
        sources: raw scanner-intensity volumes ``(z, y, x)`` keyed by sequence (any known
            spelling); extra sequences are ignored.
        source_order: the channel order the model was trained with (from its model card).
        target_order: the sequences the model's output channels are.
        normalization: the model's normalization config (from its model card).
        options: device, batch size, slice axis, precision; defaults when ``None``. The compute
            path (number format, memory layout) is chosen here, so every caller gets the fast one.
        progress: called as ``progress(done, total)`` after each batch of slices.
        should_cancel: polled between batches; returning True aborts with :class:`SynthesisCancelled`.

    Returns:
        One float32 volume per target, on the input grid, in the output scale of ``normalization``
        (background exactly 0).

    Raises:
        ValueError: a required source is missing, shapes differ, a volume holds NaN or is
            constant, or the foreground is empty.
        SynthesisCancelled: ``should_cancel`` returned True.
    """
    return _synthesize_volume(
        generator, sources, source_order, target_order, normalization, options, progress, should_cancel, None
    )[0]


def synthesize_volume_with_uncertainty(
    generator: CoNeSGenerator,
    sources: Mapping[Sequence | str, np.ndarray],
    source_order: tuple[Sequence, ...],
    target_order: tuple[Sequence, ...],
    normalization: NormalizationConfig,
    options: SynthesisOptions | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    perturbations: PerturbedPasses | None = None,
) -> tuple[dict[Sequence, np.ndarray], dict[Sequence, np.ndarray]]:
    """:func:`synthesize_volume` and the voxel-wise uncertainty of each target (:mod:`cones.trust.uncertainty`).

    The synthesized volumes are exactly those :func:`synthesize_volume` returns; each extra pass of
    ``perturbations`` (default: one per source) costs one more network pass per slice.

    Returns:
        (synthesized volumes, uncertainty volumes): the uncertainty on the output scale, 0 outside the foreground.
    """
    perturbations = perturbations or PerturbedPasses.one_per_source(len(source_order))
    outputs, uncertainty = _synthesize_volume(
        generator, sources, source_order, target_order, normalization, options, progress, should_cancel, perturbations
    )
    assert uncertainty is not None
    return outputs, uncertainty


def _synthesize_volume(
    generator: CoNeSGenerator,
    sources: Mapping[Sequence | str, np.ndarray],
    source_order: tuple[Sequence, ...],
    target_order: tuple[Sequence, ...],
    normalization: NormalizationConfig,
    options: SynthesisOptions | None,
    progress: ProgressCallback | None,
    should_cancel: Callable[[], bool] | None,
    perturbations: PerturbedPasses | None,
) -> tuple[dict[Sequence, np.ndarray], dict[Sequence, np.ndarray] | None]:
    options = options or SynthesisOptions()
    volumes = _ordered_sources(sources, source_order)
    mask = foreground_mask(volumes, normalization)
    normalized = np.stack(
        [
            normalize_volume(volume, mask, normalization, name=seq.display_name)
            for seq, volume in zip(source_order, volumes, strict=True)
        ]
    )
    axis = options.slice_axis
    slice_has_foreground = mask.any(axis=tuple(a for a in range(3) if a != axis))
    indices = np.flatnonzero(slice_has_foreground)
    stacked = np.moveaxis(normalized, axis + 1, 0)  # (slices, channels, rows, cols)
    foreground_slices = np.moveaxis(mask, axis, 0)
    network = slice_network(generator, options.skip_background)
    output = np.full((stacked.shape[0], len(target_order), *stacked.shape[2:]), -1.0, dtype=np.float32)
    spread = None if perturbations is None else np.zeros_like(output)

    device = resolve_device(options.device)
    batch_size = options.batch_size or (GPU_BATCH_SIZE if device.type == "cuda" else 1)
    path = choose_path(options.precision, device, options.channels_last)
    was_training = generator.training
    original_device = next(generator.parameters()).device
    generator.eval().to(device, memory_format=path.memory_format)
    if options.channels_last is None and len(indices):
        first = torch.from_numpy(np.ascontiguousarray(stacked[indices[:batch_size]])).to(device)
        path = calibrated_path(generator, first, path, device)
    logger.info("synthesizing %d of %d slices on %s (%s)", len(indices), stacked.shape[0], device, path.name)
    try:
        with torch.inference_mode(), path.autocast(device):
            for start in range(0, len(indices), batch_size):
                if should_cancel is not None and should_cancel():
                    raise SynthesisCancelled("synthesis cancelled")
                batch_indices = indices[start : start + batch_size]
                batch = torch.from_numpy(np.ascontiguousarray(stacked[batch_indices])).to(device)
                batch = batch.contiguous(memory_format=path.memory_format)
                foreground = torch.from_numpy(np.ascontiguousarray(foreground_slices[batch_indices])).to(device)
                plain = network(batch, foreground)
                output[batch_indices] = plain.float().cpu().numpy()
                if spread is not None:
                    deviation = perturbations.spread(
                        lambda inputs, foreground=foreground: network(inputs, foreground), batch, plain
                    )
                    spread[batch_indices] = deviation.cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, len(indices)), len(indices))
    finally:
        generator.train(was_training).to(original_device, memory_format=torch.contiguous_format)
    synthesized = np.moveaxis(output, 0, axis + 1)
    outputs = {
        target: denormalize_volume(synthesized[channel], mask, normalization)
        for channel, target in enumerate(target_order)
    }
    if spread is None:
        return outputs, None
    # A deviation on the network's [-1, 1] scale is output_scale / 2 on the output scale.
    spread = np.moveaxis(spread, 0, axis + 1) * np.float32(normalization.output_scale / 2.0)
    uncertainty = {
        target: np.where(mask, perturbations.combine(spread[channel], outputs[target]), np.float32(0.0))
        for channel, target in enumerate(target_order)
    }
    return outputs, uncertainty


def slice_network(
    generator: torch.nn.Module, skip_background: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(slices, foreground) -> image`` as synthesis runs it: the foreground-only field where it applies.

    Other architectures (and ``skip_background=False``) run whole slices and ignore the foreground.
    """
    if skip_background and isinstance(generator, CoNeSGenerator):
        return generator.forward_foreground
    return lambda batch, _foreground: generator(batch).image


def model_sources(
    required: tuple[Sequence, ...], images: Mapping[Sequence | str, sitk.Image]
) -> dict[Sequence, sitk.Image]:
    """The images a model needs, in its channel order, from images keyed by any sequence spelling.

    Raises:
        ValueError: a needed sequence is missing; the message lists what is needed and what was given.
    """
    available = {parse_sequence(name): image for name, image in images.items()}
    missing = [seq.display_name for seq in required if seq not in available]
    if missing:
        have = ", ".join(seq.display_name for seq in available) or "none"
        raise ValueError(f"the model needs source sequence(s) {', '.join(missing)}; given: {have}")
    return {seq: available[seq] for seq in required}


def synthesize_images(
    model: LoadedModel,
    images: Mapping[Sequence | str, sitk.Image],
    resample: bool = False,
    options: SynthesisOptions | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    input_checks: bool = True,
    strict: bool = False,
) -> dict[Sequence, sitk.Image]:
    """Synthesize a model's targets from SimpleITK images, with the exact geometry of the inputs.

    The model's first source is the reference grid. Sources are turned into the canonical
    orientation the model was trained in (a lossless voxel permutation), synthesized slice by slice
    along the model's axis, turned back, and given the reference's size, spacing, origin and
    direction, so the output overlays the inputs exactly, oblique and left-handed grids included.

    Args:
        model: a loaded model (generator and card).
        images: source images keyed by sequence name; extra sequences are ignored.
        resample: resample sources on other grids onto the reference (linear) instead of refusing.
        options: device and batch size; the slice axis always comes from the model card.
        progress: see :func:`synthesize_volume`.
        should_cancel: see :func:`synthesize_volume`.
        input_checks: check the sources against the model's training domain first
            (:func:`cones.domain.check_inputs`; findings are logged as warnings); off only for
            callers that ran the checks themselves.
        strict: refuse the sources on a warning of the input checks too.

    Raises:
        ValueError: a needed source is missing, grids differ without ``resample``, or a volume is
            unusable (NaN, constant, empty foreground).
        InputsRefused: the input checks refused the sources (a ``ValueError``).
    """
    return _synthesize_images(
        model, images, resample, options, progress, should_cancel, input_checks, strict, perturbations=None
    )[0]


def synthesize_images_with_uncertainty(
    model: LoadedModel,
    images: Mapping[Sequence | str, sitk.Image],
    resample: bool = False,
    options: SynthesisOptions | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    input_checks: bool = True,
    strict: bool = False,
    perturbations: PerturbedPasses | None = None,
) -> tuple[dict[Sequence, sitk.Image], dict[Sequence, sitk.Image]]:
    """:func:`synthesize_images` and each target's voxel-wise uncertainty map on the same grid.

    The synthesized images are exactly those of :func:`synthesize_images`; the uncertainty
    (:mod:`cones.trust.uncertainty`, on the output scale, 0 outside the foreground) costs one more
    network pass per slice for each perturbed pass (default: one per source).
    """
    perturbations = perturbations or PerturbedPasses.one_per_source(len(model.card.sources))
    outputs, uncertainty = _synthesize_images(
        model, images, resample, options, progress, should_cancel, input_checks, strict, perturbations
    )
    assert uncertainty is not None
    return outputs, uncertainty


def _synthesize_images(
    model: LoadedModel,
    images: Mapping[Sequence | str, sitk.Image],
    resample: bool,
    options: SynthesisOptions | None,
    progress: ProgressCallback | None,
    should_cancel: Callable[[], bool] | None,
    input_checks: bool,
    strict: bool,
    perturbations: PerturbedPasses | None,
) -> tuple[dict[Sequence, sitk.Image], dict[Sequence, sitk.Image] | None]:
    card = model.card
    sources = model_sources(card.sources, images)
    if input_checks:
        report = check_inputs(card, sources, Preparation.AS_GIVEN)
        for finding in report.warnings:
            logger.warning("%s", finding.message)
        report.raise_if_refused(strict)
    reference = sources[card.sources[0]]
    if resample:
        sources = {seq: resample_to_reference(image, reference) for seq, image in sources.items()}
    else:
        check_same_grid({seq.display_name: image for seq, image in sources.items()}, "input")
    canonical_reference, original_orientation = to_canonical(reference)
    arrays = {seq: image_to_array(to_canonical(image)[0]) for seq, image in sources.items()}
    options = options or SynthesisOptions()
    if options.slice_axis != card.slice_axis:
        options = replace(options, slice_axis=card.slice_axis)
    volumes, uncertainty = _synthesize_volume(
        model.generator,
        arrays,
        card.sources,
        card.targets,
        card.normalization,
        options,
        progress,
        should_cancel,
        perturbations,
    )

    def on_reference_grid(volume: np.ndarray) -> sitk.Image:
        image = reorient(array_to_image(volume, canonical_reference), original_orientation)
        image.CopyInformation(reference)
        return image

    outputs = {target: on_reference_grid(volume) for target, volume in volumes.items()}
    if uncertainty is None:
        return outputs, None
    return outputs, {target: on_reference_grid(volume) for target, volume in uncertainty.items()}
