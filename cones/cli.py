"""The ``cones`` command line: train, synthesize, info, export, bench, sample-data.

Errors in the user's input (missing sequence, mismatched grids, an existing output, a refused
model file) end the command with exit code 2 and one ``error:`` line naming the problem; nothing
is written in that case.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence as SequenceOf
from pathlib import Path

__all__ = ["main"]

logger = logging.getLogger("cones")


def _pair(text: str) -> tuple[str, str]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected SEQUENCE=PATH, got {text!r}")
    return name, path


def _size(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 240x240x155, got {text!r}") from None


def _train(args: argparse.Namespace) -> None:
    from cones.training.config import TrainConfig
    from cones.training.run import train

    config = TrainConfig(
        sources=tuple(args.sources),
        targets=tuple(args.target),
        preset=args.preset,
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
    )
    print(f"model written to {last}")


def _synthesize(args: argparse.Namespace) -> None:
    from cones.checkpoint import load_model
    from cones.data import read_image, write_image
    from cones.inference import SynthesisOptions, synthesize_images
    from cones.sequences import parse_sequence

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    model = load_model(args.model)
    images = {parse_sequence(name): read_image(path) for name, path in args.input}
    options = SynthesisOptions(device=args.device, batch_size=args.batch_size)

    def report(done: int, total: int) -> None:
        print(f"CONES_PROGRESS {done} {total} synthesize", flush=True)

    results = synthesize_images(model, images, resample=args.resample, options=options, progress=report)
    if len(results) != 1:
        raise ValueError(f"the model synthesizes {len(results)} sequences; this command writes one output file")
    write_image(next(iter(results.values())), output, overwrite=args.overwrite)
    print(f"synthesized {model.card.targets[0].display_name} written to {output}")


def _info(args: argparse.Namespace) -> None:
    from cones.checkpoint import describe_model

    print(describe_model(args.model))


def _export(args: argparse.Namespace) -> None:
    from cones.checkpoint import strip_training_state

    exported = strip_training_state(args.model, args.output, overwrite=args.overwrite)
    print(f"inference-only model written to {exported} ({exported.stat().st_size / 2**20:.1f} MiB)")


def _bench(args: argparse.Namespace) -> None:
    from cones.bench import benchmark_preset, format_table

    volume = None if args.no_volume else args.size
    results = [
        benchmark_preset(preset, args.device, volume_shape=volume, repeats=args.repeats, bfloat16=args.bf16)
        for preset in args.preset
    ]
    print(format_table(results))


def _sample_data(args: argparse.Namespace) -> None:
    from cones.sample_data import SampleDataConfig, write_sample_dataset

    config = SampleDataConfig(shape=tuple(args.size), spacing_mm=args.spacing)
    folders = write_sample_dataset(Path(args.out), args.cases, args.seed, config=config, overwrite=args.overwrite)
    print(f"{len(folders)} sample case(s) written to {args.out}")


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
    train.add_argument("--iterations", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--crop-size", type=int, nargs=2, default=(160, 128), metavar=("ROWS", "COLS"))
    train.add_argument("--validation-cases", type=int, default=1)
    train.add_argument("--validation-case-ids", nargs="+", default=(), metavar="CASE",
                       help="validate on these cases instead of the last --validation-cases")
    train.add_argument("--validation-interval", type=int, default=500)
    train.add_argument("--checkpoint-interval", type=int, default=500)
    train.add_argument("--log-interval", type=int, default=10)
    train.add_argument("--slice-axis", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--resample", action="store_true", help="resample sequences onto the first source")
    train.add_argument("--resume", action="store_true", help="continue the run in --output")
    train.add_argument("--data-description", help="which data this is (recorded in the model)")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--output", required=True, help="run folder (last.pt, best.pt, log.jsonl)")
    train.set_defaults(handler=_train)

    synthesize = commands.add_parser("synthesize", help="synthesize the missing sequence of one case")
    synthesize.add_argument("--model", required=True)
    synthesize.add_argument("--input", nargs="+", type=_pair, required=True, metavar="SEQUENCE=PATH")
    synthesize.add_argument("--output", required=True)
    synthesize.add_argument("--overwrite", action="store_true")
    synthesize.add_argument("--resample", action="store_true", help="resample sources onto the first source")
    synthesize.add_argument("--batch-size", type=int, default=4)
    synthesize.add_argument("--device", default="auto", help="auto, cpu or cuda")
    synthesize.set_defaults(handler=_synthesize)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model")
    info.set_defaults(handler=_info)

    export = commands.add_parser("export", help="copy a model without its training state (for sharing)")
    export.add_argument("model", help="a model file, e.g. RUN/last.pt")
    export.add_argument("--output", required=True, help="the smaller, inference-only model file to write")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(handler=_export)

    bench = commands.add_parser("bench", help="speed and memory of the presets")
    bench.add_argument("--preset", nargs="+", default=["lite", "paper"], choices=["lite", "paper"])
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--size", type=_size, default=(240, 240, 155), help="volume size, e.g. 240x240x155")
    bench.add_argument("--no-volume", action="store_true", help="time single slices only")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (CUDA)")
    bench.set_defaults(handler=_bench)

    sample = commands.add_parser("sample-data", help="generate BraTS-style glioma cases from real anatomy")
    sample.add_argument("--out", required=True, help="dataset folder to write the case folders into")
    sample.add_argument("--cases", type=int, default=1)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--size", type=_size, default=(240, 240, 155), help="grid in voxels, e.g. 240x240x155")
    sample.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size in mm")
    sample.add_argument("--overwrite", action="store_true", help="replace case folders that already exist")
    sample.set_defaults(handler=_sample_data)
    return parser


def main(argv: SequenceOf[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for refused input, as argparse does)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.handler(args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
