"""Draw the extension and module icons (128x128 PNG) from a procedural brain phantom.

Run from the repository root: ``python Resources/make_icons.py``. The icons are committed; this
script is how they were made, so they can be redrawn at another size or style without an editor.

The picture is the product in one glance: three source contrasts (T1, T2, FLAIR) of the same
brain slice and, framed in the accent colour, the T1ce that CoNeS synthesizes with its enhancing
tumour rim.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

ICON_SIZE = 128
TILE = 60
GAP = 4
ACCENT = np.array([230, 120, 20], dtype=np.float64)

# Relative intensity of each tissue per contrast: (background, white matter, grey matter, CSF,
# oedema, enhancing rim, necrosis). These follow the usual appearance of the sequences.
CONTRASTS = {
    "t1": (0.0, 0.85, 0.6, 0.15, 0.45, 0.5, 0.25),
    "t2": (0.0, 0.35, 0.55, 1.0, 0.85, 0.6, 0.95),
    "flair": (0.0, 0.4, 0.6, 0.05, 0.95, 0.7, 0.3),
    "t1ce": (0.0, 0.85, 0.6, 0.15, 0.45, 1.0, 0.2),
}


def tissue_labels(size: int) -> np.ndarray:
    """Label map of a stylised axial slice: brain, cortex ribbon, ventricles and a ring tumour."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    labels = np.zeros((size, size), dtype=np.uint8)
    brain = (rows / 0.95) ** 2 + (cols / 0.78) ** 2 < 1
    labels[brain] = 2
    labels[(rows / 0.82) ** 2 + (cols / 0.64) ** 2 < 1] = 1
    ventricles = ((rows + 0.05) / 0.32) ** 2 + ((np.abs(cols) - 0.14) / 0.09) ** 2 < 1
    labels[ventricles] = 3
    tumour_radius = np.hypot(rows + 0.35, cols - 0.32)
    labels[brain & (tumour_radius < 0.42)] = 4
    labels[tumour_radius < 0.24] = 5
    labels[tumour_radius < 0.17] = 6
    return labels


def render_tile(labels: np.ndarray, contrast: tuple[float, ...]) -> np.ndarray:
    """Grey-level tile of the phantom under one contrast."""
    return np.asarray(contrast)[labels]


def draw_icon() -> np.ndarray:
    """The 128x128 RGB icon: 2x2 tiles, the synthesized T1ce framed in the accent colour."""
    labels = tissue_labels(TILE)
    canvas = np.full((ICON_SIZE, ICON_SIZE, 3), 255.0)
    origin = (ICON_SIZE - 2 * TILE - GAP) // 2
    for index, name in enumerate(("t1", "t2", "flair", "t1ce")):
        row = origin + (index // 2) * (TILE + GAP)
        col = origin + (index % 2) * (TILE + GAP)
        tile = render_tile(labels, CONTRASTS[name])[..., None] * 255.0
        canvas[row : row + TILE, col : col + TILE] = np.repeat(tile, 3, axis=2)
        if name == "t1ce":
            frame = canvas[row - 2 : row + TILE + 2, col - 2 : col + TILE + 2]
            frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = ACCENT, ACCENT, ACCENT, ACCENT
    return canvas.round().astype(np.uint8)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    icon = draw_icon()
    for path in (
        root / "CoNeS.png",
        root / "CoNeSSynthesis" / "Resources" / "Icons" / "CoNeSSynthesis.png",
        root / "CoNeSTraining" / "Resources" / "Icons" / "CoNeSTraining.png",
    ):
        iio.imwrite(path, icon)


if __name__ == "__main__":
    main()
