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
codes: 0 done; 2 refused input (one ``error: ...`` line, nothing written); 1 the synthesis failed;
130 interrupted (Ctrl-C: the synthesis process is stopped, nothing is written or left behind).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

MODULE_DIRECTORY = Path(__file__).resolve().parent.parent
"""The folder with ``CoNeSSynthesisLib``: the module folder in a checkout, ``qt-scripted-modules`` installed."""
if str(MODULE_DIRECTORY) not in sys.path:
    sys.path.insert(0, str(MODULE_DIRECTORY))

import slicer  # noqa: E402
from CoNeSSynthesisLib.jobs import Device, Progress, pythonInterpreter  # noqa: E402
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis  # noqa: E402

from cones.cli import check_synthesis_outputs  # noqa: E402
from cones.data.io import read_image  # noqa: E402
from cones.outputs import write_atomically  # noqa: E402
from cones.precision import Precision  # noqa: E402
from cones.segmentation.cli import SEGMENTATION_STAGE  # noqa: E402
from cones.sequences import parse_sequence_inputs  # noqa: E402

REFUSED, FAILED, INTERRUPTED = 2, 1, 130

OUTPUT_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")
"""Single-file volume formats: an output written to a temporary name and renamed keeps its voxels."""
SEGMENTATION_SUFFIX = ".seg.nrrd"
"""Slicer's segmentation file: it keeps the segments' names, colours and geometry."""


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """The options; mirror ``cones synthesize`` so a command line moves between the two unchanged."""
    parser = argparse.ArgumentParser(prog="batch_synthesize.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a CoNeS model file")
    parser.add_argument(
        "--input", nargs="+", action="extend", required=True, metavar="SEQUENCE=PATH", help="one per source, each once"
    )
    parser.add_argument("--output", required=True, help="the file to write (.nrrd, .nii.gz, .nii, .mha ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--resample", action="store_true", help="resample sources onto the first source's grid")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="raw scans: co-register the sources to the first one and extract the brain before synthesis",
    )
    parser.add_argument("--device", default=Device.AUTO.value, choices=[device.value for device in Device])
    parser.add_argument(
        "--precision",
        default=Precision.AUTO.value,
        choices=[precision.value for precision in Precision],
        help="number format: auto (bf16 where the CPU or GPU has bf16 units), fp32 or bf16",
    )
    parser.add_argument("--segment", metavar="SEGMODEL", help="then segment the tumour with this segmentation model")
    parser.add_argument(
        "--segmentation-output", metavar="PATH", help=f"the segmentation to write ({SEGMENTATION_SUFFIX})"
    )
    return parser.parse_args(argv)


def loadVolume(scene: slicer.vtkMRMLScene, path: Path) -> slicer.vtkMRMLScalarVolumeNode:
    """Load a file into a new volume node through a storage node, keeping its voxel grid as stored.

    The file is first read by ``cones``, which refuses what Slicer's readers would load silently
    wrong: a truncated or corrupt NIfTI file (its missing part read as zeros) and NaN or infinite
    voxels (read as 0 from NIfTI).

    Raises:
        ValueError: the file does not exist, is not a readable volume, is truncated or corrupt, or
            holds NaN or infinite voxels; the message names the file.
    """
    if not path.is_file():
        raise ValueError(f"input file {str(path)!r} does not exist")
    read_image(path)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    # Slicer flips left-handed grids on reading by default; the output must overlay the file voxel for voxel.
    storage.SetForceRightHandedIJKCoordinateSystem(False)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", storage.GetFileNameWithoutExtension())
    if not storage.ReadData(node):
        raise ValueError(f"cannot read {str(path)!r} as a volume")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def checkSegmentationOptions(arguments: argparse.Namespace) -> None:
    """Refuse half of the segmentation options.

    Raises:
        ValueError: only one of ``--segment`` and ``--segmentation-output`` is given.
    """
    if (arguments.segment is None) != (arguments.segmentation_output is None):
        raise ValueError("--segment and --segmentation-output must be given together")


def saveNode(
    scene: slicer.vtkMRMLScene, node: slicer.vtkMRMLNode, path: Path, storageClass: str, overwrite: bool
) -> None:
    """Write a node through a new storage node of ``storageClass``, atomically (:func:`cones.outputs.write_atomically`).

    Raises:
        OutputExistsError: a file appeared at ``path`` while the synthesis ran and ``overwrite`` is off.
        OSError: the storage node could not write the file (nothing is left behind).
    """
    suffix = next(suffix for suffix in (SEGMENTATION_SUFFIX, *OUTPUT_SUFFIXES) if path.name.lower().endswith(suffix))
    storage = scene.AddNewNodeByClass(storageClass)

    def write(hidden: Path) -> None:
        storage.SetFileName(str(hidden))
        if not storage.WriteData(node):
            raise OSError(f"cannot write {str(path)!r}")

    write_atomically(path, write, overwrite=overwrite, suffix=suffix)


def printProgress(progress: Progress) -> None:
    if progress.stage == SEGMENTATION_STAGE:
        print("segmenting the tumour", flush=True)
    elif progress.stage == "extract-brain":
        print("extracting the brain" if progress.done == 0 else "brain extracted", flush=True)
    elif progress.stage == "register":
        print(f"co-registered {progress.done} of {progress.total} sequences", flush=True)
    else:
        print(f"synthesized {progress.done} of {progress.total} slices", flush=True)


def synthesize(arguments: argparse.Namespace) -> Path:
    """Check, load, synthesize and save; returns the output path.

    Everything that can be refused is refused before the synthesis starts; the work folder (the
    sources as the process reads them) is deleted on every way out, an interrupt included.

    Raises:
        ValueError, FileExistsError: refused input (the message says what and how to fix it).
        RuntimeError, OSError: the synthesis or the writing failed.
    """
    inputs = parse_sequence_inputs(arguments.input)
    checkSegmentationOptions(arguments)
    output = check_synthesis_outputs(arguments, inputs, OUTPUT_SUFFIXES, (SEGMENTATION_SUFFIX,))
    scene = slicer.vtkMRMLScene()
    volumes = {sequence: loadVolume(scene, path) for sequence, path in inputs.items()}
    request = prepareSynthesis(
        arguments.model,
        volumes,
        device=arguments.device,
        precision=arguments.precision,
        allowResampling=arguments.resample,
        segmentationModelPath=arguments.segment,
        prepare=arguments.prepare,
    )
    with tempfile.TemporaryDirectory(prefix="cones-batch-") as work:
        workDirectory = Path(work) / "job"
        workDirectory.mkdir()
        job = SynthesisJob(scene, request, workDirectory, pythonInterpreter(), onProgress=printProgress)
        job.run()
    job.raiseForStatus()
    saveNode(scene, job.outputNode, output, "vtkMRMLVolumeArchetypeStorageNode", arguments.overwrite)
    if job.segmentationNode is not None:
        segmentationOutput = Path(arguments.segmentation_output)
        saveNode(scene, job.segmentationNode, segmentationOutput, "vtkMRMLSegmentationStorageNode", arguments.overwrite)
        print(f"tumour segmentation written to {segmentationOutput}")
    return output


def main(argv: list[str] | None = None) -> int:
    """Run the script; returns the exit code."""
    arguments = parseArguments(argv)
    try:
        output = synthesize(arguments)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    except (RuntimeError, OSError) as error:
        print(f"error: synthesis failed: {error}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return INTERRUPTED
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
