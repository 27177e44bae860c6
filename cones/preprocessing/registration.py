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

__all__ = [
    "MAX_ROTATION_DEG",
    "MAX_TRANSLATION_MM",
    "MIN_NORMALIZED_MUTUAL_INFORMATION",
    "MIRRORED_MIN_SHARE",
    "RegistrationFailed",
    "RegistrationResult",
    "TransformKind",
    "check_registrable",
    "normalized_mutual_information",
    "normalized_mutual_information_of_values",
    "register",
]

logger = logging.getLogger(__name__)

MAX_ROTATION_DEG = 30.0
"""A rigid result rotated further than this from the scanner's coordinates is a failure: patients
do not turn their head that far between two sequences of one session."""
MAX_TRANSLATION_MM = 50.0
"""A result moved further than this (at the brain's centre) from the scanner's coordinates is a failure."""
MIN_NORMALIZED_MUTUAL_INFORMATION = 1.025
"""Normalized mutual information (1 = independent, 2 = identical; 32 bins) inside the brain below
which the registered images are taken as not aligned. Calibrated on the real cases of shared/data:
T2 and FLAIR aligned with T1 measured 1.031-1.072 (three co-registered cases) and 1.048-1.055
(the native case after registration); moved by 10 or 20 mm, or replaced by another patient's,
1.004-1.020."""

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
    """A source registered to the reference.

    Attributes:
        transform: maps points of the reference's physical space to the source's (what
            ``sitk.Resample(source, reference_grid, transform)`` needs).
        metric: the final Mattes mutual information (negative; lower is better).
        normalized_mutual_information: NMI of the reference and the resampled source inside the brain.
        rotation_deg: rotation angle of the transform's linear part.
        translation_mm: how far the brain's centre moved.
        seconds: time taken.
    """

    transform: sitk.Transform
    metric: float
    normalized_mutual_information: float
    rotation_deg: float
    translation_mm: float
    seconds: float


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
        reference_mask: the brain on ``reference``'s grid: the rotation centre, and where the result's
            normalized mutual information is measured. The optimised metric uses the whole head: on
            thick slices a brain-only metric measured less robust (real native case: brain overlap
            0.80 against 0.945 with the whole head).
        reference_name: the reference's name for messages (``"T1"``).

    Returns:
        The checked :class:`RegistrationResult`.

    Raises:
        RegistrationFailed: the source looks mirrored left-right against the reference (no rigid
            transform can mirror, so its low similarity would otherwise read as another patient's;
            see :class:`cones.domain.checks.MirrorFit`), the result is further than :data:`MAX_ROTATION_DEG` or
            :data:`MAX_TRANSLATION_MM` from the start, or its normalized mutual information inside the
            brain is below :data:`MIN_NORMALIZED_MUTUAL_INFORMATION`.
    """
    started = time.perf_counter()
    kind = TransformKind(kind)
    fixed, moving = sitk.Cast(reference, sitk.sitkFloat32), sitk.Cast(source, sitk.sitkFloat32)
    centre = _centre(fixed, reference_mask)
    initial = _identity(kind)
    initial.SetCenter(centre)
    transform, metric = _align(fixed, moving, initial)

    rotation, translation = _distance_from_start(transform, centre)
    nmi = normalized_mutual_information(fixed, sitk.Resample(moving, fixed, transform), reference_mask)
    result = RegistrationResult(transform, metric, nmi, rotation, translation, time.perf_counter() - started)
    logger.info(
        "%s registered: rotation %.1f deg, translation %.1f mm, NMI %.3f, %.1f s",
        name,
        rotation,
        translation,
        nmi,
        result.seconds,
    )
    mirror = MirrorFit(nmi, _registered_mirror_nmi(fixed, moving, kind, reference_mask))
    if mirror.severity() is Severity.ERROR and mirror.gain >= MIRRORED_MIN_SHARE * (nmi - 1):
        raise RegistrationFailed(mirror.message(name, reference_name))
    if rotation > MAX_ROTATION_DEG or translation > MAX_TRANSLATION_MM:
        raise RegistrationFailed(
            f"registering {name} failed: the result is {rotation:.0f} degrees and {translation:.0f} mm from the "
            f"scanner's alignment (at most {MAX_ROTATION_DEG:.0f} degrees and {MAX_TRANSLATION_MM:.0f} mm expected "
            "within a session); check that it is the same patient and session"
        )
    if nmi < MIN_NORMALIZED_MUTUAL_INFORMATION:
        raise RegistrationFailed(
            f"registering {name} failed: after registration it shares too little with the reference "
            f"(normalized mutual information {nmi:.3f} < {MIN_NORMALIZED_MUTUAL_INFORMATION}); check that it is "
            "the same patient"
        )
    return result


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


def _align(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform) -> tuple[sitk.Transform, float]:
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


def _registered_mirror_nmi(
    fixed: sitk.Image, moving: sitk.Image, kind: TransformKind, mask: sitk.Image | None
) -> float:
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
    transform, _ = _align(fixed, mirror, initial)
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
