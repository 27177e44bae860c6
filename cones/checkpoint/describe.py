"""The human-readable summary that ``cones info MODEL`` prints.

It is read from the card and the stored tensors alone, without building the network, so it also
works for a model whose architecture is too large to instantiate comfortably on the machine at hand.
"""

from __future__ import annotations

import os
from pathlib import Path

from cones.checkpoint.card import ModelCard
from cones.checkpoint.layout import TRAINING_STATE_KEY
from cones.checkpoint.reading import load_checkpoint
from cones.domain.record import SLICE_PLANES
from cones.sequences import Sequence

__all__ = ["describe_model"]

_NOT_RECORDED = "not recorded"


def describe_model(path: str | os.PathLike[str]) -> str:
    """Describe a model file: what it synthesizes, its size, how it normalises, and where it came from.

    Args:
        path: a file written by :func:`~cones.checkpoint.save_model`.

    Returns:
        Multi-line text, one ``label: value`` per line after a title line.

    Raises:
        CheckpointError: the file is refused (see :func:`~cones.checkpoint.load_checkpoint`).
    """
    path = Path(path)
    raw = load_checkpoint(path)
    card = ModelCard.from_dict(raw["card"])
    provenance, normalization, generator = card.provenance, card.normalization, card.generator
    parameters = sum(tensor.numel() for tensor in raw["generator_state"].values())
    has_training_state = TRAINING_STATE_KEY in raw
    rows = [
        ("architecture", f"{card.architecture.value} (preset: {card.preset or 'custom'})"),
        ("synthesizes", f"{_names(card.sources)} -> {_names(card.targets)}"),
        ("parameters", f"{parameters:,}"),
        *_coordinate_rows(generator),
        (
            "normalization",
            f"foreground (> {normalization.foreground_threshold:g}) percentiles "
            f"{normalization.lower_percentile:g}-{normalization.upper_percentile:g} -> [-1, 1]; "
            f"output scale {normalization.output_scale:g}",
        ),
        *_domain_rows(card),
        ("iterations", f"{provenance.iterations:,}"),
        ("created", provenance.created),
        ("CoNeS version", provenance.cones_version),
        ("git commit", provenance.git_commit or _NOT_RECORDED),
        ("data fingerprint", provenance.data_fingerprint),
        *[("earlier data", fingerprint) for fingerprint in provenance.earlier_data_fingerprints],
        ("data", provenance.data_description or _NOT_RECORDED),
        ("command", provenance.command or _NOT_RECORDED),
        ("training state", "present (training can resume)" if has_training_state else "absent (inference only)"),
        ("file size", f"{path.stat().st_size / 1e6:.1f} MB"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join([f"CoNeS model {path}", *(f"  {label + ':':<{width}}{value}" for label, value in rows)])


def _coordinate_rows(generator: object) -> list[tuple[str, str]]:
    """The whole-slice frame of a model that knows where a crop sits (a neural field, ResViT); a plain CNN has none."""
    extent = getattr(generator, "coordinate_extent", None)
    return [] if extent is None else [("coordinate extent", f"{extent[0]} x {extent[1]} pixels")]


def _domain_rows(card: ModelCard) -> list[tuple[str, str]]:
    """What the training inputs were like, which the input checks compare an input with."""
    domain = card.training_domain
    plane = SLICE_PLANES[card.slice_axis]
    stored = f", stored as {', '.join(domain.orientations)}" if domain.orientations else ""
    rows = [
        (
            "trained on",
            f"{plane} slices{stored}; in-plane voxels {domain.in_plane_spacing_mm[0]:g} x "
            f"{domain.in_plane_spacing_mm[1]:g} mm; {'skull-stripped' if domain.skull_stripped else 'with skull'}",
        ),
    ]
    if not domain.statistics:
        rows.append(("training statistics", f"{_NOT_RECORDED} (input intensity and contrast checks are skipped)"))
        return rows
    rows.append(
        (
            "training statistics",
            f"{domain.cases} cases; brain percentiles 5/25/50/75/95 in [0, 1], "
            "median ranks in the first source's dark/middle/bright thirds",
        )
    )
    for statistics in domain.statistics:
        percentiles = " ".join(f"{value:.2f}" for value in statistics.percentiles)
        ranks = " ".join(f"{value:.2f}" for value in statistics.tissue_ranks)
        rows.append((f"  {statistics.sequence.display_name}", f"percentiles {percentiles}; ranks {ranks}"))
    return rows


def _names(sequences: tuple[Sequence, ...]) -> str:
    return ", ".join(sequence.display_name for sequence in sequences)
