"""One synthetic patient: warped template anatomy, a glioma, and four co-registered MR sequences.

A case is built in the order a real patient's images come about: anatomy (the template pulled through
a random deformation, head pose and the tumour's mass effect), pathology (tumour zones replacing and
infiltrating tissue), contrast agent distribution, then acquisition (signal equations, coil bias,
Rician noise) and skull stripping. Every random choice comes from one ``numpy.random.Generator``
seeded by the caller and split into independent streams per stage, so a seed always yields the same
case and switching off one effect (e.g. ``noise_level=0``) leaves everything else unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cones.sample_data.config import SampleDataConfig
from cones.sample_data.enhancement import ENHANCING_TUMOUR_MM, normal_enhancement
from cones.sample_data.fields import GridAxes
from cones.sample_data.geometry import brats_affine, output_grid, random_warp
from cones.sample_data.scanner import bias_field, rician_noise
from cones.sample_data.signal import PROTOCOLS, Protocol, Tissue, mixed_signal, varied_protocol
from cones.sample_data.template import Template
from cones.sample_data.tumour import TumourZones, draw_tumour
from cones.sequences import Sequence

__all__ = ["BRATS_LABELS", "SampleCase", "build_case"]

BRATS_LABELS = {"necrosis": 1, "oedema": 2, "enhancing": 4}  # BraTS 2018-2021 label values (3 is unused)
_RECEIVER_GAIN = 1000.0  # arbitrary scanner units; the same for all sequences, so T1 and T1ce are comparable
_HEALTHY = (Tissue.CSF, Tissue.GREY_MATTER, Tissue.WHITE_MATTER)
_STREAMS = ("pose", "tumour", "zones", "vessels", "scanner", "acquisition")
"""Independent random streams, one per stage; a new stage is appended, so earlier streams keep their draws."""


@dataclass(frozen=True)
class SampleCase:
    """A generated case with its ground truth; all volumes are (x, y, z) arrays on the same grid.

    Attributes:
        case_id: folder and file name stem, e.g. ``"CONES-SAMPLE-000"``.
        images: float32 intensity per sequence; exactly 0 outside ``brain_mask`` (skull-stripped).
        label: uint8 BraTS labels: 0 background and healthy tissue, 1 necrotic core (BraTS 2018-2021
            "necrotic and non-enhancing tumour core"), 2 peritumoural oedema, 4 enhancing tumour.
        brain_mask: True inside the brain.
        tissues: ground-truth volume fraction of each tissue; they sum to 1 inside the brain.
        contrast_mm: gadolinium concentration in mmol/L (enhancing rim, vessels, meninges), the only
            place where T1ce differs from T1 beyond bias and noise (with the default, fixed acquisition).
        affine: 4x4 voxel-to-RAS matrix in the BraTS header convention.
    """

    case_id: str
    images: dict[Sequence, np.ndarray]
    label: np.ndarray
    brain_mask: np.ndarray
    tissues: dict[Tissue, np.ndarray]
    contrast_mm: np.ndarray
    affine: np.ndarray


def build_case(case_id: str, seed: int, config: SampleDataConfig, template: Template) -> SampleCase:
    """Generate one case from an already loaded template (see :func:`cones.sample_data.generate_case`)."""
    streams = dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS)), strict=True))
    grid = output_grid(config)
    warp = random_warp(streams["pose"], grid, template.anchor_mm, config)
    tumour = draw_tumour(streams["tumour"], template, warp, config)
    coordinates = template.voxel_coordinates(warp.to_template(tumour.mass_effect.pull(grid)))
    brain = ndimage.map_coordinates(template.brain, coordinates, order=1) >= 0.5
    healthy = _healthy_fractions(template, coordinates[:, brain])
    del coordinates  # three full-grid float arrays; freeing them lowers the peak memory of a 1 mm case
    wm_share = np.zeros(config.shape, dtype=np.float32)
    wm_share[brain] = healthy[Tissue.WHITE_MATTER]
    zones = tumour.zones(streams["zones"], grid, wm_share, config.spacing_mm)
    fractions = _tissue_fractions(healthy, zones, brain)
    protocols, dose = _draw_acquisition(streams["acquisition"], config.acquisition_variation)
    normal = normal_enhancement(streams["vessels"], grid, brain, fractions[Tissue.CSF], config.spacing_mm)
    normal *= np.float32(dose) * (1.0 - zones.core[brain])
    concentration = {tissue: normal for tissue in Tissue if tissue is not Tissue.ENHANCING}
    concentration[Tissue.ENHANCING] = normal + np.float32(dose * ENHANCING_TUMOUR_MM) * zones.uptake[brain]
    images = _acquire(streams["scanner"], grid, brain, fractions, concentration, protocols, config)
    contrast = sum(fractions[tissue] * concentration[tissue] for tissue in Tissue)
    return SampleCase(
        case_id=case_id,
        images=images,
        label=_labels(zones, fractions, brain),
        brain_mask=brain,
        tissues={tissue: _embed(values, brain) for tissue, values in fractions.items()},
        contrast_mm=_embed(contrast, brain),
        affine=brats_affine(config),
    )


def _draw_acquisition(rng: np.random.Generator, variation: float) -> tuple[dict[Sequence, Protocol], float]:
    """Per sequence, the protocol (TR and TE each scaled by their own factor), and the gadolinium dose factor.

    Factors are log-uniform in [1 / (1 + variation), 1 + variation]; ``variation`` 0 draws nothing
    and keeps the textbook protocols, so default datasets stay what they were.
    """
    if variation == 0:
        return dict(PROTOCOLS), 1.0
    spread = np.log1p(variation)

    def factor() -> float:
        return float(np.exp(rng.uniform(-spread, spread)))

    protocols = {sequence: varied_protocol(PROTOCOLS[sequence], factor(), factor()) for sequence in Sequence}
    return protocols, factor()


def _healthy_fractions(template: Template, points: np.ndarray) -> dict[Tissue, np.ndarray]:
    """CSF, grey and white matter fractions at (3, N) template voxel coordinates, normalised to sum 1."""
    maps = {Tissue.CSF: template.csf, Tissue.GREY_MATTER: template.gm, Tissue.WHITE_MATTER: template.wm}
    sampled = {tissue: ndimage.map_coordinates(maps[tissue], points, order=1) for tissue in _HEALTHY}
    total = np.maximum(sum(sampled.values()), np.float32(1e-6))
    return {tissue: (values / total).astype(np.float32) for tissue, values in sampled.items()}


def _tissue_fractions(
    healthy: dict[Tissue, np.ndarray], zones: TumourZones, brain: np.ndarray
) -> dict[Tissue, np.ndarray]:
    """Tumour core replaces all tissue; oedema infiltrates the parenchyma (not CSF) around it."""
    core, necrosis, oedema = zones.core[brain], zones.necrosis[brain], zones.oedema[brain]
    spared = 1.0 - core
    healthy_parenchyma = spared * (1.0 - oedema)
    parenchyma = healthy[Tissue.GREY_MATTER] + healthy[Tissue.WHITE_MATTER]
    return {
        Tissue.CSF: healthy[Tissue.CSF] * spared,
        Tissue.GREY_MATTER: healthy[Tissue.GREY_MATTER] * healthy_parenchyma,
        Tissue.WHITE_MATTER: healthy[Tissue.WHITE_MATTER] * healthy_parenchyma,
        Tissue.NECROSIS: np.minimum(necrosis, core),
        Tissue.OEDEMA: parenchyma * spared * oedema,
        Tissue.ENHANCING: core - np.minimum(necrosis, core),
    }


def _labels(zones: TumourZones, fractions: dict[Tissue, np.ndarray], brain: np.ndarray) -> np.ndarray:
    """BraTS labels: the tumour compartment that fills at least half of each voxel."""
    core, necrosis = zones.core[brain], zones.necrosis[brain]
    values = np.zeros(core.shape, dtype=np.uint8)
    values[fractions[Tissue.OEDEMA] >= 0.5] = BRATS_LABELS["oedema"]
    values[core >= 0.5] = BRATS_LABELS["enhancing"]
    values[(core >= 0.5) & (necrosis >= 0.5)] = BRATS_LABELS["necrosis"]
    return _embed(values, brain)


def _acquire(
    rng: np.random.Generator,
    grid: GridAxes,
    brain: np.ndarray,
    fractions: dict[Tissue, np.ndarray],
    concentration: dict[Tissue, np.ndarray],
    protocols: dict[Sequence, Protocol],
    config: SampleDataConfig,
) -> dict[Sequence, np.ndarray]:
    """Each sequence: signal equation, its own coil bias, Rician noise scaled to its white matter signal."""
    images = {}
    for sequence, stream in zip(Sequence, rng.spawn(len(Sequence)), strict=True):
        protocol = protocols[sequence]
        signal = mixed_signal(protocol, fractions, concentration) * np.float32(_RECEIVER_GAIN)
        signal *= bias_field(stream, grid, config.bias_field_strength)[brain]
        sigma = config.noise_level * _RECEIVER_GAIN * float(protocol.signal(Tissue.WHITE_MATTER))
        images[sequence] = _embed(rician_noise(stream, signal, sigma), brain)
    return images


def _embed(values: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Scatter per-brain-voxel values into a volume that is exactly 0 outside the brain."""
    volume = np.zeros(brain.shape, dtype=values.dtype)
    volume[brain] = values
    return volume
