"""Marking every synthesized image as synthetic: in the file's header and in a JSON sidecar beside it.

A synthesized T1ce looks like an acquired one. Once it leaves the tool (to a PACS, a colleague, a
segmentation pipeline) nothing but its own file can say otherwise, so every synthesis writer puts
the same one-line statement, ``SYNTHETIC <target> - CoNeS <model sha256 prefix>``, where each
format keeps free text: the NIfTI header's ``descrip`` field (80 bytes), a ``CoNeS.Synthetic`` key
in NRRD and MetaImage headers, the DICOM series description (:mod:`cones.data.dicom`). The sidecar
``<output>.json`` says the rest: the model (its card and the sha256 of its file), the inputs (paths
and sha256), the options, the software version and the time.

Only synthesis writers mark: :func:`cones.data.io.write_image` also writes registered sources and
brain masks, which are not synthetic. A tumour segmentation computed with a synthesized sequence is
not synthetic either, but it is only as trustworthy as that sequence, so it says where it came from:
``SEGMENTATION FROM SYNTHETIC <target> - CoNeS <sha prefix>`` in its header, and a sidecar that
records the segmentation model and the synthesis (:func:`write_segmentation_sidecar`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import SimpleITK as sitk

import cones
from cones.data.dicom import SERIES_NUMBER_OFFSET
from cones.marking_text import SHA_PREFIX_LENGTH, is_synthetic_marking
from cones.outputs import write_atomically

if TYPE_CHECKING:
    from cones.checkpoint import ModelCard
    from cones.sequences import Sequence

__all__ = [
    "NIFTI_DESCRIPTION_KEY",
    "SERIES_NUMBER_OFFSET",
    "SIDECAR_SUFFIX",
    "SYNTHETIC_KEY",
    "OutputFormat",
    "Provenance",
    "enhancement_marking",
    "file_sha256",
    "files_sha256",
    "is_synthetic_marking",
    "mark_image",
    "segmentation_marking",
    "sidecar_path",
    "synthetic_marking",
    "uncertainty_marking",
    "write_segmentation_sidecar",
    "write_sidecar",
    "write_synthesized",
]

logger = logging.getLogger(__name__)


class OutputFormat(StrEnum):
    """How a synthesized volume is written; the values are ``--output-format``'s."""

    FILE = "file"
    """One volume file, its format chosen by its ending (``.nii.gz``, ``.nrrd``, ``.mha`` ...)."""
    DICOM = "dicom"
    """A folder holding a new MR series, one file per slice."""


SYNTHETIC_KEY = "CoNeS.Synthetic"
"""The NRRD / MetaImage header key, and the Slicer node attribute, that holds the marking."""
NIFTI_DESCRIPTION_KEY = "ITK_FileNotes"
"""The SimpleITK metadata key its NIfTI writer stores in the header's ``descrip`` field."""
NIFTI_DESCRIPTION_LENGTH = 80
"""``descrip`` is ``char[80]`` in the NIfTI-1 header; longer text would be cut by the writer."""
SIDECAR_SUFFIX = ".json"
_CHUNK = 1 << 20


def synthetic_marking(target: Sequence, model_sha256: str) -> str:
    """``"SYNTHETIC T1ce - CoNeS 1a2b3c4d5e6f"``: what was made, by which tool, with which model file.

    Raises:
        ValueError: ``model_sha256`` is not a hex digest.
    """
    if len(model_sha256) < SHA_PREFIX_LENGTH or any(c not in "0123456789abcdef" for c in model_sha256.lower()):
        raise ValueError(f"model_sha256 must be a sha256 hex digest, got {model_sha256!r}")
    text = f"SYNTHETIC {target.display_name} - CoNeS {model_sha256[:SHA_PREFIX_LENGTH].lower()}"
    return text[:NIFTI_DESCRIPTION_LENGTH]


def segmentation_marking(synthesis_marking: str) -> str:
    """``"SEGMENTATION FROM SYNTHETIC T1ce - CoNeS 1a2b3c4d5e6f"``: a label map that used a synthesized sequence.

    Args:
        synthesis_marking: the marking of the synthesized sequence (:func:`synthetic_marking`).
    """
    return f"SEGMENTATION FROM {synthesis_marking}"[:NIFTI_DESCRIPTION_LENGTH]


def uncertainty_marking(synthesis_marking: str) -> str:
    """``"UNCERTAINTY OF SYNTHETIC T1ce - CoNeS 1a2b3c4d5e6f"``: the uncertainty map of a synthesis."""
    return f"UNCERTAINTY OF {synthesis_marking}"[:NIFTI_DESCRIPTION_LENGTH]


