"""The segmentation commands of the ``cones`` command line, and its ``synthesize --segment`` option.

``cones.cli`` owns the parser; this module only adds to it, so the segmentation commands live
next to the code they run. ``cones.cli`` wires it in with a few calls::

    add_commands(commands)                                  # train-seg, evaluate-segmentation
    add_synthesize_options(synthesize)                      # --segment, --segmentation-output
    segmentation = prepare_segmentation(args, model.card, images)        # before synthesis
    segment_after_synthesis(args, segmentation, images, results, provenance)  # after it

Heavy imports (MONAI, onnxruntime, nnU-Net) wait until a handler runs, which keeps ``cones --help`` fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cones.sequences import Sequence

if TYPE_CHECKING:
    import SimpleITK as sitk

    from cones.checkpoint import ModelCard
    from cones.marking import Provenance
    from cones.segmentation.base import SegmentationModel

__all__ = [
    "SEGMENTATION_STAGE",
    "add_commands",
    "add_synthesize_options",
    "prepare_segmentation",
    "segment_after_synthesis",
]

SEGMENTATION_STAGE = "segment"
"""The stage of the ``CONES_PROGRESS`` line ``synthesize --segment`` prints when segmentation starts."""
_ALL_SEQUENCES = ("t1", "t1ce", "t2", "flair")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-seg`` and ``evaluate-segmentation`` (with their handlers) to the ``cones`` subcommands."""
    train = subparsers.add_parser("train-seg", help="train the built-in 3D U-Net tumour segmentation")
    train.add_argument("--data", required=True, help="folder of case folders with a <case>_seg label map each")
    train.add_argument("--sequences", nargs="+", default=list(_ALL_SEQUENCES), help="input sequences, in order")
    train.add_argument("--output", required=True, help="run folder (last.pt, training_state.pt, log.jsonl)")
    train.add_argument("--iterations", type=int, default=2000, help="steps in all (with --resume: the new total)")
    train.add_argument("--batch-size", type=int, default=2)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--patch-size", type=int, nargs=3, default=(64, 64, 64), metavar=("Z", "Y", "X"))
    train.add_argument("--channels", type=int, nargs="+", default=(16, 32, 64, 128), help="features per U-Net level")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--checkpoint-interval", type=int, default=100, help="steps between checkpoints")
    train.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    train.add_argument(
        "--init-from",
        metavar="SEGMODEL",
        help="start from this train-seg model (fine-tuning; the optimizer starts afresh)",
    )
    train.add_argument("--data-description", help="which data, with attribution (recorded in the model file)")
    train.set_defaults(handler=_train_seg)

    evaluate = subparsers.add_parser(
        "evaluate-segmentation", help="segmentation with a sequence missing: real, zeros, mean, synthesis (Table 5)"
    )
    evaluate.add_argument("--seg-model", required=True, help="SEGRUN/last.pt, an nnU-Net folder, or .onnx/.ts + .json")
    evaluate.add_argument("--data", required=True, help="folder of labelled case folders")
    evaluate.add_argument("--missing", required=True, help="the sequence taken away, e.g. t1ce")
    evaluate.add_argument(
        "--synthesis-model",
        action="append",
        default=[],
        help="a model that synthesizes --missing (adds a row); repeat for CoNeS and baselines",
    )
    evaluate.add_argument(
        "--fit-from",
        metavar="DIR",
        help="cases (the training data) the learned-linear row is fitted on (default: leave-one-out over --data)",
    )
    evaluate.add_argument(
        "--copy-from",
        metavar="SEQUENCE",
        help="the sequence copied in place of --missing (default: T1 for T1ce and back, T2 for FLAIR and back)",
    )
    evaluate.add_argument("--output", required=True, help="folder for segmentation.csv and segmentation.md")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an earlier result in --output")
    evaluate.add_argument(
        "--batch-size", type=int, help="slices per synthesis forward pass (default: 1 on CPU, 4 on CUDA)"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate.set_defaults(handler=_evaluate_segmentation)


def add_synthesize_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--segment SEGMODEL`` and ``--segmentation-output PATH`` to the ``synthesize`` command."""
    from cones.segmentation.loading import BUNDLED_SEGMENTATION_MODEL

    parser.add_argument(
        "--segment",
        metavar="SEGMODEL",
        nargs="?",
        const=str(BUNDLED_SEGMENTATION_MODEL),
        help="then segment the tumour with this model (SEGRUN/last.pt, nnU-Net, ONNX); alone: the bundled "
        f"{BUNDLED_SEGMENTATION_MODEL.name}",
    )
    parser.add_argument("--segmentation-output", metavar="PATH", help="the label map to write (with --segment)")


def prepare_segmentation(
    args: argparse.Namespace, synthesis: ModelCard, images: Mapping[Sequence | str, sitk.Image]
) -> SegmentationModel | None:
    """Validate ``synthesize --segment`` before any synthesis starts, and load the segmentation model.

    Args:
        args: the ``synthesize`` namespace (``segment``, ``segmentation_output``, ``overwrite``,
            ``device`` and, when present, ``resample``).
        synthesis: the synthesis model's card (its targets complete the given sequences).
        images: the given images, keyed by sequence.

    Returns:
        The loaded segmentation model, or None when no segmentation was asked for.

    Raises:
        ValueError: only one of ``--segment`` and ``--segmentation-output`` is given, the
            segmentation model is refused, it needs a sequence that is neither given nor
            synthesized, or (without ``--resample``) the images it uses are on different grids.
            (The segmentation output itself is checked with the synthesis output, before this.)
    """
    if args.segment is None and args.segmentation_output is None:
        return None
    if args.segment is None or args.segmentation_output is None:
        raise ValueError("--segment and --segmentation-output must be given together")
    from cones.segmentation.chain import check_segmentation_grids, check_segmentation_inputs
    from cones.segmentation.loading import load_segmentation_model

    model = load_segmentation_model(args.segment, device=args.device)
    check_segmentation_inputs(model, images, synthesis.targets)
    if not (getattr(args, "resample", False) or getattr(args, "prepare", False)):
        check_segmentation_grids(model, images)
    return model


def segment_after_synthesis(
    args: argparse.Namespace,
    segmentation: SegmentationModel | None,
    images: Mapping[Sequence | str, sitk.Image],
    synthesized: Mapping[Sequence | str, sitk.Image],
    provenance: Provenance,
) -> Path | None:
    """Segment with the given and synthesized images and write ``--segmentation-output`` and its sidecar.

    A label map computed with a synthesized sequence is marked ``SEGMENTATION FROM SYNTHETIC ...``
    in its header, and its sidecar records the segmentation model and the synthesis.

    Args:
        args: the ``synthesize`` namespace.
        segmentation: what :func:`prepare_segmentation` returned; None does nothing.
        images: the given images.
        synthesized: what synthesis returned (on the grid of its first source).
        provenance: the synthesis (its marking and sidecar record).

    Returns:
        The written label map, or None when no segmentation was asked for.

    Raises:
        FileExistsError: the output exists and ``--overwrite`` is not given.
        ValueError: see :func:`cones.segmentation.chain.segment_with_synthesis`.
    """
    if segmentation is None:
        return None
    from cones.marking import segmentation_marking, write_segmentation_sidecar
    from cones.segmentation.chain import segment_to_file, synthesized_sequences_used, synthetic_segmentation_note
    from cones.segmentation.loading import read_segmentation_info

    print(f"CONES_PROGRESS 0 1 {SEGMENTATION_STAGE}", flush=True)
    resample = getattr(args, "resample", False)
    used = synthesized_sequences_used(segmentation, images, synthesized)
    written = segment_to_file(
        segmentation,
        images,
        synthesized,
        args.segmentation_output,
        overwrite=args.overwrite,
        resample=resample,
        marking=segmentation_marking(provenance.marking) if used else None,
    )
    write_segmentation_sidecar(written, provenance, args.segment, used, overwrite=args.overwrite)
    print(f"segmentation ({', '.join(segmentation.labels.names[1:])}) written to {written}")
    if used:
        print(synthetic_segmentation_note(read_segmentation_info(segmentation.source), used))
    return written


def _train_seg(args: argparse.Namespace) -> None:
    from cones.segmentation.builtin import UNetConfig
    from cones.segmentation.training import SegmentationTrainingConfig, train_segmentation

    channels = tuple(args.channels)
    network = UNetConfig(channels=channels, strides=(2,) * (len(channels) - 1), patch_size=tuple(args.patch_size))
    config = SegmentationTrainingConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        network=network,
        seed=args.seed,
        checkpoint_interval=args.checkpoint_interval,
    )

    def report(done: int, total: int, loss: float) -> None:
        print(f"CONES_PROGRESS {done} {total} train-seg loss={loss:.4f}", flush=True)

    last = train_segmentation(
        args.data,
        args.sequences,
        args.output,
        config,
        device=args.device,
        command=shlex.join(["cones", *sys.argv[1:]]),
        data_description=args.data_description,
        progress=report,
        resume=args.resume,
        initial_model=args.init_from,
    )
    print(f"segmentation model written to {last}")


def _evaluate_segmentation(args: argparse.Namespace) -> None:
    from cones.checkpoint import load_model
    from cones.inference import SynthesisOptions
    from cones.segmentation.evaluation import MARKDOWN_NAME, evaluate_segmentation
    from cones.segmentation.loading import load_segmentation_model

    model = load_segmentation_model(args.seg_model, device=args.device)
    synthesis = [load_model(path, device="cpu") for path in args.synthesis_model]
    options = SynthesisOptions(device=args.device, batch_size=args.batch_size)

    def report(done: int, total: int) -> None:
        print(f"CONES_PROGRESS {done} {total} evaluate-segmentation", flush=True)

    evaluate_segmentation(
        model,
        args.data,
        args.missing,
        args.output,
        synthesis,
        options,
        overwrite=args.overwrite,
        progress=report,
        copy_from=args.copy_from,
        fit_from=args.fit_from,
    )
    print((Path(args.output) / MARKDOWN_NAME).read_text(encoding="utf-8"))
