"""The ``cones`` command line: train, synthesize, info, export, bench, evaluate, sample-data, and the
segmentation commands train-seg and evaluate-segmentation (:mod:`cones.segmentation.cli`).

Errors in the user's input (missing sequence, mismatched grids, an existing output, an output that
is one of the inputs, a refused model file) end the command with exit code 2 and one ``error:``
line naming the problem; nothing is written in that case. A failure of the system while working
(a full disk) ends it with exit code 1 and one ``error:`` line; an interrupt with 130.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shlex
import signal
import sys
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cones.domain import cli as domain_cli
from cones.preprocessing import cli as preprocessing_cli
from cones.segmentation import cli as segmentation_cli
from cones.trust import cli as trust_cli

if TYPE_CHECKING:
    from cones.bench import BenchmarkResult
    from cones.checkpoint import LoadedModel, ModelCard
    from cones.inference import SynthesisOptions
    from cones.marking import Provenance
    from cones.sequences import Sequence

__all__ = ["build_parser", "check_synthesis_outputs", "main", "run", "synthesis_provenance"]

logger = logging.getLogger("cones")

_INTERRUPTED = 130
"""The exit code of a command ended by Ctrl-C (128 + SIGINT, as a shell reports it)."""
_ARCHITECTURES = ("cones", "pix2pix", "asapnet", "pgan", "resvit")
"""``cones.model.Architecture`` values, spelled out so that ``--help`` needs no torch import."""
_OUTPUT_FORMATS = ("file", "dicom")
"""``cones.marking.OutputFormat`` values (no torch import for ``--help`` either)."""
_PROVENANCE_OPTIONS = ("device", "batch_size", "resample", "prepare", "reference", "registration", "output_format")
"""The options of a synthesis that its sidecar records (the inputs and the model are recorded on their own)."""


def _input_pair(text: str) -> str:
    """One ``SEQUENCE=PATH``: its form is checked while parsing, its name and uniqueness by the handler."""
    from cones.sequences import split_sequence_input

    try:
        split_sequence_input(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _size(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 240x240x155, got {text!r}") from None


def _train(args: argparse.Namespace) -> None:
    from cones.training.config import TrainConfig, default_loss_weights
    from cones.training.run import train

    config = TrainConfig(
        sources=tuple(args.sources),
        targets=tuple(args.target),
        preset=args.preset,
        arch=args.arch,
        loss_weights=default_loss_weights(args.arch),
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop_size=tuple(args.crop_size),
        validation_cases=args.validation_cases,
        validation_case_ids=tuple(args.validation_case_ids),
        validation_interval=args.validation_interval,
        checkpoint_interval=args.checkpoint_interval,
        log_interval=args.log_interval,
        seed=args.seed,
        slice_axis=args.slice_axis,
        augment=not args.no_augment,
        bright_crop_fraction=args.bright_crop_fraction,
        bright_crop_threshold=args.bright_crop_threshold,
    )
    last = train(
        config,
        args.data,
        args.output,
        device=args.device,
        resume=args.resume,
        resample=args.resample,
        command=shlex.join(["cones", *sys.argv[1:]]),
        data_description=args.data_description,
        initial_model=args.init_from,
        allow_new_data=args.allow_new_data,
    )
    print(f"model written to {last}")


def check_synthesis_outputs(
    args: argparse.Namespace,
    inputs: Mapping[Sequence, Path],
    output_suffixes: tuple[str, ...],
    segmentation_suffixes: tuple[str, ...],
) -> Path:
    """Refuse ``--output``, ``--segmentation-output`` and their sidecars before any work if writing could lose data.

    Shared by ``cones synthesize`` and the Slicer batch script, whose options mirror it (``model``,
    ``segment``, ``output``, ``output_format``, ``segmentation_output``, ``overwrite``): no output
    may be an input, the model, the segmentation model or another output (see
    :func:`cones.outputs.check_output_file`); a DICOM output folder must be new or empty (see
    :func:`cones.data.dicom.check_output_series_folder`); the sidecar ``<output>.json`` is refused
    like the output, so an input of that name is never replaced either.

    Returns:
        ``--output`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError, OutputExistsError: see :func:`~cones.outputs.check_output_file`.
    """
    from cones.data.dicom import check_output_series_folder
    from cones.marking import OutputFormat, sidecar_path
    from cones.outputs import check_output_file

    reads = {
        "the model file": args.model,
        "the segmentation model": args.segment,
        **{f"the {sequence.display_name} input": path for sequence, path in inputs.items()},
    }
    if OutputFormat(args.output_format) is OutputFormat.DICOM:
        output = check_output_series_folder(args.output, overwrite=args.overwrite, reads=reads)
    else:
        output = check_output_file(args.output, overwrite=args.overwrite, suffixes=output_suffixes, reads=reads)
    reads["the --output folder" if OutputFormat(args.output_format) is OutputFormat.DICOM else "the --output file"] = (
        output
    )
    check_output_file(sidecar_path(output), overwrite=args.overwrite, reads=reads)
    if args.segmentation_output is not None:
        reads["the --output sidecar"] = sidecar_path(output)
        segmentation = check_output_file(
            args.segmentation_output, overwrite=args.overwrite, suffixes=segmentation_suffixes, reads=reads
        )
        reads["the --segmentation-output file"] = segmentation
        check_output_file(sidecar_path(segmentation), overwrite=args.overwrite, reads=reads)
    return output


def synthesis_provenance(
    args: argparse.Namespace, inputs: Mapping[Sequence, Path], series: Mapping[Sequence, str], card: ModelCard
) -> Provenance:
    """What the output of ``cones synthesize`` (or the batch script, same options) is made from, for its marking.

    The model file is hashed here, once; the inputs when the sidecar is written.
    """
    from cones.marking import Provenance, file_sha256
    from cones.sequences import parse_sequence

    reference = getattr(args, "reference", None)
    options = {name: getattr(args, name) for name in _PROVENANCE_OPTIONS if hasattr(args, name)}
    return Provenance(
        target=card.targets[0],
        model_path=Path(args.model),
        model_sha256=file_sha256(args.model),
        card=card,
        inputs=dict(inputs),
        options={
            name: value if isinstance(value, bool | int | None) else str(value) for name, value in options.items()
        },
        series=dict(series),
        reference=parse_sequence(reference) if reference is not None else card.sources[0],
    )


def _add_precision_option(parser: argparse.ArgumentParser) -> None:
    from cones.precision import Precision

    parser.add_argument(
        "--precision",
        default=Precision.AUTO.value,
        choices=[precision.value for precision in Precision],
        help="number format of the network: auto (bf16 where the CPU or GPU has bf16 units, else fp32), fp32 or bf16",
    )


def _synthesize(args: argparse.Namespace) -> None:
    """``cones synthesize``: all its outputs (volume, sidecar, maps, brain mask, prepared files, label map) or none.

    A Ctrl-C or a failure half-way must not leave a map without its volume, or a volume without the
    sidecar that says it is synthetic (:func:`cones.outputs.published_together`).
    """
    from cones.outputs import published_together

    with published_together():
        written = _synthesize_staged(args)
    print(written)


def _synthesis_options(args: argparse.Namespace) -> SynthesisOptions:
    """The network's options, refused before anything is read: an option error must not wait for the input checks."""
    from cones.inference import SynthesisOptions

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be 1 or more, got {args.batch_size}")
    return SynthesisOptions(device=args.device, batch_size=args.batch_size, precision=args.precision)


def _synthesize_staged(args: argparse.Namespace) -> str:
    """Synthesize and stage every output; returns the line that says where the synthesized volume went."""
    from cones.checkpoint import load_model
    from cones.data import IMAGE_SUFFIXES, read_image
    from cones.domain.checks import Preparation
    from cones.inference import model_sources, synthesize_images, synthesize_images_with_uncertainty
    from cones.marking import OutputFormat, write_synthesized
    from cones.sequences import Sequence, parse_input_series, parse_sequence_inputs

    options = _synthesis_options(args)
    inputs = parse_sequence_inputs(args.input)
    series = parse_input_series(args.series, inputs)
    output = check_synthesis_outputs(args, inputs, IMAGE_SUFFIXES, IMAGE_SUFFIXES)
    preprocessing_cli.check_prepare_outputs(args, inputs, output)
    model = load_model(args.model)
    trust_cli.check_trust_outputs(args, model.card, inputs, output)
    images = {
        sequence: read_image(path, series.get(sequence), resample_slices=args.resample)
        for sequence, path in inputs.items()
    }
    labels = {sequence: f"{sequence.display_name} ({path})" for sequence, path in inputs.items()}
    if args.prepare:
        preprocessing_cli.require_registrable(model.card, images, labels)
    elif not args.resample:
        preprocessing_cli.require_one_grid(model.card, images)
    segmentation = segmentation_cli.prepare_segmentation(args, model.card, images)  # refusals before synthesis
    domain_cli.warn_unused_inputs(model.card, inputs, () if segmentation is None else segmentation.sequences)
    preparation = Preparation.PENDING if args.prepare else Preparation.AS_GIVEN
    checks = domain_cli.run_checks(
        model.card, model_sources(model.card.sources, images), preparation, args.strict, labels
    )

    def report(done: int, total: int) -> None:
        print(f"CONES_PROGRESS {done} {total} synthesize", flush=True)

    sources = images
    uncertainty = None
    preparation_section = {}
    if args.prepare:
        prepared = preprocessing_cli.synthesize_prepared(
            args, model, images, options, uncertainty=trust_cli.wants_uncertainty(args), labels=labels
        )
        results, uncertainty = prepared.outputs, prepared.uncertainty
        checks = checks.merged(prepared.checks)
        on_output_grid = prepared.prepared.registered
        preparation_section = {"preparation": prepared.prepared.report.to_dict()}
        if segmentation is not None:
            sources = preprocessing_cli.segmentation_sources(prepared.prepared)
    else:
        synthesis = dict(resample=args.resample, options=options, progress=report, input_checks=False)
        if trust_cli.wants_uncertainty(args):
            results, uncertainty = synthesize_images_with_uncertainty(model, images, **synthesis)
        else:
            results = synthesize_images(model, images, **synthesis)
        on_output_grid = images
    if len(results) != 1:
        raise ValueError(f"the model synthesizes {len(results)} sequences; this command writes one output file")
    synthesized = next(iter(results.values()))
    provenance = synthesis_provenance(args, inputs, series, model.card)
    maps = trust_cli.write_trust_outputs(
        args,
        synthesized,
        None if uncertainty is None else next(iter(uncertainty.values())),
        on_output_grid.get(Sequence.T1),
        provenance,
    )
    write_synthesized(
        synthesized,
        output,
        provenance,
        output_format=OutputFormat(args.output_format),
        overwrite=args.overwrite,
        sections={"input_checks": checks.to_dict(), **preparation_section, **maps},
    )
    segmentation_cli.segment_after_synthesis(args, segmentation, sources, results, provenance)
    return f"synthesized {model.card.targets[0].display_name} written to {output}"


def _info(args: argparse.Namespace) -> None:
    from cones.checkpoint import describe_model
    from cones.segmentation.builtin import describe_segmentation_model, is_segmentation_model_file

    if is_segmentation_model_file(args.model):
        print(describe_segmentation_model(args.model))
    else:
        print(describe_model(args.model))


def _export(args: argparse.Namespace) -> None:
    from cones.checkpoint import strip_training_state
    from cones.outputs import check_output_file

    check_output_file(args.output, overwrite=args.overwrite, reads={"the model being exported": args.model})
    domain = None
    if args.training_domain_from is not None:
        from cones.checkpoint import read_model_card
        from cones.data import find_cases, require_sequences
        from cones.domain import measure_cases

        card = read_model_card(args.model)
        cases = require_sequences(find_cases(args.training_domain_from), card.sources)
        domain = measure_cases(cases, card.sources, card.normalization, card.slice_axis, args.resample)
    exported = strip_training_state(args.model, args.output, overwrite=args.overwrite, training_domain=domain)
    print(f"inference-only model written to {exported} ({exported.stat().st_size / 2**20:.1f} MiB)")


def _bench(args: argparse.Namespace) -> None:
    from cones.bench import benchmark_preset, format_table
    from cones.checkpoint import load_model

    def bench(preset: str, arch: str, model: LoadedModel | None = None) -> list[BenchmarkResult]:
        volume = None if args.no_volume else args.size
        return benchmark_preset(
            preset,
            args.device,
            volume_shape=volume,
            batch_size=args.batch_size,
            repeats=args.repeats,
            precision=args.precision,
            arch=arch,
            compare=args.compare,
            model=model,
        )

    if args.model is not None:
        results = bench(args.preset[0], args.arch[0], load_model(args.model))
    else:
        results = [result for preset in args.preset for arch in args.arch for result in bench(preset, arch)]
    print(format_table(results))


def _evaluate(args: argparse.Namespace) -> None:
    from cones.evaluation import evaluate

    result = evaluate(
        args.model,
        args.data,
        args.output,
        case_ids=tuple(args.cases),
        fit_from=args.fit_from,
        device=args.device,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        precision=args.precision,
        uncertainty=args.uncertainty,
        ceiling=args.ceiling,
    )
    print((result.output_dir / "table.md").read_text(), end="")
    means = result.summary["calibration"]["mean"].items()
    print(
        "brain median / 90th percentile, model scale: "
        + ", ".join(f"{m} {v['median']:.3f} / {v['p90']:.3f}" for m, v in means)
    )
    for row in result.summary.get("uncertainty", {}).get("per_case", []):
        print(
            f"uncertainty of {row['method']} on {row['case']}: Spearman {row['spearman']:.3f} with the error, "
            f"most uncertain 10 % carry {row['top_decile_ratio']:.2f}x the error of the least uncertain half"
        )
    print(f"evaluation written to {result.output_dir}: {', '.join(path.name for path in result.files.values())}")


def _sample_data(args: argparse.Namespace) -> None:
    from cones.outputs import check_output_folder
    from cones.sample_data import SampleDataConfig, write_sample_dataset

    check_output_folder(args.out)
    config = SampleDataConfig(
        shape=tuple(args.size), spacing_mm=args.spacing, acquisition_variation=args.acquisition_variation
    )
    motion = {"max_rotation_deg": args.max_rotation, "max_translation_mm": args.max_translation}
    motion = {name: value for name, value in motion.items() if value is not None}
    if not args.raw:
        if motion:
            raise ValueError("--max-rotation and --max-translation apply to --raw cases only")
        folders = write_sample_dataset(Path(args.out), args.cases, args.seed, config=config, overwrite=args.overwrite)
        print(f"{len(folders)} sample case(s) written to {args.out}")
        return
    from cones.sample_data.raw import RawAcquisitionConfig, write_raw_dataset

    folders = write_raw_dataset(
        Path(args.out), args.cases, args.seed, config, RawAcquisitionConfig(**motion), overwrite=args.overwrite
    )
    print(f"{len(folders)} raw sample case(s) written to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the Slicer training module, which builds the same command)."""
    parser = argparse.ArgumentParser(prog="cones", description="CoNeS multi-sequence MRI synthesis")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a folder of cases")
    train.add_argument("--data", required=True, help="folder of case folders (BraTS naming)")
    train.add_argument("--sources", nargs="+", required=True, help="source sequences, e.g. t1 t2 flair")
    train.add_argument("--target", nargs="+", required=True, help="target sequence(s), e.g. t1ce")
    train.add_argument("--preset", default="lite", choices=["lite", "paper"])
    train.add_argument(
        "--arch",
        default="cones",
        choices=_ARCHITECTURES,
        help="generator: CoNeS, or the baselines pix2pix, asapnet, pgan and resvit (each with its published losses)",
    )
    train.add_argument("--iterations", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--crop-size", type=int, nargs=2, default=(160, 128), metavar=("ROWS", "COLS"))
    train.add_argument("--validation-cases", type=int, default=1)
    train.add_argument(
        "--validation-case-ids",
        nargs="+",
        default=(),
        metavar="CASE",
        help="validate on these cases instead of the last --validation-cases",
    )
    train.add_argument("--validation-interval", type=int, default=500)
    train.add_argument("--checkpoint-interval", type=int, default=500)
    train.add_argument("--log-interval", type=int, default=10)
    train.add_argument("--slice-axis", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-augment", action="store_true")
    train.add_argument(
        "--bright-crop-fraction",
        type=float,
        default=0.0,
        help="share of each batch's crops placed around bright target pixels (enhancement); 0: uniform, as the paper",
    )
    train.add_argument(
        "--bright-crop-threshold",
        type=float,
        default=0.5,
        help="normalized target value in (-1, 1) above which a pixel counts as bright",
    )
    train.add_argument("--resample", action="store_true", help="resample sequences onto the first source")
    train.add_argument("--resume", action="store_true", help="continue the run in --output")
    train.add_argument(
        "--allow-new-data",
        action="store_true",
        help="let --resume continue on data other than the run's (the model keeps the earlier data fingerprints)",
    )
    train.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start the generator from this trained model (fine-tuning; discriminator and optimizers start afresh)",
    )
    train.add_argument("--data-description", help="which data this is (recorded in the model)")
    train.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda[:N] or mps")
    train.add_argument("--output", required=True, help="run folder (last.pt, best.pt, log.jsonl)")
    train.set_defaults(handler=_train)

    synthesize = commands.add_parser("synthesize", help="synthesize the missing sequence of one case")
    synthesize.add_argument("--model", required=True)
    synthesize.add_argument(
        "--input",
        nargs="+",
        action="extend",
        type=_input_pair,
        required=True,
        metavar="SEQUENCE=PATH",
        help="one per source sequence, e.g. t1=T1.nii.gz or t1=DICOM_FOLDER (each sequence once)",
    )
    synthesize.add_argument(
        "--series",
        nargs="+",
        action="extend",
        default=[],
        metavar="SEQUENCE=SERIES_UID",
        help="the series to read from a DICOM folder --input that holds several",
    )
    synthesize.add_argument(
        "--output",
        required=True,
        help="the volume file to write (marked SYNTHETIC, with <output>.json beside it), or with "
        "--output-format dicom a new or empty folder for the series",
    )
    synthesize.add_argument(
        "--output-format",
        default="file",
        choices=_OUTPUT_FORMATS,
        help="file: one volume, its format from its ending; dicom: a derived MR series joining the reference "
        "input's DICOM patient and study",
    )
    synthesize.add_argument("--overwrite", action="store_true")
    synthesize.add_argument(
        "--resample", action="store_true", help="resample sources onto the first source (no registration)"
    )
    synthesize.add_argument("--batch-size", type=int, help="slices per forward pass (default: 1 on CPU, 4 on CUDA)")
    synthesize.add_argument(
        "--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda[:N] or mps"
    )
    _add_precision_option(synthesize)
    preprocessing_cli.add_synthesize_options(synthesize)
    domain_cli.add_synthesize_options(synthesize)
    segmentation_cli.add_synthesize_options(synthesize)
    trust_cli.add_synthesize_options(synthesize)
    synthesize.set_defaults(handler=_synthesize)

    info = commands.add_parser("info", help="describe a model file (synthesis or segmentation)")
    info.add_argument("model")
    info.set_defaults(handler=_info)

    export = commands.add_parser("export", help="copy a model without its training state (for sharing)")
    export.add_argument("model", help="a model file, e.g. RUN/last.pt")
    export.add_argument("--output", required=True, help="the smaller, inference-only model file to write")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument(
        "--training-domain-from",
        metavar="DATA",
        help="measure the training domain (spacing, skull, intensity statistics) on this folder of the cases the "
        "model was trained on and record it in the copy's card (for models trained before it was recorded)",
    )
    export.add_argument("--resample", action="store_true", help="with --training-domain-from: as cones train")
    export.set_defaults(handler=_export)

    bench = commands.add_parser("bench", help="speed and memory of the presets and architectures")
    bench.add_argument("--preset", nargs="+", default=["lite", "paper"], choices=["lite", "paper"])
    bench.add_argument("--arch", nargs="+", default=["cones"], choices=_ARCHITECTURES)
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--model", help="time this trained model (replaces --preset and --arch; gives PSNR vs fp32)")
    bench.add_argument("--size", type=_size, default=(240, 240, 155), help="volume size, e.g. 240x240x155")
    bench.add_argument("--no-volume", action="store_true", help="time single slices only")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument(
        "--batch-size", type=int, help="slices per forward pass in the volume run (default: 1 on CPU, 4 on CUDA)"
    )
    _add_precision_option(bench)
    bench.add_argument(
        "--compare",
        action="store_true",
        help="time every compute path (fp32, bf16, each also channels_last) side by side, with PSNR against fp32",
    )
    bench.set_defaults(handler=_bench)

    evaluation = commands.add_parser("evaluate", help="score models and baselines on held-out cases, two protocols")
    evaluation.add_argument(
        "--model",
        action="append",
        required=True,
        help="a model file; repeat for several (the first is the reference of the p-values)",
    )
    evaluation.add_argument("--data", required=True, help="folder of case folders with sources, target, labels")
    evaluation.add_argument("--output", required=True, help="folder for metrics.csv, summary.json, table.md, figures")
    evaluation.add_argument("--cases", nargs="+", default=(), metavar="CASE", help="evaluate only these cases")
    evaluation.add_argument(
        "--fit-from",
        "--mean-from",
        dest="fit_from",
        help="cases (e.g. the training data) the mean imputation and the learned-linear map are fitted on"
        " (default: leave-one-out over the evaluated cases)",
    )
    evaluation.add_argument("--batch-size", type=int, help="slices per forward pass (default: 1 on CPU, 4 on CUDA)")
    evaluation.add_argument(
        "--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda[:N] or mps"
    )
    _add_precision_option(evaluation)
    evaluation.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --output")
    evaluation.add_argument(
        "--uncertainty",
        action="store_true",
        help="also score each model's uncertainty map against its error (uncertainty.csv, uncertainty_calibration.png;"
        " about 4x the synthesis time)",
    )
    evaluation.add_argument(
        "--ceiling",
        action="store_true",
        help="also score linear_ceiling, the linear map fitted on each case's own target (a ceiling, not a method)",
    )
    evaluation.set_defaults(handler=_evaluate)

    sample = commands.add_parser("sample-data", help="generate BraTS-style glioma cases from real anatomy")
    sample.add_argument("--out", required=True, help="dataset folder to write the case folders into")
    sample.add_argument("--cases", type=int, default=1)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--size", type=_size, default=(240, 240, 155), help="grid in voxels, e.g. 240x240x155")
    sample.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size in mm")
    sample.add_argument("--overwrite", action="store_true", help="replace case folders that already exist")
    sample.add_argument(
        "--acquisition-variation",
        type=float,
        default=0.0,
        metavar="V",
        help="domain randomization: per case, scale each sequence's TR and TE and the contrast dose by factors in"
        " [1/(1+V), 1+V] (default 0: the same protocols for every case; not with --raw)",
    )
    sample.add_argument(
        "--raw",
        action="store_true",
        help="write raw-looking cases instead: the head with skull and scalp, each sequence moved and on its own "
        "grid, with the brain mask and the true transforms (<case>_<sequence>_truth.tfm, T1 space to the sequence's)",
    )
    sample.add_argument(
        "--max-rotation", type=float, metavar="DEG", help="--raw: largest rotation against T1 (default 10)"
    )
    sample.add_argument(
        "--max-translation", type=float, metavar="MM", help="--raw: largest shift against T1 (default 10)"
    )
    sample.set_defaults(handler=_sample_data)

    segmentation_cli.add_commands(commands)
    return parser


def main(argv: SequenceOf[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for refused input, as argparse does)."""
    args = build_parser().parse_args(argv)
    from cones.messages import CommandLineFormatter, capture_itk_messages

    handler = logging.StreamHandler()
    handler.setFormatter(CommandLineFormatter())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    capture_itk_messages()
    try:
        args.handler(args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _interrupted()
    return 0


def run() -> NoReturn:
    """The ``cones`` program: :func:`main`, then end the process at once, so that Ctrl-C always says so.

    After :func:`main` returns, the interpreter tears torch down for a tenth of a second, first
    still turning Ctrl-C into a traceback of its own (exit 0), then no longer at all (the process
    dies by the signal, saying nothing). Exit handlers run, and the process ends before either
    can happen; a Ctrl-C from here on prints the ``interrupted`` line and ends with 130.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # after main's own handling, as it returned
        code = _interrupted()
    signal.signal(signal.SIGINT, _interrupted_at_exit)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _interrupted() -> int:
    print("error: interrupted", file=sys.stderr)
    return _INTERRUPTED


def _interrupted_at_exit(signum: int, frame: object) -> None:
    sys.stdout.flush()
    print("error: interrupted", file=sys.stderr, flush=True)
    os._exit(_INTERRUPTED)


if __name__ == "__main__":
    run()
