"""Synthesize a missing MRI sequence without a GUI, through MRML, exactly as the CoNeSSynthesis module does.

Usage (inside Slicer, or a plain Python with the slicer-core wheel and the CoNeS requirements)::

    Slicer --no-main-window --python-script batch_synthesize.py --model M.pt \\
        --input t1=t1.nii.gz t2=t2.nii.gz flair=flair.nii.gz --output t1ce_synthesized.nrrd
    python batch_synthesize.py --model M.pt --input t1=... t2=... flair=... --output out.nrrd \\
        [--segment SEGRUN/last.pt --segmentation-output tumour.seg.nrrd] \\
        [--uncertainty-output uncertainty.nrrd] [--enhancement-output enhancement.nrrd]

The inputs are loaded into an MRML scene through storage nodes (keeping left-handed grids as they
are; a DICOM series folder is read by ``cones``, ``--series`` picking one series), the
CoNeSSynthesis library checks and synthesizes them, and the result is written on the grid of the
first source marked as synthetic, as ``cones synthesize`` writes it (:mod:`cones.marking`: header
marking, ``<output>.json`` sidecar; ``--output-format dicom`` for a DICOM series). With
``--segment``, the tumour is segmented after synthesis, as the module's "Segment after synthesis"
does, and the segmentation node (named, coloured NCR, ED and ET segments) is saved as a
``.seg.nrrd`` that Slicer opens as it was. ``--uncertainty-output`` and
``--enhancement-output`` write the maps of the module's "Uncertainty map" and "Virtual enhancement
map", marked and listed in the sidecar as ``cones synthesize`` writes them. Exit codes: 0 done; 2
refused input (one ``error: ...`` line, nothing written); 1 the synthesis failed; 130 interrupted
(Ctrl-C: the synthesis process is stopped, nothing is written or left behind).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

MODULE_DIRECTORY = Path(__file__).resolve().parent.parent
"""The folder with ``CoNeSCommon`` and ``CoNeSSynthesisLib``: the module folder in a checkout, or
``qt-scripted-modules`` installed."""
if str(MODULE_DIRECTORY) not in sys.path:
    sys.path.insert(0, str(MODULE_DIRECTORY))

import slicer  # noqa: E402
from CoNeSCommon.jobs import Device, Progress, pythonInterpreter  # noqa: E402
from CoNeSSynthesisLib import trust  # noqa: E402
from CoNeSSynthesisLib.provenance import SYNTHETIC_ATTRIBUTE  # noqa: E402
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis, readModelCard  # noqa: E402
from CoNeSSynthesisLib.volumes import imageFromVolume, updateVolumeFromImage  # noqa: E402

from cones.cli import check_synthesis_outputs, synthesis_provenance  # noqa: E402
from cones.data.io import read_image, write_image  # noqa: E402
from cones.marking import OutputFormat, mark_image, write_segmentation_sidecar, write_synthesized  # noqa: E402
from cones.outputs import write_atomically  # noqa: E402
from cones.precision import Precision  # noqa: E402
from cones.segmentation.chain import synthesized_sequences_used  # noqa: E402
from cones.segmentation.cli import SEGMENTATION_STAGE  # noqa: E402
from cones.sequences import parse_input_series, parse_sequence_inputs  # noqa: E402
from cones.trust import cli as trust_cli  # noqa: E402

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
    parser.add_argument("--segment", metavar="SEGMODEL", help="then segment the tumour with this segmentation model")
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
    sections.update(writeMaps(arguments, job))
    write_synthesized(
        imageFromVolume(job.outputNode),
        output,
        provenance,
        output_format=OutputFormat(arguments.output_format),
        overwrite=arguments.overwrite,
        sections=sections,
    )
    if job.segmentationNode is not None:
        segmentationOutput = Path(arguments.segmentation_output)
        saveNode(scene, job.segmentationNode, segmentationOutput, "vtkMRMLSegmentationStorageNode", arguments.overwrite)
        # Slicer's segmentation storage writes only its own header keys: the sidecar says what it was made from.
        used = synthesized_sequences_used(request.segmentation, inputs, card.targets)
        write_segmentation_sidecar(
            segmentationOutput, provenance, arguments.segment, used, overwrite=arguments.overwrite
        )
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
