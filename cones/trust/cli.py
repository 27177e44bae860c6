"""``cones synthesize --uncertainty-output / --enhancement-output``: the command line's side of :mod:`cones.trust`.

``cones.cli`` owns the parser; this module adds the options, refuses their files before any work,
and writes the maps beside the synthesized volume::

    add_synthesize_options(synthesize)                      # --uncertainty-output, --enhancement-output
    check_trust_outputs(args, card, inputs, output)         # before any work
    wants_uncertainty(args)                                  # run the perturbed passes?
    sections = write_trust_outputs(args, ...)               # the maps, and what the sidecar says of them

Both maps are written marked (:func:`cones.marking.uncertainty_marking`,
:func:`cones.marking.enhancement_marking`) so that, like the synthesized volume, neither can pass
for an acquired image once it leaves the tool; the synthesized volume's sidecar lists them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cones.sequences import Sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import ModelCard
    from cones.marking import Provenance

__all__ = [
    "ENHANCEMENT_OPTION",
    "ENHANCEMENT_SECTION",
    "UNCERTAINTY_OPTION",
    "UNCERTAINTY_SECTION",
    "add_synthesize_options",
    "check_trust_outputs",
    "makes_t1ce_from_t1",
    "wants_uncertainty",
    "write_trust_outputs",
]

UNCERTAINTY_OPTION = "--uncertainty-output"
ENHANCEMENT_OPTION = "--enhancement-output"
UNCERTAINTY_SECTION = "uncertainty"
"""The synthesized volume's sidecar section that describes its uncertainty map."""
ENHANCEMENT_SECTION = "virtual_enhancement"
"""The synthesized volume's sidecar section that describes its virtual enhancement map."""


def makes_t1ce_from_t1(card: ModelCard) -> bool:
    """Whether the model makes T1ce from (among others) T1: the virtual enhancement map is their difference."""
    return card.targets[0] is Sequence.T1CE and Sequence.T1 in card.sources


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--uncertainty-output`` and ``--enhancement-output``."""
    parser.add_argument(
        UNCERTAINTY_OPTION,
        metavar="MAP",
        help="also write the voxel-wise uncertainty of the synthesis (output scale, 0 outside the brain; one "
        "more network pass per source: about 4x the synthesis time for T1, T2 and FLAIR)",
    )
    parser.add_argument(
        ENHANCEMENT_OPTION,
        metavar="MAP",
        help="also write the virtual enhancement: synthesized T1ce minus T1, each on its own brain percentiles "
        "(in [-1, 1], 0 outside the brain); needs a T1ce model with a T1 source",
    )


def wants_uncertainty(args: argparse.Namespace) -> bool:
    """Whether the synthesis must run the perturbed passes of the uncertainty map."""
    return args.uncertainty_output is not None


def check_trust_outputs(
    args: argparse.Namespace, card: ModelCard, inputs: Mapping[Sequence, Path], output: Path
) -> None:
    """Refuse the maps' files before any work, like every output (:func:`cones.outputs.check_output_file`).

    Raises:
        ValueError: ``--enhancement-output`` for a model that does not make T1ce from T1; a map
            file that is an input, the model, another output or has an unknown ending.
        OutputExistsError: a map file exists and ``--overwrite`` is not given.
    """
    from cones.data import IMAGE_SUFFIXES
    from cones.marking import sidecar_path
    from cones.outputs import check_output_file

    if args.enhancement_output is not None and not makes_t1ce_from_t1(card):
        raise ValueError(
            f"--enhancement-output draws synthesized T1ce minus T1; the model makes "
            f"{card.targets[0].display_name} from {', '.join(source.display_name for source in card.sources)}"
        )
    reads: dict[str, Any] = {
        "the model file": args.model,
        "the segmentation model": args.segment,
        "the --output file": output,
        "the --output sidecar": sidecar_path(output),
        "the --segmentation-output file": args.segmentation_output,
        "the --brain-mask-output file": getattr(args, "brain_mask_output", None),
        **{f"the {sequence.display_name} input": path for sequence, path in inputs.items()},
    }
    maps = {UNCERTAINTY_OPTION: args.uncertainty_output, ENHANCEMENT_OPTION: args.enhancement_output}
    for option, path in maps.items():
        if path is not None:
            check_output_file(path, overwrite=args.overwrite, suffixes=IMAGE_SUFFIXES, reads=reads)
            reads[f"the {option} file"] = path


def write_trust_outputs(
    args: argparse.Namespace,
    synthesized: sitk.Image,
    uncertainty: sitk.Image | None,
    t1: sitk.Image | None,
    provenance: Provenance,
) -> dict[str, Any]:
    """Write the maps asked for, marked; return the sidecar sections that describe them.

    Args:
        args: the parsed options.
        synthesized: the synthesized volume as written (its grid is the maps').
        uncertainty: its uncertainty map (needed with ``--uncertainty-output``).
        t1: the T1 (needed with ``--enhancement-output``); resampled onto the synthesized volume's grid
            when it is on another (``--resample`` with T1 not the first source).
        provenance: the synthesis (for the marking).

    Returns:
        ``{"uncertainty": {...}, "virtual_enhancement": {...}}`` for the maps written.
    """
    import numpy as np

    from cones.data import image_to_array, write_image
    from cones.data.geometry import grid_difference, resample_to_reference
    from cones.marking import enhancement_marking, mark_image, uncertainty_marking
    from cones.trust.enhancement import virtual_enhancement_image
    from cones.trust.uncertainty import PerturbedPasses

    sections: dict[str, Any] = {}
    if args.uncertainty_output is not None:
        if uncertainty is None:
            raise ValueError("--uncertainty-output needs the uncertainty map of the synthesis")
        path = write_image(
            mark_image(uncertainty, uncertainty_marking(provenance.marking)), args.uncertainty_output, args.overwrite
        )
        values = image_to_array(uncertainty)
        brain = image_to_array(synthesized) > 0
        method = PerturbedPasses.one_per_source(len(provenance.card.sources))
        sections[UNCERTAINTY_SECTION] = {
            "path": str(path.resolve()),
            "method": (
                "root mean square deviation from the synthesis under a gamma change of one source per pass, "
                "in quadrature with the calibration uncertainty times the synthesized intensity"
            ),
            "passes": [
                {"source": provenance.card.sources[item.channel].value, "gamma": item.gamma} for item in method.passes
            ],
            "calibration": method.calibration,
            "units": "output scale (the synthesized volume's)",
            "mean_in_brain": float(values[brain].mean()) if brain.any() else None,
            "percentile_95_in_brain": float(np.percentile(values[brain], 95)) if brain.any() else None,
        }
    if args.enhancement_output is not None:
        if t1 is None:
            raise ValueError("--enhancement-output needs the T1 on the synthesized volume's grid")
        if grid_difference(t1, synthesized):
            t1 = resample_to_reference(t1, synthesized)
        enhancement = mark_image(virtual_enhancement_image(synthesized, t1), enhancement_marking(provenance.marking))
        path = write_image(enhancement, args.enhancement_output, args.overwrite)
        sections[ENHANCEMENT_SECTION] = {
            "path": str(path.resolve()),
            "method": "synthesized T1ce minus T1, each mapped by its 0.5 and 99.5 brain percentiles to [0, 1]",
            "units": "fraction of each image's own range, in [-1, 1]",
        }
    return sections
