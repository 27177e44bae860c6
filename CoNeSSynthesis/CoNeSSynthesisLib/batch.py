"""The headless batch run: load files into MRML, synthesize as the module does, write the results.

``Resources/batch_synthesize.py`` is the entry point (its docstring gives the usage); it only makes
this package importable and turns every way out, a failed import included, into an exit code that
ends the process. Here is the work, which returns the exit code of each expected outcome:
:data:`REFUSED` for input refused before anything runs, :data:`FAILED` when the synthesis or the
writing fails, :data:`CANNOT_START` when PyTorch (which only the ``cones`` process imports, so no
import here can show it missing) is absent or too old, :data:`INTERRUPTED` on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import slicer
from CoNeSCommon.dependencies import TORCH_REQUIREMENT, DependencyError, checkTorchVersion, torchVersion
from CoNeSCommon.jobs import Device, Progress, pythonInterpreter
from CoNeSCommon.location import bundledSegmentationModelPath

from cones.cli import check_synthesis_outputs, synthesis_provenance
from cones.data.io import read_image, write_image
from cones.marking import OutputFormat, mark_image, write_segmentation_sidecar, write_synthesized
from cones.outputs import published_together, write_atomically
from cones.precision import Precision
from cones.segmentation.chain import synthesized_sequences_used
from cones.segmentation.cli import SEGMENTATION_STAGE
from cones.sequences import parse_input_series, parse_sequence_inputs
from cones.trust import cli as trust_cli
from CoNeSSynthesisLib import trust
from CoNeSSynthesisLib.provenance import SYNTHETIC_ATTRIBUTE
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis, readModelCard
from CoNeSSynthesisLib.volumes import imageFromVolume, updateVolumeFromImage

__all__ = [
    "CANNOT_START",
    "DONE",
    "FAILED",
    "INTERRUPTED",
    "REFUSED",
    "checkSegmentationOptions",
    "checkTorch",
    "loadVolume",
    "main",
    "parseArguments",
    "saveNode",
    "synthesize",
    "writeMaps",
]

DONE, FAILED, REFUSED, CANNOT_START, INTERRUPTED = 0, 1, 2, 3, 130
"""The exit codes (the entry point returns :data:`CANNOT_START` for a failed import too)."""

OUTPUT_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")
"""Single-file volume formats: an output written to a temporary name and renamed keeps its voxels."""
SEGMENTATION_SUFFIX = ".seg.nrrd"
"""Slicer's segmentation file: it keeps the segments' names, colours and geometry."""
DESCRIPTION = (
    "Synthesize a missing MRI sequence without a GUI, through MRML, exactly as the CoNeSSynthesis module does."
)


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """The options; mirror ``cones synthesize`` so a command line moves between the two unchanged."""
    parser = argparse.ArgumentParser(prog="batch_synthesize.py", description=DESCRIPTION)
    parser.add_argument("--model", required=True, help="a CoNeS model file")
    parser.add_argument(
        "--input", nargs="+", action="extend", required=True, metavar="SEQUENCE=PATH", help="one per source, each once"
    )
    parser.add_argument(
        "--series", nargs="+", action="extend", default=[], metavar="SEQUENCE=SERIES_UID",
        help="the series to read from a DICOM folder input that holds several",
    )  # fmt: skip
    parser.add_argument("--output", required=True, help="the file to write (.nrrd, .nii.gz, .nii, .mha ...)")
    parser.add_argument(
        "--output-format", default=OutputFormat.FILE.value, choices=[member.value for member in OutputFormat],
        help="file: one volume, its format from its ending; dicom: a new series folder",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--resample", action="store_true", help="resample sources onto the first source's grid")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="raw scans: co-register the sources to the first one and extract the brain before synthesis",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse inputs on a warning of the input checks too (as cones synthesize)"
    )
    parser.add_argument("--device", default=Device.AUTO.value, choices=[device.value for device in Device])
    parser.add_argument(
        "--precision",
        default=Precision.AUTO.value,
        choices=[precision.value for precision in Precision],
        help="number format: auto (bf16 where the CPU or GPU has bf16 units), fp32 or bf16",
    )
    parser.add_argument(
        "--segment",
        metavar="SEGMODEL",
        nargs="?",
        const=str(bundledSegmentationModelPath()),
        help="then segment the tumour with this segmentation model; alone: the bundled one",
    )
    parser.add_argument(
        "--segmentation-output", metavar="PATH", help=f"the segmentation to write ({SEGMENTATION_SUFFIX})"
    )
    trust_cli.add_synthesize_options(parser)
    return parser.parse_args(argv)


def loadVolume(scene: slicer.vtkMRMLScene, path: Path, seriesUid: str | None = None) -> slicer.vtkMRMLScalarVolumeNode:
    """Load a file into a new volume node through a storage node, keeping its voxel grid as stored.

    The file is first read by ``cones``, which refuses what Slicer's readers would load silently
    wrong: a truncated or corrupt NIfTI file (its missing part read as zeros) and NaN or infinite
    voxels (read as 0 from NIfTI). A DICOM series folder is read by ``cones`` alone (GDCM, as
    Slicer's DICOM module reads scalar volumes) into a node named after the folder.

    Raises:
        ValueError: the file does not exist, is not a readable volume, is truncated or corrupt, or
            holds NaN or infinite voxels; a folder holds no series or several and ``seriesUid``
            names none; the message names the file.
    """
    if path.is_dir():
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", path.name)
        updateVolumeFromImage(node, read_image(path, seriesUid))
        return node
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


def writeMaps(arguments: argparse.Namespace, job: SynthesisJob) -> dict[str, dict]:
    """Write the maps the job made where the options say, marked and atomically; return their sidecar sections.

    Each section is what ``cones synthesize`` wrote of the map in the job's work folder, with the
    path of the file written here.

    Raises:
        OutputExistsError: a map file appeared while the synthesis ran and ``--overwrite`` is off.
        OSError: writing failed.
    """
    paths = {trust.UNCERTAINTY: arguments.uncertainty_output, trust.ENHANCEMENT: arguments.enhancement_output}
    sections = {}
    for kind, node in job.mapNodes.items():
        image = mark_image(imageFromVolume(node), node.GetAttribute(SYNTHETIC_ATTRIBUTE))
        written = write_image(image, paths[kind], arguments.overwrite)
        sections[kind.section] = {**job.mapRecords[kind], "path": str(written.resolve())}
        print(f"{kind.nameSuffix} map written to {written}")
    return sections


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
    series = parse_input_series(arguments.series, inputs)
    checkSegmentationOptions(arguments)
    output = check_synthesis_outputs(arguments, inputs, OUTPUT_SUFFIXES, (SEGMENTATION_SUFFIX,))
    card = readModelCard(arguments.model)
    trust_cli.check_trust_outputs(arguments, card, inputs, output)
    scene = slicer.vtkMRMLScene()
    volumes = {sequence: loadVolume(scene, path, series.get(sequence)) for sequence, path in inputs.items()}
    request = prepareSynthesis(
        arguments.model,
        volumes,
        device=arguments.device,
        precision=arguments.precision,
        allowResampling=arguments.resample,
        segmentationModelPath=arguments.segment,
        prepare=arguments.prepare,
        strictInputChecks=arguments.strict,
        uncertaintyMap=trust_cli.wants_uncertainty(arguments),
        enhancementMap=arguments.enhancement_output is not None,
    )
    with tempfile.TemporaryDirectory(prefix="cones-batch-") as work:
        workDirectory = Path(work) / "job"
        workDirectory.mkdir()
        job = SynthesisJob(scene, request, workDirectory, pythonInterpreter(), onProgress=printProgress)
        job.run()
    job.raiseForStatus()
    provenance = synthesis_provenance(arguments, inputs, series, card)
    sections = {} if job.inputChecks is None else {"input_checks": job.inputChecks.to_dict()}
    if job.preparation is not None:
        sections["preparation"] = job.preparation
    segmentationOutput = None if job.segmentationNode is None else Path(arguments.segmentation_output)
    # All outputs or none: an interrupt must not leave a map or a segmentation without the volume and its sidecar.
    with published_together():
        sections.update(writeMaps(arguments, job))
        write_synthesized(
            imageFromVolume(job.outputNode),
            output,
            provenance,
            output_format=OutputFormat(arguments.output_format),
            overwrite=arguments.overwrite,
            sections=sections,
        )
        if segmentationOutput is not None:
            saveNode(
                scene, job.segmentationNode, segmentationOutput, "vtkMRMLSegmentationStorageNode", arguments.overwrite
            )
            # Slicer's segmentation storage writes only its own header keys: the sidecar says what it was made from.
            used = synthesized_sequences_used(request.segmentation, inputs, card.targets)
            write_segmentation_sidecar(
                segmentationOutput, provenance, arguments.segment, used, overwrite=arguments.overwrite
            )
    if segmentationOutput is not None:
        print(f"tumour segmentation written to {segmentationOutput}")
        if job.segmentationNote is not None:
            print(job.segmentationNote)
    return output


def checkTorch() -> None:
    """Refuse to start without a PyTorch the ``cones`` process can use, told from package metadata.

    Raises:
        DependencyError: torch is not installed or too old; the message says how to install it.
    """
    version = torchVersion()
    if version is None:
        raise DependencyError(
            "PyTorch is not installed in this Python: in Slicer, install the 'PyTorch' extension from the Extensions "
            "Manager, restart and press Apply once in CoNeS Synthesis (it installs torch and the requirements after "
            f"asking); in a plain Python, run: {sys.executable} -m pip install 'torch{TORCH_REQUIREMENT}'"
        )
    checkTorchVersion(version)


def main(argv: list[str] | None = None) -> int:
    """Run the batch; returns the exit code of every expected outcome (a usage error is a refusal)."""
    try:
        arguments = parseArguments(argv)
    except SystemExit as stop:  # argparse: 0 after --help, 2 with its usage message on a bad command line
        return stop.code if isinstance(stop.code, int) else REFUSED
    try:
        checkTorch()
        output = synthesize(arguments)
    except DependencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_START
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
    return DONE
