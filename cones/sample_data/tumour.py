"""A synthetic glioblastoma: necrotic core, contrast-enhancing rim, and oedema reaching along white matter.

The tumour is a lobulated ball around a deep white matter site. Its normalised radius
``rho = r / R + lobulation`` defines nested zones: necrosis (``rho < necrosis_ratio``), the enhancing
rim (``rho < 1``) and oedema, whose outer level grows with the local white matter fraction because
vasogenic oedema spreads along fibre tracts and is held back by cortex. Tumour memberships are linear
over one voxel across each boundary, the partial-volume fraction of a locally flat interface; oedema
instead thins out over a few millimetres, as its water content does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cones.sample_data.config import SampleDataConfig
from cones.sample_data.fields import GridAxes, smooth_random_field
from cones.sample_data.geometry import MassEffect, Warp
from cones.sample_data.template import Template

__all__ = ["Tumour", "TumourZones", "draw_tumour"]

_SITE_MARGIN_MM = 8.0  # brain tissue kept between the tumour rim and the brain surface
_NECROSIS_RATIO = (0.45, 0.7)  # necrotic core radius / tumour radius
_LOBULATION = 0.18  # boundary irregularity, in units of the tumour radius
_NECROSIS_IRREGULARITY = 0.12  # rim thickness varies around the tumour by this much
_OEDEMA_IRREGULARITY = 0.2
_OEDEMA_FADE = 0.4  # oedema thins out over this many tumour radii instead of ending at a sharp front
_UPTAKE_VARIATION = 0.35  # log-standard deviation of gadolinium uptake along the rim (patchy enhancement)
_UPTAKE_CORRELATION_MM = 5.0
_OEDEMA_GREY_MATTER_REACH = 0.1  # fraction of the oedema extent that also invades pure grey matter


@dataclass(frozen=True)
class TumourZones:
    """Memberships in [0, 1] of each output voxel, float32 arrays shaped like the output grid.

    Attributes:
        core: inside the tumour (necrosis + enhancing rim); tissue here is replaced.
        necrosis: inside the necrotic core (a subset of ``core``).
        oedema: share of the parenchyma outside the core that is oedematous; it fades out gradually.
        uptake: relative gadolinium uptake of enhancing tissue (1 on average), patchy as in real tumours.
    """

    core: np.ndarray
    necrosis: np.ndarray
    oedema: np.ndarray
    uptake: np.ndarray


@dataclass(frozen=True)
class Tumour:
    """One tumour's placement and size.

    Attributes:
        centre_mm: centre in the output frame (mm along the array axes from the volume centre).
        radius_mm: outer radius of the enhancing rim, R.
        necrosis_ratio: radius of the necrotic core relative to R.
        oedema_factor: reach of the oedema along pure white matter, relative to R.
        mass_effect: the tissue displacement the tumour causes.
    """

    centre_mm: np.ndarray
    radius_mm: float
    necrosis_ratio: float
    oedema_factor: float
    mass_effect: MassEffect

    def zones(self, rng: np.random.Generator, grid: GridAxes, wm_share: np.ndarray, spacing_mm: float) -> TumourZones:
        """Rasterise the zones on the output grid.

        Args:
            rng: draws the lobulation fields.
            grid: output grid axes.
            wm_share: white matter share of each voxel's tissue (X, Y, Z), steering how far oedema reaches.
            spacing_mm: voxel size, the width of the partial-volume ramp across each boundary.

        Returns:
            The memberships, exactly 0 beyond the oedema's reach, and the uptake (1 there).
        """
        half = self.radius_mm * (self.oedema_factor + 4 * (_OEDEMA_IRREGULARITY + _LOBULATION)) + 2 * spacing_mm
        box, slices = grid.subset(self.centre_mm - half, self.centre_mm + half)
        correlation = max(0.5 * self.radius_mm, 2 * spacing_mm)
        x, y, z = (axis - centre for axis, centre in zip(box.broadcast(), self.centre_mm, strict=True))
        rho = np.sqrt(x**2 + y**2 + z**2, dtype=np.float32) / self.radius_mm
        rho += smooth_random_field(rng, box, correlation, _LOBULATION)
        necrosis_level = np.clip(
            self.necrosis_ratio + smooth_random_field(rng, box, correlation / 2, _NECROSIS_IRREGULARITY), 0.2, 0.85
        )
        reach = _OEDEMA_GREY_MATTER_REACH + (1 - _OEDEMA_GREY_MATTER_REACH) * wm_share[slices]
        oedema_level = 1 + (self.oedema_factor - 1) * reach
        oedema_level += smooth_random_field(rng, box, 2 * correlation, _OEDEMA_IRREGULARITY)
        uptake_correlation = max(_UPTAKE_CORRELATION_MM, 2 * spacing_mm)
        uptake = np.exp(smooth_random_field(rng, box, uptake_correlation, _UPTAKE_VARIATION) - _UPTAKE_VARIATION**2 / 2)
        voxel_ramp = self.radius_mm / spacing_mm
        oedema_ramp = min(voxel_ramp, 1 / _OEDEMA_FADE)
        return TumourZones(
            core=_place(_inside(1.0, rho, voxel_ramp), slices, grid.shape),
            necrosis=_place(_inside(necrosis_level, rho, voxel_ramp), slices, grid.shape),
            oedema=_place(_inside(oedema_level, rho, oedema_ramp), slices, grid.shape),
            uptake=_place(uptake, slices, grid.shape, outside=1.0),
        )


def draw_tumour(rng: np.random.Generator, template: Template, warp: Warp, config: SampleDataConfig) -> Tumour:
    """Pick a deep white matter site where a tumour of the drawn radius fits, and its zone proportions.

    The site is chosen in the template, where depth is known, and carried into the output frame with the
    case's head pose. If no site is deep enough for the radius, the deepest sites are used.
    """
    radius = rng.uniform(*config.tumour_radius_mm)
    required = radius + _SITE_MARGIN_MM
    deep_enough = template.site_depth_mm >= min(required, template.site_depth_mm.max())
    candidates = template.sites_mm[deep_enough]
    site = candidates[rng.integers(len(candidates))] + rng.uniform(-2.0, 2.0, size=3)
    centre = warp.from_template(site)
    return Tumour(
        centre_mm=centre,
        radius_mm=float(radius),
        necrosis_ratio=float(rng.uniform(*_NECROSIS_RATIO)),
        oedema_factor=float(rng.uniform(*config.oedema_radius_factor)),
        mass_effect=MassEffect(centre, config.mass_effect * float(radius)),
    )


def _inside(level: float | np.ndarray, rho: np.ndarray, ramp: float) -> np.ndarray:
    """Membership of ``rho < level``, rising linearly from 0 to 1 over ``1 / ramp`` units of rho around it."""
    return np.clip(0.5 + (level - rho) * np.float32(ramp), 0.0, 1.0).astype(np.float32)


def _place(
    values: np.ndarray, slices: tuple[slice, slice, slice], shape: tuple[int, int, int], outside: float = 0.0
) -> np.ndarray:
    """Embed a box's values into a full-grid volume holding ``outside`` elsewhere."""
    volume = np.full(shape, outside, dtype=np.float32)
    volume[slices] = values
    return volume
