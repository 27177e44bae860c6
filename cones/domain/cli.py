"""``cones synthesize``'s side of the input checks: ``--strict``, warnings on stderr, the JSON report.

``cones.cli`` owns the parser; this module adds the option and runs the checks, so the command line
reads::

    add_synthesize_options(synthesize)                          # --strict
    report_path = check_report_output(args, inputs, output)      # before any work
    report = run_checks(args, model.card, images)                # warnings printed; refusals raise
    ... synthesis (with --prepare, run_checks again on the prepared sources) ...
    write_report(report, report_path, overwrite=args.overwrite)  # beside the output
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cones.sequences import Sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import ModelCard
    from cones.domain.checks import InputCheckReport, Preparation

__all__ = [
    "add_synthesize_options",
    "check_report_output",
    "print_findings",
    "report_path",
    "run_checks",
    "write_report",
]

REPORT_SUFFIX = ".json"


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--strict``."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse inputs that fail an input check with a warning too (skull without --prepare, other voxel "
        "spacing, probably swapped or misregistered sequences, intensities unlike the training data)",
    )


def report_path(output: Path) -> Path:
    """Where the input-check report of ``output`` goes: beside it, named ``<output>.json``."""
    return output.with_name(output.name + REPORT_SUFFIX)


def check_report_output(args: argparse.Namespace, inputs: Mapping[Sequence, Path], output: Path) -> Path:
    """Refuse the report's path before any work, as the output itself (see :func:`cones.outputs.check_output_file`)."""
    from cones.outputs import check_output_file

    reads = {f"the {sequence.display_name} input": path for sequence, path in inputs.items()}
    reads["the model file"] = args.model
    return check_output_file(report_path(output), overwrite=args.overwrite, reads=reads)


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


def write_report(report: InputCheckReport, path: Path, *, overwrite: bool) -> None:
    """Write the report as JSON, atomically."""
    from cones.outputs import write_atomically

    text = json.dumps({"input_checks": report.to_dict()}, indent=2) + "\n"
    write_atomically(path, lambda hidden: hidden.write_text(text), overwrite=overwrite)
