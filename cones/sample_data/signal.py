"""MR signal of mixed tissues from their proton density, T1 and T2: the physics behind the four sequences.

Each sequence is a textbook pulse sequence applied to literature relaxation times at 3 T, so the
contrasts between tissues come out right for the right reason rather than from hand-set grey values:

* T1-weighted and T1ce: spin echo with short TR/TE, ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``.
* T2-weighted: the same spin echo with long TR/TE.
* FLAIR: inversion recovery, ``S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``, with TI chosen
  so the CSF term vanishes.

Gadolinium shortens T1 by its relaxivity, ``1/T1' = 1/T1 + r1 C``, and only the T1ce acquisition is
made after injection, so contrast appears in T1ce alone. A voxel holding several tissues sums their
signals weighted by volume fraction (partial volume); the relaxation times are not averaged.

Sources: Wansapura et al. 1999 (JMRI 9:531, grey/white matter T1 and T2 at 3 T), Lu et al. 2005
(JMRI 22:13, CSF T1), Rohrer et al. 2005 (Invest Radiol 40:715, gadolinium relaxivity at 3 T). The
tumour values are representative of glioblastoma reports: all compartments prolong T1 and T2,
necrosis most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from cones.sequences import Sequence

__all__ = [
    "PROTOCOLS",
    "RELAXIVITY_PER_MM_MS",
    "TISSUE_PROPERTIES",
    "Protocol",
    "Relaxation",
    "Tissue",
    "inversion_recovery",
    "mixed_signal",
    "null_inversion_time",
    "spin_echo",
    "varied_protocol",
]

RELAXIVITY_PER_MM_MS = 4.0e-3  # r1 of gadoterate / gadobutrol at 3 T, about 4 L/(mmol s), in 1/(mM ms)


class Tissue(StrEnum):
    """Tissue classes whose volume fractions make up every brain voxel."""

    CSF = "csf"
    GREY_MATTER = "gm"
    WHITE_MATTER = "wm"
    NECROSIS = "necrosis"
    OEDEMA = "oedema"
    ENHANCING = "enhancing"


@dataclass(frozen=True)
class Relaxation:
    """Proton density (relative to water) and relaxation times of one tissue."""

    proton_density: float
    t1_ms: float
    t2_ms: float


TISSUE_PROPERTIES: MappingProxyType[Tissue, Relaxation] = MappingProxyType(
    {
        Tissue.CSF: Relaxation(1.00, 4163.0, 2000.0),
        Tissue.GREY_MATTER: Relaxation(0.80, 1331.0, 110.0),
        Tissue.WHITE_MATTER: Relaxation(0.69, 832.0, 80.0),
        Tissue.NECROSIS: Relaxation(0.92, 2500.0, 500.0),
        Tissue.OEDEMA: Relaxation(0.86, 1500.0, 200.0),
        Tissue.ENHANCING: Relaxation(0.82, 1500.0, 130.0),
    }
)


def spin_echo(pd: float, t1_ms: float | np.ndarray, t2_ms: float, tr_ms: float, te_ms: float) -> float | np.ndarray:
    """Spin echo magnitude ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (full recovery between echoes assumed)."""
    return pd * (1.0 - np.exp(-tr_ms / t1_ms)) * math.exp(-te_ms / t2_ms)


def inversion_recovery(
    pd: float, t1_ms: float | np.ndarray, t2_ms: float, tr_ms: float, te_ms: float, ti_ms: float
) -> float | np.ndarray:
    """Magnitude inversion recovery ``PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``."""
    recovery = 1.0 - 2.0 * np.exp(-ti_ms / t1_ms) + np.exp(-tr_ms / t1_ms)
    return pd * np.abs(recovery) * math.exp(-te_ms / t2_ms)


def null_inversion_time(t1_ms: float, tr_ms: float) -> float:
    """TI that zeroes the inversion recovery signal of a tissue: ``T1 ln(2 / (1 + exp(-TR/T1)))``."""
    return t1_ms * math.log(2.0 / (1.0 + math.exp(-tr_ms / t1_ms)))


@dataclass(frozen=True)
class Protocol:
    """Timing of one acquisition; ``inversion_ms`` set means inversion recovery, else spin echo.

    Attributes:
        repetition_ms: TR.
        echo_ms: TE.
        inversion_ms: TI, or None for a plain spin echo.
        post_contrast: acquired after gadolinium injection, so T1 is shortened where contrast is.
    """

    repetition_ms: float
    echo_ms: float
    inversion_ms: float | None = None
    post_contrast: bool = False

    def signal(self, tissue: Tissue, concentration_mm: float | np.ndarray = 0.0) -> float | np.ndarray:
        """Signal of pure ``tissue`` holding ``concentration_mm`` mmol/L gadolinium (ignored before injection).

        Gadolinium shortens T1 as ``1/T1' = 1/T1 + r1 C``. Voxels without it get the contrast-free value bit
        for bit (vectorised and scalar ``exp`` may differ in the last bit), so T1ce equals T1 there.
        """
        properties = TISSUE_PROPERTIES[tissue]
        native = self._relaxed(properties, properties.t1_ms)
        concentration = np.asarray(concentration_mm)
        if not self.post_contrast or not np.any(concentration > 0):
            return native
        shortened = self._relaxed(properties, 1.0 / (1.0 / properties.t1_ms + RELAXIVITY_PER_MM_MS * concentration))
        return np.where(concentration > 0, shortened, native)

    def _relaxed(self, properties: Relaxation, t1_ms: float | np.ndarray) -> float | np.ndarray:
        """The sequence's signal equation for given relaxation properties and (possibly shortened) T1."""
        pd, t2_ms = properties.proton_density, properties.t2_ms
        if self.inversion_ms is None:
            return spin_echo(pd, t1_ms, t2_ms, self.repetition_ms, self.echo_ms)
        return inversion_recovery(pd, t1_ms, t2_ms, self.repetition_ms, self.echo_ms, self.inversion_ms)


