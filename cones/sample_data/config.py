"""What a synthetic sample case looks like: grid, anatomy variation, tumour, and scanner imperfections.

The defaults reproduce the BraTS 2018-2021 layout (240 x 240 x 155 voxels of 1 mm) with the variation
seen between real patients: a few millimetres of non-linear anatomical difference, head positions a
few degrees apart, gliomas of 1-5 cm diameter, a few percent of noise and a visible but correctable
coil bias. Tests shrink the grid (e.g. ``shape=(48, 48, 32), spacing_mm=5.0``) to stay fast; the field
of view, and with it the brain, keeps its physical size.
"""

from __future__ import annotations

from dataclasses import dataclass

from cones.config import JsonConfig

__all__ = ["SampleDataConfig"]

_MIN_SIZE = 8
_MAX_SPACING_MM = 8.0
_MAX_TUMOUR_RADIUS_MM = 35.0  # deeper than this the tumour no longer fits inside a hemisphere


@dataclass(frozen=True)
class SampleDataConfig(JsonConfig):
    """Shape of every generated case; frozen and JSON round-trippable so a dataset can be regenerated.

    Attributes:
        shape: (x, y, z) voxels of the saved NIfTI volumes, BraTS order and size by default.
        spacing_mm: isotropic voxel size. Coarser grids sample a box-filtered template, so small test
            volumes still show smooth partial-volume anatomy instead of aliasing.
        tumour_radius_mm: (low, high) range of the contrast-enhancing tumour's outer radius; each case
            draws uniformly from it.
        oedema_radius_factor: (low, high) range of how far oedema reaches, as a multiple of the tumour
            radius; oedema reaches this far along white matter and less far into grey matter.
        mass_effect: radius of the tissue volume the tumour displaces, as a fraction of its radius
            (0 = purely infiltrative, 1 = the whole tumour pushes tissue aside).
        deformation_mm: standard deviation of the smooth non-linear displacement applied to the template,
            which makes every case a different brain.
        rotation_deg: largest head rotation about each axis (uniform in +-rotation_deg).
        scaling: largest relative change of head size per axis (uniform in 1 +- scaling).
        translation_mm: largest head shift per axis (uniform in +-translation_mm).
        noise_level: Rician noise standard deviation as a fraction of the white matter signal of each
            sequence (0.03 means an SNR of about 33 in white matter).
        bias_field_strength: peak log-amplitude of the multiplicative coil bias; 0.15 means intensities vary
            between exp(-0.15) and exp(0.15) times their true value across the brain.
        acquisition_variation: domain randomization of the acquisition, per case. 0 (the default)
            gives every case the same textbook protocols; ``v > 0`` multiplies each sequence's TR and
            TE, and the gadolinium dose, by factors drawn log-uniformly from [1 / (1 + v), 1 + v],
            T1 and T1ce separately (pre- and post-contrast scans are often different sequences), and
            re-times FLAIR's inversion to keep CSF dark. Real scans differ in exactly these ways, and
            a model that only ever saw one look learns that look's intensity calibration.
    """

    shape: tuple[int, int, int] = (240, 240, 155)
    spacing_mm: float = 1.0
    tumour_radius_mm: tuple[float, float] = (12.0, 24.0)
    oedema_radius_factor: tuple[float, float] = (1.4, 2.2)
    mass_effect: float = 0.8
    deformation_mm: float = 3.0
    rotation_deg: float = 6.0
    scaling: float = 0.06
    translation_mm: float = 4.0
    noise_level: float = 0.03
    bias_field_strength: float = 0.15
    acquisition_variation: float = 0.0

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or not all(isinstance(size, int) and size >= _MIN_SIZE for size in self.shape):
            raise ValueError(f"SampleDataConfig.shape must be three integers >= {_MIN_SIZE}, got {self.shape!r}")
        if not 0.0 < self.spacing_mm <= _MAX_SPACING_MM:
            raise ValueError(f"SampleDataConfig.spacing_mm must be in (0, {_MAX_SPACING_MM}], got {self.spacing_mm!r}")
        _require_range(self, "tumour_radius_mm", self.tumour_radius_mm, 1.0, _MAX_TUMOUR_RADIUS_MM)
        _require_range(self, "oedema_radius_factor", self.oedema_radius_factor, 1.0, 4.0)
        _require_within(self, "mass_effect", self.mass_effect, 0.0, 1.0)
        _require_within(self, "scaling", self.scaling, 0.0, 0.5)
        _require_within(self, "rotation_deg", self.rotation_deg, 0.0, 45.0)
        _require_within(self, "acquisition_variation", self.acquisition_variation, 0.0, 2.0)
        for name in ("deformation_mm", "translation_mm", "noise_level", "bias_field_strength"):
            _require_within(self, name, getattr(self, name), 0.0, float("inf"))


def _require_within(owner: object, name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{type(owner).__name__}.{name} must be in [{low}, {high}], got {value!r}")


def _require_range(owner: object, name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"{type(owner).__name__}.{name} must be (low, high) with {low} <= low <= high <= {high}, got {value!r}"
        )
