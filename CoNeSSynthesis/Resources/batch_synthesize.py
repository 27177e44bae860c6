"""Synthesize a missing MRI sequence without a GUI, through MRML, exactly as the CoNeSSynthesis module does.

Usage (inside Slicer, or a plain Python with the slicer-core wheel and the CoNeS requirements)::

    Slicer --no-main-window --python-script batch_synthesize.py --model M.pt \\
        --input t1=t1.nii.gz t2=t2.nii.gz flair=flair.nii.gz --output t1ce_synthesized.nrrd
    python batch_synthesize.py --model M.pt --input t1=... t2=... flair=... --output out.nrrd \
        [--segment SEGRUN/last.pt --segmentation-output tumour.seg.nrrd]

The inputs are loaded into an MRML scene through storage nodes (keeping left-handed grids as they
are), the CoNeSSynthesis library checks and synthesizes them, and the result is saved through a
storage node, on the grid of the first source. With ``--segment``, the tumour is segmented after
synthesis, as the module's "Segment after synthesis" does, and the segmentation node (named,
coloured NCR, ED and ET segments) is saved as a ``.seg.nrrd`` that Slicer opens as it was. Exit
codes: 0 done; 2 refused input (one ``error: ...`` line, nothing written); 1 the synthesis failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

MODULE_DIRECTORY = Path(__file__).resolve().parent.parent
"""The folder with ``CoNeSSynthesisLib``: the module folder in a checkout, ``qt-scripted-modules`` installed."""
if str(MODULE_DIRECTORY) not in sys.path:
    sys.path.insert(0, str(MODULE_DIRECTORY))

import slicer  # noqa: E402
from CoNeSSynthesisLib.jobs import Device, Progress, pythonInterpreter  # noqa: E402
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis  # noqa: E402

from cones.segmentation.cli import SEGMENTATION_STAGE  # noqa: E402
from cones.sequences import parse_sequences  # noqa: E402

REFUSED, FAILED = 2, 1

OUTPUT_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")
"""Single-file volume formats: an output written to a temporary name and renamed keeps its voxels."""
SEGMENTATION_SUFFIX = ".seg.nrrd"
"""Slicer's segmentation file: it keeps the segments' names, colours and geometry."""


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """The options; mirror ``cones synthesize`` so a command line moves between the two unchanged."""
    parser = argparse.ArgumentParser(prog="batch_synthesize.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a CoNeS model file")
    parser.add_argument("--input", nargs="+", required=True, metavar="SEQUENCE=PATH", help="one per source")
    parser.add_argument("--output", required=True, help="the file to write (.nrrd, .nii.gz, .nii, .mha ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--resample", action="store_true", help="resample sources onto the first source's grid")
    parser.add_argument("--device", default=Device.AUTO.value, choices=[device.value for device in Device])
    parser.add_argument("--segment", metavar="SEGMODEL", help="then segment the tumour with this segmentation model")
    parser.add_argument(
        "--segmentation-output", metavar="PATH", help=f"the segmentation to write ({SEGMENTATION_SUFFIX})"
    )
    return parser.parse_args(argv)


def parseInputs(pairs: list[str]) -> dict[str, Path]:
    """``["t1=a.nrrd", ...]`` as ``{"t1": Path("a.nrrd"), ...}``.

    Raises:
        ValueError: a pair is malformed, a name is no sequence, or a sequence is given twice.
    """
    names, paths = [], []
    for pair in pairs:
        name, separator, path = pair.partition("=")
        if not separator or not name or not path:
            raise ValueError(f"expected SEQUENCE=PATH, got {pair!r}")
        names.append(name)
        paths.append(Path(path))
    parse_sequences(names)
    return dict(zip(names, paths, strict=True))


def loadVolume(scene: slicer.vtkMRMLScene, path: Path) -> slicer.vtkMRMLScalarVolumeNode:
    """Load a file into a new volume node through a storage node, keeping its voxel grid as stored.

    Raises:
        ValueError: the file does not exist or is not a readable volume.
    """
    if not path.is_file():
        raise ValueError(f"input file {str(path)!r} does not exist")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    # Slicer flips left-handed grids on reading by default; the output must overlay the file voxel for voxel.
    storage.SetForceRightHandedIJKCoordinateSystem(False)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", storage.GetFileNameWithoutExtension())
    if not storage.ReadData(node):
        raise ValueError(f"cannot read {str(path)!r} as a volume")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def checkOutput(path: Path, overwrite: bool, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> None:
    """Refuse an output before any work is done if it may not or cannot be written.

    Raises:
        ValueError: the file exists and ``overwrite`` is off, or its name ends with none of ``suffixes``.
    """
    if path.exists() and not overwrite:
        raise ValueError(f"{str(path)!r} already exists; pass --overwrite to replace it")
    if not path.name.lower().endswith(suffixes):
        raise ValueError(f"cannot write {str(path)!r}: the output must end with one of {', '.join(suffixes)}")


def checkSegmentationOptions(arguments: argparse.Namespace) -> None:
    """Refuse half of the segmentation options, or a segmentation output that may not be written.

    Raises:
        ValueError: only one of ``--segment`` and ``--segmentation-output`` is given, or see :func:`checkOutput`.
    """
    if (arguments.segment is None) != (arguments.segmentation_output is None):
        raise ValueError("--segment and --segmentation-output must be given together")
    if arguments.segmentation_output is not None:
        checkOutput(Path(arguments.segmentation_output), arguments.overwrite, (SEGMENTATION_SUFFIX,))


def writeAtomically(path: Path, suffix: str, write: Callable[[str], bool]) -> None:
    """Write with ``write(temporaryName)`` into a temporary file beside ``path``, then rename it into place.

    The rename is atomic, so an interrupted run never leaves a truncated output that looks valid.

    Raises:
        OSError: ``write`` returned False (nothing is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        if not write(temporary):
            raise OSError(f"cannot write {str(path)!r}")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def saveNode(scene: slicer.vtkMRMLScene, node: slicer.vtkMRMLNode, path: Path, storageClass: str) -> None:
    """Write a node through a new storage node of ``storageClass`` (see :func:`writeAtomically`).

    Raises:
        OSError: the storage node could not write the file (nothing is left behind).
    """
    suffix = next(suffix for suffix in (SEGMENTATION_SUFFIX, *OUTPUT_SUFFIXES) if path.name.lower().endswith(suffix))
    storage = scene.AddNewNodeByClass(storageClass)

    def write(temporary: str) -> bool:
        storage.SetFileName(temporary)
        return bool(storage.WriteData(node))

    writeAtomically(path, suffix, write)


def printProgress(progress: Progress) -> None:
    if progress.stage == SEGMENTATION_STAGE:
        print("segmenting the tumour", flush=True)
    else:
        print(f"synthesized {progress.done} of {progress.total} slices", flush=True)


def synthesize(arguments: argparse.Namespace) -> Path:
    """Load, check, synthesize and save; returns the output path.

    Raises:
        ValueError: refused input (the message says what and how to fix it).
        RuntimeError, OSError: the synthesis or the writing failed.
    """
    scene = slicer.vtkMRMLScene()
    output = Path(arguments.output)
    checkOutput(output, arguments.overwrite)
    checkSegmentationOptions(arguments)
    volumes = {name: loadVolume(scene, path) for name, path in parseInputs(arguments.input).items()}
    request = prepareSynthesis(
        arguments.model,
        volumes,
        device=arguments.device,
        allowResampling=arguments.resample,
        segmentationModelPath=arguments.segment,
    )
    job = SynthesisJob(
        scene, request, Path(tempfile.mkdtemp(prefix="cones-batch-")), pythonInterpreter(), onProgress=printProgress
    )
    job.run()
    job.raiseForStatus()
    saveNode(scene, job.outputNode, output, "vtkMRMLVolumeArchetypeStorageNode")
    if job.segmentationNode is not None:
        segmentationOutput = Path(arguments.segmentation_output)
        saveNode(scene, job.segmentationNode, segmentationOutput, "vtkMRMLSegmentationStorageNode")
        print(f"tumour segmentation written to {segmentationOutput}")
    return output


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns the exit code."""
    arguments = parseArguments(argv)
    try:
        output = synthesize(arguments)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    except (RuntimeError, OSError) as error:
        print(f"error: synthesis failed: {error}", file=sys.stderr)
        return FAILED
    print(f"synthesized volume written to {output}")
    return 0


def exitWith(status: int) -> None:
    """End the process with ``status``; inside Slicer through the application, which owns the event loop."""
    if hasattr(slicer, "app"):
        slicer.util.exit(status)
    else:
        sys.exit(status)


if __name__ == "__main__":
    exitWith(main(sys.argv[1:]))
