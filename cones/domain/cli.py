"""``cones synthesize``'s side of the input checks: ``--strict`` and the warnings on stderr.

``cones.cli`` owns the parser; this module adds the option and runs the checks, so the command line
reads::

    add_synthesize_options(synthesize)                                 # --strict
    report = run_checks(model.card, images, preparation, args.strict)  # warnings printed; refusals raise
    ... synthesis (with --prepare, the pipeline checks the prepared sources, printing with print_findings) ...
    write_synthesized(..., sections={"input_checks": report.to_dict()})  # into the output's sidecar
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cones.sequences import Sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import ModelCard
    from cones.domain.checks import InputCheckReport, Preparation

__all__ = ["add_synthesize_options", "print_findings", "run_checks"]


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--strict``."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse inputs that fail an input check with a warning too (skull without --prepare, other voxel "
        "spacing, probably swapped or misregistered sequences, intensities unlike the training data)",
    )


def run_checks(
    card: ModelCard, images: Mapping[Sequence, sitk.Image], preparation: Preparation | str, strict: bool
) -> InputCheckReport:
    """Check the inputs (:func:`cones.domain.check_inputs`), print every finding, refuse as ``strict`` says.

    Raises:
        InputsRefused: an error, or a warning under ``strict``; the message lists them on one line.
    """
    from cones.domain.checks import check_inputs

    report = check_inputs(card, images, preparation)
    print_findings(report)
    report.raise_if_refused(strict)
    return report


def print_findings(report: InputCheckReport) -> None:
    """One ``warning: ...`` line per warning on stderr (errors end the command with their own line)."""
    for finding in report.warnings:
        print(f"warning: {finding.message}", file=sys.stderr, flush=True)
