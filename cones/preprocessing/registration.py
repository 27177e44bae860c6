"""Rigid (or affine) co-registration of one patient's sequences, with a refusal when it fails.

Clinical sequences are separate acquisitions: the patient moves between them, and each has its own
grid. Resampling them onto one grid without registering lays different anatomy on top of each
other and yields a plausible wrong synthesis. Within one session the head is a rigid body, so a
rigid transform (6 parameters) is the right model; an affine one is offered for scanner
distortions between sessions.

SimpleITK's ``ImageRegistrationMethod`` is used (Mattes mutual information, which compares
different contrasts; three resolution levels; a fixed sampling seed, so a run repeats itself up to
the rounding of multi-threaded sums).
Registration starts from the scanner's own coordinates (the identity), because sequences of one
session are already close there; a result far from that start, or one whose images share little
information afterwards, is a failure to report, never a result to synthesize from.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import SimpleITK as sitk

from cones.data.geometry import to_canonical
from cones.domain.checks import MirrorFit, Severity, flipped_left_right
from cones.domain.similarity import HISTOGRAM_BINS, normalized_mutual_information_of_values
from cones.preprocessing.alignment import PERTURBATION_DEG, PERTURBATION_MM, PoseFigures, measure_pose

__all__ = [
    "MAX_ROTATION_DEG",
    "MAX_TRANSLATION_MM",
    "MIN_SHARPNESS",
    "MIRRORED_MIN_SHARE",
    "RegistrationFailed",
    "RegistrationResult",
    "TransformKind",
    "align",
    "check_registrable",
    "check_registration",
    "normalized_mutual_information",
    "normalized_mutual_information_of_values",
    "register",
    "registered_mirror_nmi",
]

logger = logging.getLogger(__name__)

MAX_ROTATION_DEG = 30.0
"""A rigid result rotated further than this from the scanner's coordinates is a failure: patients
do not turn their head that far between two sequences of one session."""
MAX_TRANSLATION_MM = 50.0
"""A result moved further than this (at the brain's centre) from the scanner's coordinates is a failure."""
MIN_SHARPNESS = 0.0016
"""A registration is refused when moving its pose by 2 mm or 2 degrees (:mod:`cones.preprocessing.alignment`) loses
less normalized mutual information than this on average: no pose fits it sharply, as with another patient's scan
or a registration stopped away from the answer. Chosen on the 30 training cases of
``Testing/experiments/real_split.tsv`` (``Testing/experiments/registration_calibration.py``), halfway between the
least sharp right registration and the sharpest wrong one; reported on the 9 validation cases (README, "Raw scans")."""

MIRRORED_MIN_SHARE = 0.1
"""A source is refused as mirrored when its registered mirror gains this share of the information the registered
source shares with the reference (normalized mutual information - 1), and at least
:data:`cones.domain.checks.MIRRORED_MIN_GAIN`. Two registrations of one pair differ with the sampling: by under
0.001 on real pairs, by up to 0.015 (4 % of the 0.37 they share) on generated phantoms, whose tissues have sharp
edges. Mirrored real T2 and FLAIR gained 0.016-0.082 (0.54-6.4 times what they shared) on 9 public BraTS 2018
cases, 0.028-0.029 (1.1-1.4 times) on the native case; as given, their mirrors lost as much."""

_SHRINK_FACTORS = (4, 2, 1)
"""Each resolution level shrinks the images this many times (coarse to fine)."""
MIN_REGISTRATION_VOXELS = 2 * _SHRINK_FACTORS[0]
"""A volume with fewer voxels along an axis keeps under 2 there at the coarsest level, where ITK's smoothing fails
(under 4 voxels) or a slab aligns to anything: too thin to register."""

_SEED = 20240917
_SAMPLES = 150_000
"""Metric samples per evaluation: enough for a stable mutual information, few enough that a 1 mm
BraTS-size volume registers in seconds (20 % of its 8.9 million voxels took 23 s per sequence)."""


class TransformKind(StrEnum):
    """The transform model: rigid within a session, affine across sessions or for distortions."""

    RIGID = "rigid"
    AFFINE = "affine"


class RegistrationFailed(ValueError):
    """A registration that did not converge to a plausible alignment; the message names the sequence."""


@dataclass(frozen=True)
class RegistrationResult:
    """A source registered to the reference, with the figures its check judged.

    Attributes:
        transform: maps points of the reference's physical space to the source's (what
            ``sitk.Resample(source, reference_grid, transform)`` needs).
        metric: the final Mattes mutual information (negative; lower is better).
        pose: what the pose shares with the reference inside the brain, and how sharply that falls off
            around it (:class:`cones.preprocessing.alignment.PoseFigures`).
        mirrored_normalized_mutual_information: the same for the source's left-right mirror, registered too.
        rotation_deg: rotation angle of the transform's linear part.
        translation_mm: how far the brain's centre moved.
        seconds: time taken.
    """

    transform: sitk.Transform
    metric: float
    pose: PoseFigures
    mirrored_normalized_mutual_information: float
    rotation_deg: float
    translation_mm: float
    seconds: float

    @property
    def normalized_mutual_information(self) -> float:
        """Normalized mutual information of the reference and the registered source inside the brain."""
        return self.pose.normalized_mutual_information

    def to_dict(self) -> dict[str, float | list[float]]:
        """The figures, and the limits they were judged against, for the output's sidecar."""
        return {
            "rotation_deg": round(self.rotation_deg, 3),
            "translation_mm": round(self.translation_mm, 3),
            "normalized_mutual_information": round(self.normalized_mutual_information, 5),
            "sharpness": round(self.pose.sharpness, 5),
            "min_sharpness": MIN_SHARPNESS,
            "mirrored_normalized_mutual_information": round(self.mirrored_normalized_mutual_information, 5),
            "seconds": round(self.seconds, 2),
            "transform_parameters": [float(value) for value in self.transform.GetParameters()],
        }


def register(
    reference: sitk.Image,
    source: sitk.Image,
    *,
    name: str,
    kind: TransformKind | str = TransformKind.RIGID,
    reference_mask: sitk.Image | None = None,
    reference_name: str = "the reference",
) -> RegistrationResult:
    """Register ``source`` to ``reference`` and check the result.

    Args:
        reference: the fixed image (the sequence whose grid the output takes).
        source: the moving image, on a grid of its own.
        name: the source's name for messages (``"T2"``).
        kind: rigid (default) or affine.
        reference_mask: the brain on ``reference``'s grid: the rotation centre, and where the result is
            judged (default: where the reference is non-zero). The optimised metric uses the whole
            head: on thick slices a brain-only metric measured less robust (real native case: brain
            overlap 0.80 against 0.945 with the whole head).
        reference_name: the reference's name for messages (``"T1"``).

    Returns:
        The checked :class:`RegistrationResult`.

    Raises:
        RegistrationFailed: the source looks mirrored left-right against the reference (no rigid
            transform can mirror, so its low similarity would otherwise read as another patient's;
            see :class:`cones.domain.checks.MirrorFit`), the result is further than :data:`MAX_ROTATION_DEG` or
            :data:`MAX_TRANSLATION_MM` from the start, or it is no sharp peak of similarity
            (:data:`MIN_SHARPNESS`). The message says what failed and what to try.
    """
    started = time.perf_counter()
    kind = TransformKind(kind)
    fixed, moving = sitk.Cast(reference, sitk.sitkFloat32), sitk.Cast(source, sitk.sitkFloat32)
    brain = reference_mask if reference_mask is not None else sitk.Cast(fixed != 0, sitk.sitkUInt8)
    centre = _centre(fixed, reference_mask)
    initial = _identity(kind)
    initial.SetCenter(centre)
    transform, metric = align(fixed, moving, initial)

    rotation, translation = _distance_from_start(transform, centre)
    pose = measure_pose(fixed, moving, transform, brain)
    mirrored = registered_mirror_nmi(fixed, moving, kind, brain)
    result = RegistrationResult(transform, metric, pose, mirrored, rotation, translation, time.perf_counter() - started)
    logger.info(
        "%s registered: rotation %.1f deg, translation %.1f mm, NMI %.3f, sharpness %.4f, %.1f s",
        name,
        rotation,
        translation,
        pose.normalized_mutual_information,
        pose.sharpness,
        result.seconds,
    )
    check_registration(result, name, reference_name)
    return result


def check_registration(result: RegistrationResult, name: str, reference_name: str = "the reference") -> None:
    """Refuse a registration that is not the answer: a mirrored source, a pose too far, or no sharp peak, in this order.

    Raises:
        RegistrationFailed: the message names ``name``, what failed, its figures, and what to try.
    """
    refusal = _refusal(result, name, reference_name)
    if refusal is not None:
        raise RegistrationFailed(refusal)


def _refusal(result: RegistrationResult, name: str, reference_name: str) -> str | None:
    """What is wrong with a registration, as the message to the user, or None."""
    pose = result.pose
    mirror = MirrorFit(pose.normalized_mutual_information, result.mirrored_normalized_mutual_information)
    if mirror.severity() is Severity.ERROR and mirror.gain >= MIRRORED_MIN_SHARE * pose.shared:
        return mirror.message(name, reference_name)
    moves = f"moving it by {PERTURBATION_MM:.0f} mm or {PERTURBATION_DEG:.0f} degrees"
    if result.rotation_deg > MAX_ROTATION_DEG or result.translation_mm > MAX_TRANSLATION_MM:
        return (
            f"registering {name} failed: the result is {result.rotation_deg:.0f} degrees and "
            f"{result.translation_mm:.0f} mm from the scanner's alignment (at most {MAX_ROTATION_DEG:.0f} degrees and "
            f"{MAX_TRANSLATION_MM:.0f} mm expected within a session); check that it is the same patient and session"
        )
    if pose.sharpness < MIN_SHARPNESS:
        return (
            f"registering {name} failed: it fits {reference_name} nowhere sharply ({moves} lowers their normalized "
            f"mutual information, {pose.normalized_mutual_information:.3f}, by {pose.sharpness:.4f} on average; "
            f"{MIN_SHARPNESS} or more expected of one patient's scans): another patient's scan, "
            "or a registration stopped away from the answer; check that it is the same patient and session and "
            f"that both files' orientation headers are right, then align {name} roughly to {reference_name} (e.g. in "
            "Slicer's Transforms module) and run again"
        )
    return None


def check_registrable(image: sitk.Image, name: str) -> None:
    """Refuse a volume too thin to register (fewer than :data:`MIN_REGISTRATION_VOXELS` along an axis), before any work.

    Raises:
        ValueError: it is; the message names ``name`` and the volume's size.
    """
    size = image.GetSize()
    if min(size) < MIN_REGISTRATION_VOXELS:
        voxels = " x ".join(str(n) for n in size)
        raise ValueError(
            f"{name} is too thin to register: {voxels} voxels, and registration needs at least "
            f"{MIN_REGISTRATION_VOXELS} along every axis (give the whole volume, not a few slices of it)"
        )


def normalized_mutual_information(
    first: sitk.Image, second: sitk.Image, mask: sitk.Image | None = None, bins: int = HISTOGRAM_BINS
) -> float:
    """(H(A) + H(B)) / H(A, B) of two images on one grid: 1 when independent, 2 when one determines the other.

    Unlike Mattes' metric value it does not depend on the images' sizes or the sampling, so one
    threshold serves every case. Computed inside ``mask`` when given, else where either image is
    non-zero.
    """
    a, b = sitk.GetArrayViewFromImage(first).ravel(), sitk.GetArrayViewFromImage(second).ravel()
    inside = sitk.GetArrayViewFromImage(mask).ravel() > 0 if mask is not None else (a != 0) | (b != 0)
    return normalized_mutual_information_of_values(a[inside], b[inside], bins)


def _identity(kind: TransformKind) -> sitk.Transform:
    return sitk.Euler3DTransform() if kind is TransformKind.RIGID else sitk.AffineTransform(3)


def align(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform) -> tuple[sitk.Transform, float]:
    """The transform (reference points to source points) that registration finds from ``initial``, and its metric."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(min(0.2, _SAMPLES / fixed.GetNumberOfPixels()), _SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=200, relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(_SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    transform = method.Execute(fixed, moving)
    return transform, method.GetMetricValue()


def registered_mirror_nmi(fixed: sitk.Image, moving: sitk.Image, kind: TransformKind, mask: sitk.Image | None) -> float:
    """Normalized mutual information in the brain of the source's left-right mirror, registered as the source was.

    No rigid transform mirrors, so only registering the mirror tells whether it fits better; a
    mirror about a fixed plane of the reference would not, as a head is seldom straight in its
    grid. The mirror starts from its centre of mass on the reference's: flipping the voxels moves
    a head that is off the middle of its grid.
    """
    mirror = flipped_left_right(to_canonical(moving)[0])
    initial = sitk.CenteredTransformInitializer(
        fixed, mirror, _identity(kind), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    transform, _ = align(fixed, mirror, initial)
    return normalized_mutual_information(fixed, sitk.Resample(mirror, fixed, transform), mask)


def _centre(image: sitk.Image, mask: sitk.Image | None) -> tuple[float, float, float]:
    """The brain's centroid when a mask is given, else the image's centre (the rotation centre)."""
    if mask is not None:
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
        if statistics.HasLabel(1):
            return statistics.GetCentroid(1)
    size = np.asarray(image.GetSize(), dtype=float)
    return image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2))


def _distance_from_start(transform: sitk.Transform, centre: tuple[float, float, float]) -> tuple[float, float]:
    """Rotation angle (degrees) of the linear part and displacement (mm) of ``centre``."""
    composite = sitk.CompositeTransform(transform)
    moved = np.asarray(composite.TransformPoint(centre))
    step = 1.0
    axes = [
        (np.asarray(composite.TransformPoint(tuple(np.asarray(centre) + step * unit))) - moved) / step
        for unit in np.eye(3)
    ]
    linear = np.stack(axes, axis=1)
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    angle = math.degrees(math.acos(float(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))))
    return angle, float(np.linalg.norm(moved - np.asarray(centre)))
