"""Input checks against a model's training domain, run before any synthesis.

A CoNeS model draws a plausible image from whatever it is given: a label map given as T1, one file
given for every source, T2 and FLAIR swapped, a head with its skull, 0.5 x 6 mm voxels. None of these
fails; each yields a wrong image that looks right. These checks name such inputs before anything is
computed. Errors (the input cannot be what its name says) refuse the synthesis; warnings (the input
is outside what the model was trained on) are reported, and refuse it too under ``strict``.

The CLI, the console API (:func:`cones.inference.synthesize_images`, :func:`cones.preprocessing.synthesize_raw`),
the Slicer batch script and the Slicer panel all call :func:`check_inputs`. It needs only numpy and
SimpleITK, so the Slicer panel can run it in Slicer's own process whenever a selector changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from cones.data.geometry import grid_difference, resample_to_reference, to_canonical
from cones.domain.measure import BrainSamples, SourceMeasurement, in_plane_spacing
from cones.domain.record import DOMAIN_PERCENTILES, SLICE_PLANES, TrainingDomain
from cones.domain.similarity import normalized_mutual_information_of_values
from cones.sequences import Sequence, parse_sequence

if TYPE_CHECKING:
    from cones.checkpoint.card import ModelCard

__all__ = [
    "CheckResult",
    "InputCheckReport",
    "InputsRefused",
    "MirrorFit",
    "Preparation",
    "Severity",
    "check_inputs",
    "flipped_left_right",
    "mirror_fit",
    "mirrored_about",
]

LABEL_MAP_MAX_VALUES = 16
"""An "image" whose foreground holds 2 to this many distinct integer values is a label map (a mask, with one
value, is found constant)."""
IDENTICAL_MIN_CORRELATION = 0.99
"""Two sources correlating this well inside the brain are one image (no two MRI sequences do: T1-T1ce ~0.9)."""
SPACING_MAX_RATIO = 1.5
"""In-plane voxels more than this many times finer or coarser than the training ones are outside the domain."""
MISREGISTRATION_MIN_SHIFT_MM = 4.0
"""A source whose match with the first source peaks this far from where it lies is not registered to it."""
MISREGISTRATION_MIN_GAIN = 0.005
"""... and only when moving it gains at least this much normalized mutual information (noise is ~0.001)."""
MIRRORED_MIN_GAIN = 0.005
"""A source whose left-right mirror matches the first source this much better (normalized mutual information,
each at its best shift) is mirrored: refused. Brains are nearly symmetric; their tumour and ventricles are not:
on the 36 public BraTS 2018 cases, T2 and FLAIR as given matched T1 0.002-0.084 better than their mirrors
(median 0.028; only 1 of 72 under 0.006), so a mirrored one gains as much."""
MIRRORED_WARN_GAIN = 0.002
"""... and a smaller gain above this (twice the noise) is a warning: the sign is clear, the brain too symmetric."""
SKULL_MIN_FIELD_OF_VIEW_MM = 100.0
"""A volume shorter than this along every axis cannot hold a head (a brain alone is about 170 x 140 x 120 mm): its
border and foreground say nothing about a skull, so the skull check leaves it out."""
SWAP_MAX_DISTANCE_RATIO = 0.8
"""Sequences are reported swapped when another assignment matches the training contrasts this much better."""
SWAP_MIN_DISTANCE_GAIN = 0.05
"""... and by at least this much (clean real cases lie 0.31-0.34 from two others' means, swapped ones 0.42-0.58)."""
INTENSITY_TOLERANCE = 0.25
"""How far (in normalized [0, 1] units) a brain percentile may lie outside the training cases' range (real
cases lie up to 0.22 outside the range of two others: scanners and tumours vary)."""
PERCENTILE_WEIGHT = 2.0
"""Weight of the brain percentiles against the tissue ranks in the contrast distance: the ranks alone cannot
tell T1 from T2 (each is the other's inverse), their percentiles can (T1 is mostly bright, T2 mostly dark)."""

_PROBE_VOXEL_MM = 2.0
_PROBE_STEPS = 4
_PROBE_BINS = 32
_PROBE_SAMPLES = 200_000
"""At most this many voxels, an even stride through the probe grid, estimate each mutual information of the
registration probe (13 estimates per source): a 32-bin histogram changes little beyond, and Slicer's panel runs
these checks in its own thread, where a full-size volume's 1.1 million probe voxels took seconds."""


class Severity(StrEnum):
    """How a finding is treated: an error refuses the input; a warning does under ``strict``."""

    ERROR = "error"
    WARNING = "warning"


class Preparation(StrEnum):
    """What happens to the inputs between the checks and the network.

    ``AS_GIVEN``: synthesized as they are (every check applies). ``PENDING``: ``--prepare`` will
    register them, extract the brain and resample them (only the checks on what they are apply now).
    ``DONE``: the output of that preparation (registration, skull and spacing are its business).
    """

    AS_GIVEN = "as-given"
    PENDING = "pending"
    DONE = "done"


@dataclass(frozen=True)
class CheckResult:
    """One finding: which check, how serious, which volumes, and a sentence naming what was expected."""

    check: str
    severity: Severity
    sequences: tuple[Sequence, ...]
    message: str

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CheckResult:
        return cls(
            str(data["check"]),
            Severity(data["severity"]),
            tuple(parse_sequence(name) for name in data["sequences"]),
            str(data["message"]),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "sequences": [sequence.value for sequence in self.sequences],
            "message": self.message,
        }


class InputsRefused(ValueError):
    """The inputs failed a check; the message lists every refusing finding on one line."""


@dataclass(frozen=True)
class InputCheckReport:
    """All findings of one run of the checks, and which checks ran or were left out (and why)."""

    results: tuple[CheckResult, ...] = ()
    checked: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if result.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if result.severity is Severity.WARNING)

    def merged(self, later: InputCheckReport) -> InputCheckReport:
        """This report followed by a later stage's (the checks after ``--prepare``)."""
        skipped = {name: why for name, why in self.skipped.items() if name not in later.checked}
        skipped.update(later.skipped)
        checked = tuple(dict.fromkeys((*self.checked, *later.checked)))
        return InputCheckReport((*self.results, *later.results), checked, skipped)

    def raise_if_refused(self, strict: bool = False) -> None:
        """Raise :class:`InputsRefused` on any error, or on any warning when ``strict``."""
        refusing = self.results if strict else self.errors
        if refusing:
            raise InputsRefused("; ".join(result.message for result in refusing))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> InputCheckReport:
        """Read a report back from :meth:`to_dict` (the JSON beside an output, as the Slicer module does).

        Raises:
            ValueError: the data is not such a report.
        """
        try:
            return cls(
                tuple(CheckResult.from_dict(result) for result in data["results"]),
                tuple(str(name) for name in data["checked"]),
                {str(name): str(why) for name, why in data["skipped"].items()},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an input-check report: {error!r}") from None

    def to_dict(self) -> dict[str, object]:
        return {
            "results": [result.to_dict() for result in self.results],
            "checked": list(self.checked),
            "skipped": dict(self.skipped),
        }


def check_inputs(
    card: ModelCard,
    images: Mapping[Sequence | str, sitk.Image],
    preparation: Preparation | str = Preparation.AS_GIVEN,
    labels: Mapping[Sequence | str, str] | None = None,
) -> InputCheckReport:
    """Check a model's source images against what they claim to be and what the model was trained on.

    Args:
        card: the model's card (sources, normalization, slice axis, training domain).
        images: the sources keyed by sequence (any spelling); extra sequences are ignored, missing
            ones are left to the synthesis to refuse.
        preparation: whether ``--prepare`` will handle, or has handled, registration, skull and spacing.
        labels: how a finding about one source names it (the command line adds the file: ``T2 (t2.nii.gz)``);
            default: the sequence's name.

    Returns:
        The findings; nothing is raised here (see :meth:`InputCheckReport.raise_if_refused`).
    """
    preparation = Preparation(preparation)
    given = {parse_sequence(name): image for name, image in images.items()}
    sources = {sequence: given[sequence] for sequence in card.sources if sequence in given}
    if not sources:
        return InputCheckReport()
    named = {parse_sequence(name): label for name, label in (labels or {}).items()}
    return _Checks(card, sources, preparation, named).report()


class _Checks:
    """One run of the checks; volumes are read from the images once."""

    def __init__(
        self,
        card: ModelCard,
        sources: dict[Sequence, sitk.Image],
        preparation: Preparation,
        labels: Mapping[Sequence, str],
    ) -> None:
        self.card, self.preparation, self.labels = card, preparation, labels
        self.domain: TrainingDomain = card.training_domain
        self.images = {sequence: to_canonical(image)[0] for sequence, image in sources.items()}
        self.reference = next(iter(self.images.values()))
        self.results: list[CheckResult] = []
        self.checked: list[str] = []
        self.skipped: dict[str, str] = {}

    def report(self) -> InputCheckReport:
        usable = self._voxel_checks()
        on_grid = self._on_reference_grid(usable)
        if len(on_grid) > 1:
            self._ran("identical-sources")
            self._identical(on_grid)
        if self.preparation is Preparation.AS_GIVEN:
            stripped = self._skull(usable)
            self._spacing(usable)
        else:
            stripped = True
            for name in ("skull", "spacing"):
                self.skipped[name] = "handled by --prepare"
        if self.preparation is Preparation.PENDING:
            for name in ("registration", "mirrored"):
                self.skipped[name] = "run after --prepare has registered the sources"
        else:
            self._registration(on_grid)
            self._mirrored(usable, on_grid)
        self._contrasts(on_grid, stripped)
        return InputCheckReport(tuple(self.results), tuple(self.checked), dict(self.skipped))

    def _ran(self, name: str) -> None:
        if name not in self.checked:
            self.checked.append(name)

    def _find(self, check: str, severity: Severity, sequences: tuple[Sequence, ...], message: str) -> None:
        self.results.append(CheckResult(check, severity, sequences, message))

    def _voxel_checks(self) -> dict[Sequence, sitk.Image]:
        """Empty, constant and label-map volumes: errors, and such volumes take no part in later checks."""
        threshold = self.card.normalization.foreground_threshold
        usable = {}
        self._ran("empty-or-constant")
        self._ran("label-map")
        for sequence, image in self.images.items():
            name = sequence.display_name
            values = sitk.GetArrayViewFromImage(image)
            foreground = values[values > threshold]
            if foreground.size == 0:
                self._find(
                    "empty-or-constant",
                    Severity.ERROR,
                    (sequence,),
                    f"{name}: empty foreground (no voxel above {threshold:g})",
                )
                continue
            distinct = np.unique(foreground[:: max(1, foreground.size // 1_000_000)])
            if 1 < distinct.size <= LABEL_MAP_MAX_VALUES and np.all(distinct == np.round(distinct)):
                shown = ", ".join(f"{value:g}" for value in distinct[:8])
                self._find(
                    "label-map",
                    Severity.ERROR,
                    (sequence,),
                    f"{name}: it holds only {distinct.size} distinct integer values ({shown}); it is a label map, "
                    "not an MR image",
                )
                continue
            low, high = np.percentile(
                foreground, [self.card.normalization.lower_percentile, self.card.normalization.upper_percentile]
            )
            if not high > low:
                self._find(
                    "empty-or-constant",
                    Severity.ERROR,
                    (sequence,),
                    f"{name}: the volume is constant ({low:g}) inside its foreground (a mask, not an MR image?)",
                )
                continue
            usable[sequence] = image
        return usable

    def _on_reference_grid(self, usable: dict[Sequence, sitk.Image]) -> dict[Sequence, np.ndarray]:
        """Usable sources as arrays on the first source's grid (resampled through the scanner frame if needed)."""
        return {sequence: self._array_on_reference(image) for sequence, image in usable.items()}

    def _array_on_reference(self, image: sitk.Image) -> np.ndarray:
        reference = self.images[self.card.sources[0]]
        if grid_difference(image, reference) is not None:
            image = resample_to_reference(image, reference)
        return sitk.GetArrayFromImage(image).astype(np.float32, copy=False)

    def _identical(self, arrays: dict[Sequence, np.ndarray]) -> None:
        threshold = self.card.normalization.foreground_threshold
        for (first, a), (second, b) in itertools.combinations(arrays.items(), 2):
            pair = (first, second)
            names = f"{first.display_name} and {second.display_name}"
            if np.array_equal(a, b):
                self._find(
                    "identical-sources",
                    Severity.ERROR,
                    pair,
                    f"{names} are the same image; give each sequence its own scan",
                )
                continue
            inside = (a > threshold) | (b > threshold)
            step = max(1, int(np.count_nonzero(inside)) // 500_000)
            correlation = float(np.corrcoef(a[inside][::step], b[inside][::step])[0, 1])
            if correlation >= IDENTICAL_MIN_CORRELATION:
                self._find(
                    "identical-sources",
                    Severity.ERROR,
                    pair,
                    f"{names} are nearly the same image (correlation {correlation:.3f} inside the brain; different "
                    "sequences stay below 0.9); give each sequence its own scan",
                )

    def _skull(self, usable: dict[Sequence, sitk.Image]) -> bool:
        """Warn about a skull the model never saw; returns whether every source is skull-stripped.

        A volume too small to hold a head gets no warning: the test takes any of them for a head with
        skull (its foreground is smaller than a brain), and nothing in it can tell. It still counts as
        not stripped, so the contrast checks, which need a whole brain, wait for it too.
        """
        from cones.preprocessing.brain_extraction import looks_skull_stripped

        stripped = {sequence: looks_skull_stripped(image) for sequence, image in usable.items()}
        judged = tuple(sequence for sequence, image in usable.items() if _can_hold_a_head(image))
        if usable and not judged:
            field_of_view = " x ".join(f"{side:.0f}" for side in _field_of_view(next(iter(usable.values()))))
            self.skipped["skull"] = (
                f"the field of view ({field_of_view} mm) is too small to hold a head, so skull and brain cannot be "
                f"told apart (under {SKULL_MIN_FIELD_OF_VIEW_MM:g} mm along every axis)"
            )
            return all(stripped.values())
        if not self.domain.skull_stripped:
            self.skipped["skull"] = "the model was trained on heads with skull"
            return all(stripped.values())
        self._ran("skull")
        with_skull = tuple(sequence for sequence in judged if not stripped[sequence])
        if with_skull:
            names = ", ".join(sequence.display_name for sequence in with_skull)
            self._find(
                "skull",
                Severity.WARNING,
                with_skull,
                f"{names}: the head still has skull and scalp (background not 0), but the model was trained on "
                "skull-stripped brains; pass --prepare to extract the brain",
            )
        return all(stripped.values())

    def _spacing(self, usable: dict[Sequence, sitk.Image]) -> None:
        self._ran("spacing")
        trained = self.domain.in_plane_spacing_mm
        plane = SLICE_PLANES[self.card.slice_axis]
        for sequence, image in usable.items():
            spacing = in_plane_spacing(image, self.card.slice_axis)
            ratios = [value / expected for value, expected in zip(spacing, trained, strict=True)]
            if any(ratio > SPACING_MAX_RATIO or ratio < 1 / SPACING_MAX_RATIO for ratio in ratios):
                self._find(
                    "spacing",
                    Severity.WARNING,
                    (sequence,),
                    f"{sequence.display_name}: {_mm(spacing)} voxels in the model's {plane} slices, but it was trained "
                    f"on {_mm(trained)}; pass --prepare to resample onto the model's grid",
                )

    def _registration(self, arrays: dict[Sequence, np.ndarray]) -> None:
        if len(arrays) < 2 or self.card.sources[0] not in arrays:
            return
        self._ran("registration")
        reference_sequence = self.card.sources[0]
        sampled, voxel_mm = _probe_grid(self.reference.GetSpacing()[::-1])
        reference = arrays[reference_sequence][sampled]
        advice = (
            "--prepare's registration did not align it: check that it is the same patient and session"
            if self.preparation is Preparation.DONE
            else "pass --prepare to co-register the sources"
        )
        for sequence, volume in arrays.items():
            if sequence is reference_sequence:
                continue
            shift_mm, gain = _best_shift(reference, volume[sampled], voxel_mm)
            distance = float(np.linalg.norm(shift_mm))
            if distance >= MISREGISTRATION_MIN_SHIFT_MM and gain >= MISREGISTRATION_MIN_GAIN:
                self._find(
                    "registration",
                    Severity.WARNING,
                    (sequence,),
                    f"{sequence.display_name}: probably not registered to {reference_sequence.display_name} (the two "
                    f"match best when it is moved by {distance:.0f} mm); {advice}",
                )

    def _mirrored(self, usable: dict[Sequence, sitk.Image], arrays: dict[Sequence, np.ndarray]) -> None:
        """Refuse, or warn about, a source whose left-right mirror matches the first source better.

        A converter or a hand-made header can flip the voxels and keep the header: the network then
        puts the tumour on the wrong side, and nothing else notices. As given, the mirror is the
        source's own voxels flipped. After ``--prepare``, whose registration has already refused a
        source whose registered mirror fits clearly better (:func:`cones.preprocessing.register`),
        it is the registered source mirrored about the brain's centre: a head tilted in its grid
        blurs this mirror, so here it mostly names the unclear cases.

        A source the ``registration`` check found out of place gets no mirror warning, only a refusal:
        its mirror comparison is made at the wrong pose (a raw T2 tilted 15 degrees against its T1
        scored as "may be mirrored"), and the registration warning already says what to do.
        """
        reference_sequence = self.card.sources[0]
        if len(arrays) < 2 or reference_sequence not in arrays:
            return
        self._ran("mirrored")
        reference = arrays[reference_sequence]
        misplaced = {
            sequence for result in self.results if result.check == "registration" for sequence in result.sequences
        }
        for sequence, volume in arrays.items():
            if sequence is reference_sequence:
                continue
            if self.preparation is Preparation.AS_GIVEN:
                mirrored = self._array_on_reference(flipped_left_right(usable[sequence]))
            else:
                mirrored = mirrored_about(volume, reference)
            fit = mirror_fit(reference, volume, mirrored, self.reference.GetSpacing()[::-1])
            severity = fit.severity()
            if severity is Severity.WARNING and sequence in misplaced:
                continue
            if severity is not None:
                label = self.labels.get(sequence, sequence.display_name)
                self._find("mirrored", severity, (sequence,), fit.message(label, reference_sequence.display_name))

    def _contrasts(self, arrays: dict[Sequence, np.ndarray], stripped: bool) -> None:
        names = ("sequence-contrast", "intensity-range")
        if not self.domain.statistics:
            for name in names:
                self.skipped[name] = "the model file records no training statistics"
            return
        if not stripped:
            for name in names:
                self.skipped[name] = "the brain is not extracted (pass --prepare)"
            return
        if self.preparation is Preparation.PENDING:
            for name in names:
                self.skipped[name] = "run after --prepare has extracted the brain"
            return
        if set(arrays) != set(self.card.sources) or any(r.severity is Severity.ERROR for r in self.results):
            for name in names:
                self.skipped[name] = "an input was refused"
            return
        threshold = self.card.normalization.foreground_threshold
        brain = np.zeros(next(iter(arrays.values())).shape, dtype=bool)
        for volume in arrays.values():
            brain |= volume > threshold
        for name in names:
            self._ran(name)
        samples = BrainSamples(arrays, brain, self.card.normalization)
        self._swapped(samples)
        self._intensity_range(samples.measure(self.card.sources))

    def _swapped(self, samples: BrainSamples) -> None:
        order = self.card.sources
        distances = {}
        for assignment in itertools.permutations(order):
            # ``assignment[i]`` is the given volume taken as the model's ``order[i]``
            measured = samples.measure(assignment)
            distances[assignment] = self._distance({order[i]: measured[given] for i, given in enumerate(assignment)})
        as_given = distances[order]
        best = min(distances, key=distances.get)
        if best == order or not (
            distances[best] <= SWAP_MAX_DISTANCE_RATIO * as_given
            and as_given - distances[best] >= SWAP_MIN_DISTANCE_GAIN
        ):
            return
        moved = tuple(given for i, given in enumerate(best) if given is not order[i])
        looks_like = ", ".join(
            f"the {given.display_name} input looks like {order[i].display_name}"
            for i, given in enumerate(best)
            if given is not order[i]
        )
        self._find(
            "sequence-contrast",
            Severity.WARNING,
            moved,
            f"{' and '.join(sequence.display_name for sequence in moved)} are probably swapped: {looks_like} in "
            f"the model's training data (contrast distance {distances[best]:.2f} against {as_given:.2f} as given); "
            "check which file is which",
        )

    def _distance(self, measured: Mapping[Sequence, SourceMeasurement]) -> float:
        """Mean difference from the training means: brain percentiles, and tissue ranks of all but the first source."""
        percentile_gaps, rank_gaps = [], []
        for statistics in self.domain.statistics:
            measurement = measured[statistics.sequence]
            percentile_gaps.extend(np.abs(np.subtract(measurement.percentiles, statistics.percentiles)))
            if statistics.sequence is not self.card.sources[0]:
                rank_gaps.extend(np.abs(np.subtract(measurement.tissue_ranks, statistics.tissue_ranks)))
        return float(PERCENTILE_WEIGHT * np.mean(percentile_gaps) + (np.mean(rank_gaps) if rank_gaps else 0.0))

    def _intensity_range(self, measured: Mapping[Sequence, SourceMeasurement]) -> None:
        for statistics in self.domain.statistics:
            values = measured[statistics.sequence].percentiles
            outside = [
                (percentile, value, low, high)
                for percentile, value, low, high in zip(
                    DOMAIN_PERCENTILES, values, statistics.percentiles_low, statistics.percentiles_high, strict=True
                )
                if value < low - INTENSITY_TOLERANCE or value > high + INTENSITY_TOLERANCE
            ]
            if outside:
                percentile, value, low, high = max(outside, key=lambda item: max(item[2] - item[1], item[1] - item[3]))
                self._find(
                    "intensity-range",
                    Severity.WARNING,
                    (statistics.sequence,),
                    f"{statistics.sequence.display_name}: brain intensities unlike the training data (its "
                    f"{percentile:g}th percentile is at {value:.2f} of its range; training cases {low:.2f}-{high:.2f})",
                )


def _mm(spacing: tuple[float, ...]) -> str:
    return " x ".join(f"{value:.2g}" for value in spacing) + " mm"


def _field_of_view(image: sitk.Image) -> tuple[float, ...]:
    """The extent (mm) of a volume along each of its axes: voxels times spacing."""
    return tuple(size * spacing for size, spacing in zip(image.GetSize(), image.GetSpacing(), strict=True))


def _can_hold_a_head(image: sitk.Image) -> bool:
    return max(_field_of_view(image)) >= SKULL_MIN_FIELD_OF_VIEW_MM


@dataclass(frozen=True)
class MirrorFit:
    """How well a source as given and its left-right mirror match the reference.

    Each is the normalized mutual information at its best placement: the best shift within the
    registration probe's reach (+-8 mm per axis, :func:`mirror_fit`), so a mirror plane a few mm
    off the brain's midline costs nothing; with ``--prepare``, each registered to the reference.
    """

    as_given: float
    mirrored: float

    @property
    def gain(self) -> float:
        return self.mirrored - self.as_given

    def severity(self) -> Severity | None:
        """An error from :data:`MIRRORED_MIN_GAIN` on, a warning from :data:`MIRRORED_WARN_GAIN`, else None."""
        if self.gain >= MIRRORED_MIN_GAIN:
            return Severity.ERROR
        return Severity.WARNING if self.gain >= MIRRORED_WARN_GAIN else None

    def message(self, name: str, reference_name: str) -> str:
        """The finding's sentence: ``name`` is the source (and its file), ``reference_name`` the first source.

        A slight gain may also come from another patient's scan whose tumour lies on the other side.
        """
        fit = f"(normalized mutual information {self.mirrored:.3f} against {self.as_given:.3f} as given)"
        if self.severity() is Severity.ERROR:
            return (
                f"{name} looks mirrored left-right against {reference_name}: its mirror image matches "
                f"{reference_name} better {fit}; check that its voxels are not flipped against its header"
            )
        return (
            f"{name} may be mirrored left-right against {reference_name}, or another patient's scan: its mirror "
            f"image matches {reference_name} slightly better {fit}; check its header and that it is the same patient"
        )


def mirror_fit(
    reference: np.ndarray, as_given: np.ndarray, mirrored: np.ndarray, spacing: SequenceOf[float]
) -> MirrorFit:
    """:class:`MirrorFit` of (z, y, x) volumes on one grid, ``spacing`` (mm) in the same axis order.

    They are compared on the registration probe's 2 mm grid, a few hundred thousand voxels at most:
    a mirrored tumour shows there as well as at full resolution.
    """
    sampled, voxel_mm = _probe_grid(spacing)
    reference = reference[sampled]
    return MirrorFit(
        _best_match(reference, as_given[sampled], voxel_mm), _best_match(reference, mirrored[sampled], voxel_mm)
    )


def mirrored_about(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """A (z, y, x) volume in canonical (LPS) order mirrored left-right about the centre of ``brain``'s non-zero voxels.

    The brain's centre, not the grid's: a registered source lies where the reference's brain lies.
    """
    columns = np.count_nonzero(brain, axis=(0, 1))
    width = volume.shape[2]
    centre = float(np.average(np.arange(width), weights=columns)) if columns.any() else (width - 1) / 2
    return np.roll(volume[:, :, ::-1], round(2 * centre - (width - 1)), axis=2)


def flipped_left_right(image: sitk.Image) -> sitk.Image:
    """``image`` (canonical, LPS) with its voxels flipped left-right and its header kept (``sitk.Flip`` moves both)."""
    flipped = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(image)[:, :, ::-1])
    flipped.CopyInformation(image)
    return flipped


def _probe_grid(spacing: SequenceOf[float]) -> tuple[tuple[slice, ...], np.ndarray]:
    """Strides that sample a volume of ``spacing`` (mm, numpy axis order) every ~2 mm, and the sampled voxel size."""
    spacing = np.asarray(spacing, dtype=float)
    step = np.maximum(1, np.round(_PROBE_VOXEL_MM / spacing)).astype(int)
    return tuple(slice(None, None, int(s)) for s in step), spacing * step


def _best_match(reference: np.ndarray, moving: np.ndarray, voxel_mm: np.ndarray) -> float:
    """Normalized mutual information of ``moving`` with ``reference`` at the best shift :func:`_best_shift` finds."""
    return _nmi(reference, moving) + _best_shift(reference, moving, voxel_mm)[1]


def _best_shift(reference: np.ndarray, moving: np.ndarray, voxel_mm: np.ndarray) -> tuple[np.ndarray, float]:
    """Along each axis, the shift (mm) of ``moving`` within +-4 probe voxels that best matches ``reference``.

    Returns the shift vector and the gain in normalized mutual information over no shift. A
    registered pair peaks at no shift; each axis is probed on its own (12 + 1 evaluations, not 729).
    """
    unshifted = _nmi(reference, moving)
    shift = np.zeros(3)
    best_gain = 0.0
    for axis in range(3):
        scores = {
            steps: _nmi(reference, np.roll(moving, steps, axis=axis))
            for steps in range(-_PROBE_STEPS, _PROBE_STEPS + 1)
            if steps
        }
        steps, score = max(scores.items(), key=lambda item: item[1])
        if score > unshifted:
            shift[axis] = steps * voxel_mm[axis]
            best_gain = max(best_gain, score - unshifted)
    return shift, best_gain


def _nmi(first: np.ndarray, second: np.ndarray) -> float:
    """Normalized mutual information where either volume has signal."""
    stride = max(1, first.size // _PROBE_SAMPLES)
    first, second = first.ravel()[::stride], second.ravel()[::stride]
    inside = (first != 0) | (second != 0)
    return normalized_mutual_information_of_values(first[inside], second[inside], bins=_PROBE_BINS)
