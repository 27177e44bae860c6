"""How the marking of a synthesized image reads: the part of :mod:`cones.marking` that needs no writer.

:mod:`cones.data.dicom` recognizes an earlier synthesized series by its marking before replacing
it, and :mod:`cones.marking` writes through :mod:`cones.data.dicom`; both import this module, so
neither imports the other in a circle.
"""

from __future__ import annotations

import re

__all__ = ["SHA_PREFIX_LENGTH", "is_synthetic_marking"]

SHA_PREFIX_LENGTH = 12
"""Hex digits of the model's sha256 in the marking: enough to tell models apart, short enough for 80 bytes."""
_SYNTHETIC_MARKING = re.compile(rf"SYNTHETIC \S+ - CoNeS [0-9a-f]{{{SHA_PREFIX_LENGTH}}}")


def is_synthetic_marking(text: str) -> bool:
    """Whether ``text`` is a marking :func:`cones.marking.synthetic_marking` writes (how an earlier output is known)."""
    return _SYNTHETIC_MARKING.fullmatch(text.strip()) is not None
