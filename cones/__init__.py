"""CoNeS: conditional neural fields with shift modulation for multi-sequence MRI translation.

The core package is pure PyTorch + numpy (no Qt, no Slicer) so the same code serves the command
line, headless batch runs and the 3D Slicer modules.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
