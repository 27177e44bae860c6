"""Raw clinical scans in, the missing sequence on the reference's own grid out.

The order of the stages follows what each needs: the brain is extracted on the reference (the
mask centres the working grid and, after registration, masks every source); every other source
is registered to the reference; all sources are resampled once, through their transform, onto the
working grid (:mod:`cones.preprocessing.grid`) and masked; the network synthesizes there; the
result goes back onto the reference's grid, zero outside the brain. One resampling per source
keeps the images as sharp as they can be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import SimpleITK as sitk

from cones.checkpoint import LoadedModel
from cones.device import resolve_device
from cones.domain.checks import InputCheckReport, Preparation, check_inputs
from cones.inference import (
    SynthesisCancelled,
    SynthesisOptions,
    model_sources,
    synthesize_images,
    synthesize_images_with_uncertainty,
)
from cones.preprocessing.brain_extraction import (
    BrainExtractor,
    DeepBetExtractor,
    brain_mask_of_stripped,
    looks_skull_stripped,
)
from cones.preprocessing.grid import back_to_reference, onto_grid, working_grid
from cones.preprocessing.registration import RegistrationResult, TransformKind, check_registrable, register
from cones.sequences import Sequence, parse_sequence

__all__ = [
    "STAGES",
    "PreparationReport",
    "PreparedCase",
    "RawSynthesis",
    "StageProgress",
    "prepare_sources",
    "synthesize_raw",
]

logger = logging.getLogger(__name__)

STAGES = ("extract-brain", "register", "synthesize")
"""The stages :class:`StageProgress` reports, in order."""

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; ``stage`` is one of :data:`STAGES`."""


