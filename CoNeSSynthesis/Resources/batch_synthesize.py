"""Synthesize a missing MRI sequence without a GUI, through MRML, exactly as the CoNeSSynthesis module does.

Usage (inside Slicer, or a plain Python with the slicer-core wheel and the CoNeS requirements)::

    Slicer --no-main-window --python-script batch_synthesize.py --model M.pt \\
        --input t1=t1.nii.gz t2=t2.nii.gz flair=flair.nii.gz --output t1ce_synthesized.nrrd
    python batch_synthesize.py --model M.pt --input t1=... t2=... flair=... --output out.nrrd \\
        [--segment [SEGMODEL] --segmentation-output tumour.seg.nrrd] \\
        [--uncertainty-output uncertainty.nrrd] [--enhancement-output enhancement.nrrd]

The inputs are loaded into an MRML scene through storage nodes (keeping left-handed grids as they
are; a DICOM series folder is read by ``cones``, ``--series`` picking one series), the
CoNeSSynthesis library checks and synthesizes them, and the result is written on the grid of the
first source marked as synthetic, as ``cones synthesize`` writes it (:mod:`cones.marking`: header
marking, ``<output>.json`` sidecar; ``--output-format dicom`` for a DICOM series). With
``--segment``, the tumour is segmented after synthesis, as the module's "Segment after synthesis"
does, and the segmentation node (named, coloured NCR, ED and ET segments) is saved as a
``.seg.nrrd`` that Slicer opens as it was. ``--uncertainty-output`` and
``--enhancement-output`` write the maps of the module's "Uncertainty map" and "Virtual enhancement
map", marked and listed in the sidecar as ``cones synthesize`` writes them (the work is in
:mod:`CoNeSSynthesisLib.batch`).

Every way out ends the process with its exit code, since ``Slicer --python-script`` keeps the
application running after the script unless the script exits it: 0 done; 2 refused input (one
``error: ...`` line, nothing written), a bad command line included; 1 the synthesis failed, or any
unexpected error (its traceback first); 3 cannot start: a Python package is missing (the line says
how to install it), PyTorch is missing or too old, or Slicer is older than 5.12; 130 interrupted
(Ctrl-C: the synthesis process is stopped, nothing is written or left behind).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

MODULE_DIRECTORY = Path(__file__).resolve().parent.parent
"""The folder with ``CoNeSCommon`` and ``CoNeSSynthesisLib``: the module folder in a checkout, or
``qt-scripted-modules`` installed."""
REQUIREMENTS_PATH = MODULE_DIRECTORY / "Resources" / "requirements.txt"
FAILED, CANNOT_START = 1, 3
""":data:`CoNeSSynthesisLib.batch.FAILED` and ``CANNOT_START``, here because that import is what may fail."""


def run(argv: list[str]) -> int:
    """Run the batch and return its exit code, whatever happens (only an exit code ends Slicer's process)."""
    if str(MODULE_DIRECTORY) not in sys.path:
        sys.path.insert(0, str(MODULE_DIRECTORY))
    try:
        from CoNeSSynthesisLib import batch

        return batch.main(argv)
    except ModuleNotFoundError as error:  # a requirement that is not installed
        print(
            f"error: cannot start: {error}; install the CoNeS requirements into this Python: {sys.executable} -m pip "
            f"install -r {REQUIREMENTS_PATH} (in Slicer: press Apply once in CoNeS Synthesis, which installs them "
            "after asking)",
            file=sys.stderr,
        )
        return CANNOT_START
    except ImportError as error:  # CoNeSCommon refuses a Slicer older than 5.12 (its message says so)
        print(f"error: cannot start: {error}", file=sys.stderr)
        return CANNOT_START
    except Exception as error:  # a bug: report it, and still end the process
        traceback.print_exc()
        print(f"error: synthesis failed unexpectedly: {type(error).__name__}: {error}", file=sys.stderr)
        return FAILED


def exitWith(status: int) -> None:
    """End the process with ``status``; inside Slicer through the application, whose event loop then quits."""
    slicer = sys.modules.get("slicer")
    if slicer is not None and hasattr(slicer, "app"):
        import slicer.util

        slicer.util.exit(status)
    else:
        sys.exit(status)


if __name__ == "__main__":
    exitWith(run(sys.argv[1:]))