def enhancement_marking(synthesis_marking: str) -> str:
    """``"VIRTUAL ENHANCEMENT FROM SYNTHETIC T1ce - CoNeS 1a2b3c4d5e6f"``: synthesized T1ce minus T1."""
    return f"VIRTUAL ENHANCEMENT FROM {synthesis_marking}"[:NIFTI_DESCRIPTION_LENGTH]


def mark_image(image: sitk.Image, marking: str) -> sitk.Image:
    """Set the marking in the metadata SimpleITK writes: NIfTI ``descrip`` and the NRRD / MetaImage key.

    Both keys are set, and each writer stores only what its format has room for: the NIfTI writer
    keeps ``ITK_FileNotes`` as ``descrip`` (and has no free keys), NRRD and MetaImage keep every key.

    Returns:
        ``image`` itself, marked.
    """
    image.SetMetaData(SYNTHETIC_KEY, marking)
    image.SetMetaData(NIFTI_DESCRIPTION_KEY, marking)
    return image


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes."""
    return files_sha256([path])


def files_sha256(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 of several files' bytes in the given order (a DICOM series is one input made of many files)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """``out.nii.gz`` -> ``out.nii.gz.json``; a DICOM folder ``DIR`` -> ``DIR.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class Provenance:
    """What a synthesized image was made from and how; the body of its sidecar.

    Attributes:
        target: the synthesized sequence.
        model_path: the model file.
        model_sha256: sha256 of the model file's bytes.
        card: the model's card (sources, targets, training provenance).
        inputs: the source files or DICOM folders keyed by sequence; each is hashed when the sidecar is made.
        options: how the synthesis ran (device, resampling, preparation ...), JSON values only.
        series: the DICOM series UID chosen for folder inputs (``--series``); a folder of one series needs none.
        reference: the input whose grid the output is on; a DICOM output joins its patient and study.
    """

    target: Sequence
    model_path: Path
    model_sha256: str
    card: ModelCard
    inputs: Mapping[Sequence, Path]
    options: Mapping[str, Any]
    series: Mapping[Sequence, str]
    reference: Sequence

    @property
    def marking(self) -> str:
        """The header text of the output (:func:`synthetic_marking`)."""
        return synthetic_marking(self.target, self.model_sha256)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's JSON body; inputs are hashed now, so the record matches the files that were read."""
        return {
            "synthetic": True,
            "marking": self.marking,
            "target": self.target.value,
            "model": {"path": str(self.model_path.resolve()), "sha256": self.model_sha256, "card": _card(self.card)},
            "inputs": {sequence.value: self._input(sequence, path) for sequence, path in self.inputs.items()},
            "options": dict(self.options),
            "software": {"name": "cones", "version": cones.__version__},
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def dicom_reference(self) -> Path | None:
        """A file of the reference input's DICOM series, or None when the reference input is no DICOM folder."""
        path = self.inputs[self.reference]
        if not path.is_dir():
            return None
        from cones.data.dicom import series_files

        return Path(series_files(path, self.series.get(self.reference))[0])

    def derivation(self) -> str:
        """The DICOM derivation description: the marking, then the model file and the sources in full."""
        sources = ", ".join(sequence.display_name for sequence in self.inputs)
        return (
            f"{self.marking}: synthesized by CoNeS {cones.__version__} from {sources} with the model file "
            f"{self.model_path.name} (sha256 {self.model_sha256}); not an acquired image"
        )

    def _input(self, sequence: Sequence, path: Path) -> dict[str, Any]:
        record: dict[str, Any] = {"path": str(path.resolve())}
        if path.is_dir():
            from cones.data.dicom import series_files
            from cones.data.slice_positions import read_slice_positions, resampling_note

            uid = self.series.get(sequence)
            files = series_files(path, uid)
            record.update(series_instance_uid=uid, files=len(files), sha256=files_sha256(files))
            positions = read_slice_positions(path, files)
            gap = positions.uneven() if positions is not None else None
            if gap is not None:  # read at all only with --resample (cones.data.dicom.read_dicom_series)
                record["resampled_slices"] = resampling_note(gap)
        else:
            record["sha256"] = file_sha256(path)
        return record


def _card(card: ModelCard) -> dict[str, Any]:
    """The parts of a model card a reader of the sidecar needs (not the network's hyper-parameters)."""
    return {
        "architecture": str(card.architecture),
        "preset": card.preset,
        "sources": [sequence.value for sequence in card.sources],
        "targets": [sequence.value for sequence in card.targets],
        "slice_axis": card.slice_axis,
        "provenance": card.provenance.to_dict(),
    }


def write_sidecar(
    output: str | os.PathLike[str],
    provenance: Provenance,
    *,
    overwrite: bool,
    sections: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<output>.json`` atomically (:func:`cones.outputs.write_atomically`).

    Args:
        output: the synthesized file or DICOM folder the sidecar describes.
        provenance: what it was made from.
        overwrite: replace an existing sidecar (as the output itself was replaced).
        sections: further JSON-able sections by name (e.g. the checks the inputs passed); a name the
            provenance already uses is refused rather than silently replaced.

    Returns:
        The sidecar's path.

    Raises:
        ValueError: a section name is already used by the provenance.
        OutputExistsError: the sidecar exists and ``overwrite`` is false.
    """
    body = provenance.to_dict()
    clashes = sorted(set(sections or {}) & set(body))
    if clashes:
        raise ValueError(f"sidecar sections {clashes} are already part of the provenance")
    body.update(sections or {})
    return _write_json(sidecar_path(output), body, overwrite)


def write_segmentation_sidecar(
    output: str | os.PathLike[str],
    provenance: Provenance,
    segmentation_model: str | os.PathLike[str],
    synthesized_used: Iterable[Sequence],
    *,
    overwrite: bool,
) -> Path:
    """Write the sidecar of a label map segmented after synthesis: which model, from which synthesized input.

    Args:
        output: the label map file.
        provenance: the synthesis whose output completed the segmentation model's inputs.
        segmentation_model: the segmentation model's file or folder (a file is hashed).
        synthesized_used: the synthesized sequences the segmentation model used (none when every
            sequence it needs was given; then the label map is not marked and the sidecar says so).
        overwrite: replace an existing sidecar.

    Returns:
        The sidecar's path.

    Raises:
        OutputExistsError: the sidecar exists and ``overwrite`` is false.
    """
    used = [sequence.value for sequence in synthesized_used]
    model = Path(segmentation_model)
    body = {
        "derived_from_synthetic": bool(used),
        "marking": segmentation_marking(provenance.marking) if used else None,
        "synthesized_inputs": used,
        "segmentation_model": {"path": str(model.resolve()), "sha256": file_sha256(model) if model.is_file() else None},
        "synthesis": provenance.to_dict(),
    }
    return _write_json(sidecar_path(output), body, overwrite)


def _write_json(path: Path, body: Mapping[str, Any], overwrite: bool) -> Path:
    text = json.dumps(body, indent=2, sort_keys=False) + "\n"

    def write(hidden: Path) -> None:
        hidden.write_text(text, encoding="utf-8")

    return write_atomically(path, write, overwrite=overwrite)


def write_synthesized(
    image: sitk.Image,
    output: str | os.PathLike[str],
    provenance: Provenance,
    *,
    output_format: OutputFormat = OutputFormat.FILE,
    overwrite: bool,
    sections: Mapping[str, Any] | None = None,
) -> Path:
    """Write a synthesized volume marked as synthetic, then its sidecar; the one writer of synthesis results.

    Args:
        image: the synthesized volume.
        output: a volume file, or with :attr:`OutputFormat.DICOM` the series folder.
        provenance: what it was made from (the marking and the sidecar come from it).
        output_format: a volume file or a DICOM series.
        overwrite: replace an existing output and sidecar.
        sections: further sidecar sections (see :func:`write_sidecar`).

    Returns:
        ``output`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: the output or its sidecar exists (or appeared) and ``overwrite`` is false.
        OSError: writing failed.
    """
    output = Path(output)
    if output_format is OutputFormat.DICOM:
        from cones.data.dicom import DicomSeriesInfo, write_dicom_series

        reference = provenance.dicom_reference()
        if reference is None:
            logger.warning(
                "the %s input is not DICOM: %s starts a new study with empty patient fields",
                provenance.reference.display_name,
                output,
            )
        info = DicomSeriesInfo(provenance.marking, provenance.derivation(), reference)
        write_dicom_series(image, output, info, overwrite=overwrite)
    else:
        from cones.data.io import write_image

        write_image(mark_image(image, provenance.marking), output, overwrite=overwrite)
    write_sidecar(output, provenance, overwrite=overwrite, sections=sections)
    return output
