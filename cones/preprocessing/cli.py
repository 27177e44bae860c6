"""``cones synthesize --prepare``: the command line's side of :mod:`cones.preprocessing`.

``cones.cli`` owns the parser; this module adds the options and runs the prepared synthesis, so
the command line reads as before::

    add_synthesize_options(synthesize)                        # --prepare, --reference, ...
    check_prepare_outputs(args, inputs, output)               # before any work
    require_one_grid(model.card, images)                      # without --prepare or --resample
    require_registrable(model.card, images, labels)           # with --prepare, before any work
    result = synthesize_prepared(args, model, images, options)  # outputs and preparation
    sources = segmentation_sources(result.prepared)           # only when segmenting afterwards
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cones.sequences import Sequence, parse_sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import LoadedModel, ModelCard
    from cones.inference import SynthesisOptions
    from cones.preprocessing.pipeline import PreparedCase, RawSynthesis

__all__ = [
    "add_synthesize_options",
    "check_prepare_outputs",
    "require_one_grid",
    "require_registrable",
    "segmentation_sources",
    "synthesize_prepared",
]


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--prepare``, ``--reference``, ``--registration``, ``--brain-mask-output``, ``--prepared-output-dir``."""
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="raw scans: co-register the sources to the reference, extract the brain (deepbet), synthesize, and "
        "return to the reference's grid (implies resampling)",
    )
    parser.add_argument("--reference", help="with --prepare: the sequence whose grid the output takes (default: T1)")
    parser.add_argument(
        "--registration", default="rigid", choices=["rigid", "affine"], help="with --prepare: the transform model"
    )
    parser.add_argument("--brain-mask-output", metavar="MASK", help="with --prepare: also write the brain mask")
    parser.add_argument(
        "--prepared-output-dir",
        metavar="DIR",
        help="with --prepare: also write <seq>_registered.nii.gz, brain_mask.nii.gz and <seq>_to_<reference>.tfm",
    )


def check_prepare_outputs(args: argparse.Namespace, inputs: Mapping[Sequence, Path], output: Path) -> None:
    """Refuse the preparation's extra outputs before any work (see :func:`cones.outputs.check_output_file`).

    Raises:
        ValueError: an option that needs ``--prepare`` without it, an unknown ``--reference``, or an
            extra output that may not be written.
        OutputExistsError: an extra output exists and ``--overwrite`` is not given.
    """
    from cones.data import IMAGE_SUFFIXES
    from cones.outputs import check_output_file, check_output_folder
    from cones.preprocessing.files import prepared_file_names

    extras = {
        "--reference": args.reference,
        "--brain-mask-output": args.brain_mask_output,
        "--prepared-output-dir": args.prepared_output_dir,
    }
    given = [option for option, value in extras.items() if value is not None]
    if given and not args.prepare:
        raise ValueError(f"{', '.join(given)} need(s) --prepare")
    reads = {
        "the model file": args.model,
        "the --output file": output,
        **{f"the {sequence.display_name} input": path for sequence, path in inputs.items()},
    }
    if args.brain_mask_output is not None:
        check_output_file(args.brain_mask_output, overwrite=args.overwrite, suffixes=IMAGE_SUFFIXES, reads=reads)
        reads["the --brain-mask-output file"] = args.brain_mask_output
    if args.prepared_output_dir is not None:
        folder = check_output_folder(args.prepared_output_dir, reads=reads)
        reference = _reference(args, tuple(inputs))
        for name in prepared_file_names(inputs, reference):
            check_output_file(folder / name, overwrite=args.overwrite, reads=reads)


def require_one_grid(card: ModelCard, images: Mapping[Sequence, sitk.Image]) -> None:
    """Refuse sources on different grids (without ``--prepare`` or ``--resample``), pointing at ``--prepare``.

    Raises:
        ValueError: the model's sources are not on one grid.
    """
    from cones.data.geometry import check_same_grid

    sources = {sequence.display_name: images[sequence] for sequence in card.sources if sequence in images}
    try:
        check_same_grid(sources, "input")
    except ValueError as error:
        raise ValueError(
            f"{error}. Raw scans: pass --prepare to co-register them and extract the brain (--resample only "
            "resamples, which lays unregistered anatomy on top of each other)"
        ) from None


def require_registrable(card: ModelCard, images: Mapping[Sequence, sitk.Image], labels: Mapping[Sequence, str]) -> None:
    """Refuse a source too thin to register, naming its file (``labels``), before any work.

    Raises:
        ValueError: see :func:`cones.preprocessing.registration.check_registrable`.
    """
    from cones.preprocessing.registration import check_registrable

    sources = [sequence for sequence in card.sources if sequence in images]
    if len(sources) > 1:
        for sequence in sources:
            check_registrable(images[sequence], labels.get(sequence, sequence.display_name))


def synthesize_prepared(
    args: argparse.Namespace,
    model: LoadedModel,
    images: Mapping[Sequence, sitk.Image],
    options: SynthesisOptions,
    uncertainty: bool = False,
    labels: Mapping[Sequence, str] | None = None,
) -> RawSynthesis:
    """Run :func:`~cones.preprocessing.synthesize_raw`, print its report, write the extra outputs.

    ``uncertainty``: also compute the outputs' uncertainty maps (``RawSynthesis.uncertainty``).
    ``labels``: how messages name each source (with its file).

    Returns:
        The outputs on the reference's grid and the preparation (see :func:`segmentation_sources`).
    """
    from cones.data import write_image
    from cones.domain.cli import print_findings
    from cones.preprocessing.files import write_prepared
    from cones.preprocessing.pipeline import synthesize_raw

    def report(stage: str, done: int, total: int) -> None:
        print(f"CONES_PROGRESS {done} {total} {stage}", flush=True)

    result = synthesize_raw(
        model,
        images,
        reference=_reference(args, model.card.sources),
        kind=args.registration,
        options=options,
        progress=report,
        strict=args.strict,
        on_checks=print_findings,
        uncertainty=uncertainty,
        labels=labels,
    )
    prepared = result.prepared
    print(prepared.report.summary())
    if args.brain_mask_output is not None:
        write_image(prepared.brain_mask, args.brain_mask_output, overwrite=args.overwrite)
    if args.prepared_output_dir is not None:
        write_prepared(prepared, args.prepared_output_dir, overwrite=args.overwrite)
    return result


def segmentation_sources(prepared: PreparedCase) -> dict[Sequence, sitk.Image]:
    """The sources as a segmentation after synthesis must see them: registered onto the reference's grid, masked."""
    import SimpleITK as sitk

    mask = sitk.Cast(prepared.brain_mask > 0, sitk.sitkUInt8)
    return {sequence: sitk.Mask(image, mask) for sequence, image in prepared.registered.items()}


def _reference(args: argparse.Namespace, sources: tuple[Sequence, ...]) -> Sequence:
    reference = parse_sequence(args.reference) if args.reference is not None else sources[0]
    if reference not in sources:
        given = ", ".join(sequence.display_name for sequence in sources)
        raise ValueError(f"--reference {args.reference} is not one of the sources ({given})")
    return reference
