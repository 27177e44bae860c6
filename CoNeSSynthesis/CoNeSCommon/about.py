"""Texts both modules show: the paper to cite and who made the extension (CMakeLists.txt says the same)."""

from __future__ import annotations

__all__ = ["CITATION", "CONTRIBUTORS"]

CITATION = (
    "Y. Chen, M. Staring, O. M. Neve, S. R. Romeijn, E. F. Hensen, B. M. Verbist, J. M. Wolterink, Q. Tao. "
    "CoNeS: Conditional neural fields with shift modulation for multi-sequence MRI translation. "
    "Machine Learning for Biomedical Imaging (MELBA), 2024. Preprint: https://doi.org/10.48550/arXiv.2309.03320"
)

CONTRIBUTORS = ["CoNeS Slicer extension developers"]
"""The module's contributors; ``EXTENSION_CONTRIBUTORS`` in CMakeLists.txt lists the same names."""