_T1_WEIGHTED = {"repetition_ms": 500.0, "echo_ms": 12.0}
_FLAIR_TR_MS = 9000.0

PROTOCOLS: MappingProxyType[Sequence, Protocol] = MappingProxyType(
    {
        Sequence.T1: Protocol(**_T1_WEIGHTED),
        Sequence.T1CE: Protocol(**_T1_WEIGHTED, post_contrast=True),
        Sequence.T2: Protocol(repetition_ms=6000.0, echo_ms=100.0),
        Sequence.FLAIR: Protocol(
            repetition_ms=_FLAIR_TR_MS,
            echo_ms=120.0,
            inversion_ms=null_inversion_time(TISSUE_PROPERTIES[Tissue.CSF].t1_ms, _FLAIR_TR_MS),
        ),
    }
)


def mixed_signal(
    protocol: Protocol, fractions: dict[Tissue, np.ndarray], concentration_mm: dict[Tissue, np.ndarray]
) -> np.ndarray:
    """Signal of voxels holding several tissues: the fraction-weighted sum of each tissue's own signal.

    Args:
        protocol: the acquisition.
        fractions: volume fraction of each tissue per voxel, (N,) arrays summing to 1.
        concentration_mm: gadolinium in each tissue per voxel, (N,) arrays; tissues left out hold none.

    Returns:
        (N,) float32 signal in units of the signal of pure water with full recovery.
    """
    total = np.zeros_like(next(iter(fractions.values())), dtype=np.float32)
    for tissue, fraction in fractions.items():
        total += fraction * np.asarray(protocol.signal(tissue, concentration_mm.get(tissue, 0.0)), dtype=np.float32)
    return total


def varied_protocol(protocol: Protocol, repetition_factor: float, echo_factor: float) -> Protocol:
    """``protocol`` with TR and TE scaled (domain randomization); an inversion is re-timed to keep nulling CSF."""
    repetition_ms = protocol.repetition_ms * repetition_factor
    inversion_ms = None
    if protocol.inversion_ms is not None:
        inversion_ms = null_inversion_time(TISSUE_PROPERTIES[Tissue.CSF].t1_ms, repetition_ms)
    return replace(
        protocol, repetition_ms=repetition_ms, echo_ms=protocol.echo_ms * echo_factor, inversion_ms=inversion_ms
    )