@dataclass(frozen=True)
class PreparationReport:
    """What preparation did, for the user and the logs.

    Attributes:
        reference: the sequence whose grid the output takes.
        skull_stripped: the reference was found already skull-stripped (no extraction ran).
        extractor: the brain extractor used, or None.
        registrations: per registered source, its result (transform, similarity, distance from the start).
        working_size: (columns, rows, slices) of the working grid.
        working_spacing: its voxel size in mm.
        seconds: time per stage.
    """

    reference: Sequence
    skull_stripped: bool
    extractor: str | None
    registrations: Mapping[Sequence, RegistrationResult]
    working_size: tuple[int, int, int]
    working_spacing: tuple[float, float, float]
    seconds: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per stage, as the command line prints it."""
        brain = "already skull-stripped" if self.skull_stripped else f"brain extracted with {self.extractor}"
        lines = [f"reference {self.reference.display_name}: {brain}"]
        for sequence, result in self.registrations.items():
            lines.append(
                f"{sequence.display_name} registered to {self.reference.display_name}: rotation "
                f"{result.rotation_deg:.1f} deg, translation {result.translation_mm:.1f} mm, normalized mutual "
                f"information {result.normalized_mutual_information:.3f}, sharpness {result.pose.sharpness:.4f}"
            )
        size = " x ".join(str(n) for n in self.working_size)
        spacing = " x ".join(f"{s:.2f}" for s in self.working_spacing)
        lines.append(f"working grid {size} voxels of {spacing} mm")
        lines.append("time: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in self.seconds.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """What preparation did, with each registration's checked figures, for the output's sidecar."""
        return {
            "reference": self.reference.value,
            "skull_stripped": bool(self.skull_stripped),
            "extractor": self.extractor,
            "registrations": {sequence.value: result.to_dict() for sequence, result in self.registrations.items()},
            "working_size": list(self.working_size),
            "working_spacing_mm": [round(value, 4) for value in self.working_spacing],
            "seconds": {stage: round(seconds, 2) for stage, seconds in self.seconds.items()},
        }


@dataclass(frozen=True)
class PreparedCase:
    """Sources ready for the network, and what is needed to go back.

    Attributes:
        sources: each source as given, on its own grid.
        working: each source on the working grid, registered, zero outside the brain.
        reference_image: the reference as given (its grid is the output's).
        brain_mask: the brain on the reference's grid (uint8).
        transforms: per source, the transform mapping reference points to that source's points
            (identity for the reference); ``sitk.Resample(source, reference, transform)`` registers it.
        report: what was done.
    """

    sources: Mapping[Sequence, sitk.Image]
    working: Mapping[Sequence, sitk.Image]
    reference_image: sitk.Image
    brain_mask: sitk.Image
    transforms: Mapping[Sequence, sitk.Transform]
    report: PreparationReport

    @functools.cached_property
    def registered(self) -> dict[Sequence, sitk.Image]:
        """Every source on the reference's own grid through its transform (not masked); resampled once, on first use."""
        return {
            sequence: onto_grid(image, self.reference_image, self.transforms[sequence])
            for sequence, image in self.sources.items()
        }


@dataclass(frozen=True)
class RawSynthesis:
    """What :func:`synthesize_raw` returns: the synthesized sequence(s) on the reference's grid, and the preparation."""

    outputs: Mapping[Sequence, sitk.Image]
    prepared: PreparedCase
    checks: InputCheckReport
    """The input checks run on the prepared sources, before the synthesis."""
    uncertainty: Mapping[Sequence, sitk.Image] | None = None
    """Each output's uncertainty map on the reference's grid (zero outside the brain), when asked for."""


def prepare_sources(
    images: Mapping[Sequence | str, sitk.Image],
    reference: Sequence | str,
    *,
    kind: TransformKind | str = TransformKind.RIGID,
    extractor: BrainExtractor | None = None,
    device: str = "cpu",
    progress: StageProgress | None = None,
    should_cancel: Callable[[], bool] | None = None,
    labels: Mapping[Sequence, str] | None = None,
) -> PreparedCase:
    """Co-register raw sources to the reference, extract the brain, and lay everything on the working grid.

    Args:
        images: the sources, each on its own grid, keyed by sequence.
        reference: the sequence whose grid the output takes (a T1-weighted one: the brain is
            extracted on it).
        kind: rigid (one session) or affine registration.
        extractor: the brain extractor (default: deepbet, made only when the reference is not
            already skull-stripped).
        device: where the extractor runs.
        progress: told of each stage's start and end.
        should_cancel: polled between stages; True aborts with :class:`~cones.inference.SynthesisCancelled`.
        labels: how messages name each source (the command line adds its file); default: the sequence's name.

    Raises:
        ValueError: the reference is not among ``images``, a source is too thin to register
            (:func:`~cones.preprocessing.registration.check_registrable`, before any work), no brain is found,
            or deepbet is missing.
        RegistrationFailed: a registration failed, or a source looks mirrored (the message names the sequence).
        SynthesisCancelled: ``should_cancel`` returned True.
    """
    sources = {parse_sequence(name): image for name, image in images.items()}
    reference = parse_sequence(reference)
    if reference not in sources:
        given = ", ".join(sequence.display_name for sequence in sources)
        raise ValueError(f"the reference {reference.display_name} is not among the given sequences ({given})")
    reference_image = sources[reference]
    names = {sequence: (labels or {}).get(sequence, sequence.display_name) for sequence in sources}
    if len(sources) > 1:
        for sequence, image in sources.items():
            check_registrable(image, names[sequence])
    stages = _Stages(progress, should_cancel)

    with stages.stage("extract-brain", 1):
        stripped = looks_skull_stripped(reference_image)
        if stripped:
            mask = brain_mask_of_stripped(reference_image)
        else:
            extractor = extractor if extractor is not None else DeepBetExtractor(device=device)
            mask = extractor.extract(reference_image)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise ValueError(
                f"no brain found in {names[reference]}: check that it is a head scan of the sequence it is given as "
                "(--reference names another source to extract the brain from), or give skull-stripped inputs"
            )
    others = [sequence for sequence in sources if sequence is not reference]
    registrations = {}
    with stages.stage("register", len(others)):
        for done, sequence in enumerate(others, start=1):
            registrations[sequence] = register(
                reference_image,
                sources[sequence],
                name=names[sequence],
                kind=kind,
                reference_mask=mask,
                reference_name=reference.display_name,
            )
            stages.advance("register", done, len(others))
            stages.check_cancel()
    transforms = {sequence: result.transform for sequence, result in registrations.items()}
    transforms[reference] = sitk.Transform()
    grid = working_grid(reference_image, mask)
    working_mask = onto_grid(mask, grid, labels=True)
    working = {
        sequence: sitk.Mask(onto_grid(image, grid, transforms[sequence]), working_mask)
        for sequence, image in sources.items()
    }
    summary = PreparationReport(
        reference=reference,
        skull_stripped=stripped,
        extractor=None if stripped else extractor.name,
        registrations=registrations,
        working_size=grid.GetSize(),
        working_spacing=grid.GetSpacing(),
        seconds=dict(stages.seconds),
    )
    return PreparedCase(sources, working, reference_image, mask, transforms, summary)


def synthesize_raw(
    model: LoadedModel,
    images: Mapping[Sequence | str, sitk.Image],
    *,
    reference: Sequence | str | None = None,
    kind: TransformKind | str = TransformKind.RIGID,
    extractor: BrainExtractor | None = None,
    options: SynthesisOptions | None = None,
    progress: StageProgress | None = None,
    should_cancel: Callable[[], bool] | None = None,
    strict: bool = False,
    on_checks: Callable[[InputCheckReport], None] | None = None,
    uncertainty: bool = False,
    labels: Mapping[Sequence, str] | None = None,
) -> RawSynthesis:
    """Synthesize a model's target(s) from raw clinical scans (the console API of ``cones synthesize --prepare``).

    Args:
        model: a loaded model.
        images: the sources as acquired, each on its own grid, keyed by sequence (any known spelling).
        reference: the sequence whose grid the output takes (default: the model's first source).
        kind: rigid or affine registration.
        extractor: the brain extractor (default: deepbet).
        options: where and how the network runs.
        progress: told of every stage (:data:`STAGES`) and every synthesized slice.
        should_cancel: polled between stages and slices.
        strict: refuse the prepared sources on a warning of the input checks too.
        on_checks: given the input checks' report on the prepared sources before the synthesis
            (default: its warnings are logged).
        uncertainty: also compute each output's uncertainty map
            (:func:`cones.inference.synthesize_images_with_uncertainty`; one more network pass per source).
        labels: how messages name each source (the command line adds its file); default: the sequence's name.

    Returns:
        The outputs on the reference's grid (zero outside the brain) and the :class:`PreparedCase`
        (working-grid sources, brain mask, transforms, report with timings).

    Raises:
        ValueError, RegistrationFailed, SynthesisCancelled: see :func:`prepare_sources` and
            :func:`cones.inference.synthesize_images`.
        InputsRefused: the input checks refused the prepared sources (a ``ValueError``).
    """
    card = model.card
    sources = model_sources(card.sources, images)
    reference = parse_sequence(reference) if reference is not None else card.sources[0]
    options = options or SynthesisOptions()
    prepared = prepare_sources(
        sources,
        reference,
        kind=kind,
        extractor=extractor,
        device=resolve_device(options.device).type,
        progress=progress,
        should_cancel=should_cancel,
        labels=labels,
    )
    checks = check_inputs(card, prepared.working, Preparation.DONE, labels)
    (on_checks or _log_findings)(checks)
    checks.raise_if_refused(strict)
    stages = _Stages(progress, should_cancel)
    synthesis = synthesize_images_with_uncertainty if uncertainty else synthesize_images
    with stages.stage("synthesize", 0):
        working = synthesis(
            model,
            prepared.working,
            options=options,
            progress=lambda done, total: stages.advance("synthesize", done, total),
            should_cancel=should_cancel,
            input_checks=False,
        )
    working_outputs, working_uncertainty = working if uncertainty else (working, None)

    def on_reference(images: Mapping[Sequence, sitk.Image]) -> dict[Sequence, sitk.Image]:
        return {
            target: back_to_reference(image, prepared.reference_image, prepared.brain_mask)
            for target, image in images.items()
        }

    report = dataclasses.replace(prepared.report, seconds={**prepared.report.seconds, **stages.seconds})
    return RawSynthesis(
        on_reference(working_outputs),
        dataclasses.replace(prepared, report=report),
        checks,
        on_reference(working_uncertainty) if working_uncertainty is not None else None,
    )


def _log_findings(report: InputCheckReport) -> None:
    for finding in report.warnings:
        logger.warning("%s", finding.message)


class _Stages:
    """Progress, cancel checks and timings of the stages."""

    def __init__(self, progress: StageProgress | None, should_cancel: Callable[[], bool] | None) -> None:
        self._progress, self._should_cancel = progress, should_cancel
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str, total: int) -> Iterator[None]:
        """Report the stage's start and end (``done`` 0 and ``total``), time it, and check for cancel around it."""
        self.check_cancel()
        self.advance(name, 0, total)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        logger.info("%s: %.1f s", name, self.seconds[name])
        self.advance(name, total, total)
        self.check_cancel()

    def advance(self, name: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(name, done, total)

    def check_cancel(self) -> None:
        if self._should_cancel is not None and self._should_cancel():
            raise SynthesisCancelled("cancelled")
