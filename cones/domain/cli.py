"""``cones synthesize``'s side of the input checks: ``--strict`` and the warnings on stderr.

``cones.cli`` owns the parser; this module adds the option and runs the checks, so the command line
reads::

    add_synthesize_options(synthesize)                                 # --strict
    report = run_checks(model.card, images, preparation, args.strict, labels)  # warnings printed; refusals raise
    ... synthesis (with --prepare, the pipeline checks the prepared sources, printing with print_findings) ...
    write_synthesized(..., sections={"input_checks": report.to_dict()})  # into the output's sidecar
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from cones.sequences import Sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import ModelCard
    from cones.domain.checks import InputCheckReport, Preparation

__all__ = ["add_synthesize_options", "print_findings", "run_checks", "warn_unused_inputs"]


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--strict``."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse inputs that fail an input check with a warning too (skull without --prepare, other voxel "
        "spacing, probably swapped or misregistered sequences, intensities unlike the training data)",
    )


def run_checks(
    card: ModelCard,
    images: Mapping[Sequence, sitk.Image],
    preparation: Preparation | str,
    strict: bool,
    labels: Mapping[Sequence, str] | None = None,
) -> InputCheckReport:
    """Check the inputs (:func:`cones.domain.check_inputs`), print every finding, refuse as ``strict`` says.

    ``labels``: how a finding about one source names it (the command line adds the file).

    Raises:
        InputsRefused: an error, or a warning under ``strict``; the message lists them on one line.
    """
    from cones.domain.checks import check_inputs

    report = check_inputs(card, images, preparation, labels)
    print_findings(report)
    report.raise_if_refused(strict)
    return report


def print_findings(report: InputCheckReport) -> None:
    """One ``warning: ...`` line per warning on stderr (errors end the command with their own line)."""
    for finding in report.warnings:
        print(f"warning: {finding.message}", file=sys.stderr, flush=True)


def warn_unused_inputs(
    card: ModelCard, inputs: Mapping[Sequence, str | os.PathLike[str]], also_used: Iterable[Sequence] = ()
) -> None:
    """One ``warning: ...`` line on stderr per input that neither the model nor a later step uses.

    Someone who gives the acquired T1ce to a model that synthesizes T1ce, or a sequence the model was
    not trained on, expects it to shape the result. It does not; the synthesis is still what its
    sources give, so this is a warning, not a refusal (a synthesized T1ce beside the acquired one
    is a fair comparison to ask for).

    Args:
        card: the synthesis model's card.
        inputs: the given files, keyed by sequence.
        also_used: sequences a later step reads from the given files (``--segment``'s model).
    """
    used = {*card.sources, *also_used}
    sources = ", ".join(sequence.display_name for sequence in card.sources)
    for sequence, path in inputs.items():
        if sequence in used:
            continue
        if sequence in card.targets:
            why = f"the model synthesizes {sequence.display_name} from {sources} alone"
        else:
            why = f"the model synthesizes from {sources} alone"
        print(
            f"warning: the {sequence.display_name} input {str(path)!r} is not used: {why}", file=sys.stderr, flush=True
        )
