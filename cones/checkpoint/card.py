"""What a model file says about itself: the model card and the provenance of its weights.

A synthesized sequence can only be trusted when it is known which sources the network expects, in
which channel order, how their intensities were normalised, and which data taught it. The card keeps
all of that next to the weights, so inference never depends on flags the user has to repeat
correctly, and ``cones info`` can still say where a model came from long after it was trained.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import cones
from cones.config import JsonConfig, NormalizationConfig
from cones.domain.record import TrainingDomain
from cones.model import AnyGeneratorConfig, Architecture, generator_config_class, parse_architecture
from cones.sequences import Sequence, parse_sequences

__all__ = ["Architecture", "ModelCard", "Provenance", "make_provenance"]

_LOG = logging.getLogger(__name__)
_GIT_TIMEOUT_S = 5.0
_COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1 or SHA-256 object names


@dataclass(frozen=True)
class Provenance(JsonConfig):
    """Where a model's weights came from.

    Attributes:
        iterations: generator updates the weights have received.
        data_fingerprint: fingerprint of the training data, so models trained on the same cases can be
            recognised as such.
        created: ISO 8601 time (UTC) at which the weights were saved.
        cones_version: ``cones.__version__`` of the code that trained them.
        git_commit: commit of the source checkout that trained them; ``None`` when CoNeS ran from an
            installed copy (uncommitted changes are not recorded).
        command: the command line that trained the model.
        data_description: which data it was trained on, with its attribution (licences often require it).
        earlier_data_fingerprints: fingerprints of the data that earlier parts of the run trained on,
            oldest first, when a resume continued on other data (``cones train --resume
            --allow-new-data``); empty for a run that saw one dataset.
    """

    iterations: int
    data_fingerprint: str
    created: str
    cones_version: str
    git_commit: str | None = None
    command: str | None = None
    data_description: str | None = None
    earlier_data_fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if type(self.iterations) is not int or self.iterations < 0:
            raise ValueError(f"Provenance.iterations must be a non-negative int, got {self.iterations!r}")
        for name, optional in _PROVENANCE_TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) and not (optional and value is None):
                raise ValueError(f"Provenance.{name} must be a string{' or None' if optional else ''}, got {value!r}")
        try:
            datetime.fromisoformat(self.created)
        except ValueError:
            raise ValueError(f"Provenance.created must be an ISO 8601 time, got {self.created!r}") from None
        if not isinstance(self.earlier_data_fingerprints, tuple) or not all(
            isinstance(fingerprint, str) for fingerprint in self.earlier_data_fingerprints
        ):
            history = self.earlier_data_fingerprints
            raise ValueError(f"Provenance.earlier_data_fingerprints must be a tuple of strings, got {history!r}")

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`JsonConfig.to_dict`, leaving out an empty fingerprint history.

        Most runs see one dataset; leaving the field out keeps their model files readable by CoNeS
        versions that predate it.
        """
        plain = super().to_dict()
        if not self.earlier_data_fingerprints:
            del plain["earlier_data_fingerprints"]
        return plain


_PROVENANCE_TEXT_FIELDS = (
    ("data_fingerprint", False),
    ("created", False),
    ("cones_version", False),
    ("git_commit", True),
    ("command", True),
    ("data_description", True),
)


def make_provenance(
    iterations: int,
    data_fingerprint: str,
    command: str | None = None,
    data_description: str | None = None,
    earlier_data_fingerprints: tuple[str, ...] = (),
) -> Provenance:
    """Provenance of weights saved now by this copy of CoNeS.

    Args:
        iterations: generator updates the weights have received.
        data_fingerprint: fingerprint of the training data.
        command: the command line that trained the model, if known.
        data_description: which data it was trained on, with its attribution.
        earlier_data_fingerprints: see :class:`Provenance`.

    Returns:
        The provenance, dated now (UTC), with ``cones.__version__`` and, when the running ``cones``
        package is tracked by a git checkout, that checkout's ``HEAD`` commit.
    """
    return Provenance(
        iterations=iterations,
        data_fingerprint=data_fingerprint,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        cones_version=cones.__version__,
        git_commit=_source_commit(),
        command=command,
        data_description=data_description,
        earlier_data_fingerprints=earlier_data_fingerprints,
    )


def _source_commit() -> str | None:
    # Asking git only where it tracks this very package: an installed copy inside some other
    # repository (a virtual environment in a project folder) must not borrow that project's commit.
    package_dir = Path(cones.__file__).resolve().parent
    commands = (["git", "ls-files", "--error-unmatch", "--", "__init__.py"], ["git", "rev-parse", "HEAD"])
    try:
        results = [_run_git(command, package_dir) for command in commands]
    except (OSError, subprocess.SubprocessError) as error:
        _LOG.debug("no git commit recorded: %s", error)
        return None
    commit = results[-1].stdout.strip()
    if any(result.returncode != 0 for result in results) or not _COMMIT_PATTERN.fullmatch(commit):
        _LOG.debug("no git commit recorded: %s is not a tracked source checkout", package_dir)
        return None
    return commit


def _run_git(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False)


@dataclass(frozen=True)
class ModelCard(JsonConfig):
    """Everything needed to rebuild, feed and cite a trained generator.

    Sequences may be given in any spelling :func:`~cones.sequences.parse_sequence` knows; they are
    stored canonically and written into files as plain strings, because ``torch.load(weights_only=True)``
    refuses enum objects.

    Attributes:
        architecture: the network family (see :class:`Architecture`).
        preset: the preset the generator config came from, for display only (the config is authoritative);
            ``None`` for a hand-made config.
        generator: the generator's config, of the class that ``architecture`` names (for CoNeS a
            :class:`~cones.config.GeneratorConfig`, including the coordinate extent that fixes the
            pixel coordinates; for the baselines their own configs).
        sources: input sequences in channel order; ``len(sources) == generator.in_channels``.
        targets: synthesized sequences in channel order; ``len(targets) == generator.out_channels``.
        normalization: how scanner intensities become network inputs and outputs become intensities.
        provenance: where the weights came from.
        slice_axis: numpy axis of the canonically oriented (z, y, x) volume that the model
            translates slice by slice (0: axial); inference must slice the same way.
        training_domain: what the training inputs were like (spacing, skull, intensity statistics),
            for the input checks; model files of format version 1 read with
            :meth:`~cones.domain.TrainingDomain.assumed`.

    Raises:
        ValueError: a sequence is unknown or listed twice, sources and targets overlap, their counts
            differ from the generator's channels, or the architecture is unknown.
    """

    architecture: Architecture
    preset: str | None
    generator: AnyGeneratorConfig
    sources: tuple[Sequence, ...]
    targets: tuple[Sequence, ...]
    normalization: NormalizationConfig
    provenance: Provenance
    slice_axis: int = 0
    training_domain: TrainingDomain = field(default_factory=TrainingDomain.assumed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a card; its generator config is read with the class its architecture names.

        Cards written before the baselines existed hold ``architecture: "cones"`` and a
        :class:`~cones.config.GeneratorConfig` dict, and read exactly as before.

        Raises:
            ValueError: see :meth:`JsonConfig.from_dict`, or the architecture is unknown.
        """
        if isinstance(data, dict) and isinstance(data.get("generator"), dict) and "architecture" in data:
            config_class = generator_config_class(parse_architecture(data["architecture"]))
            data = {**data, "generator": config_class.from_dict(data["generator"])}
        return super().from_dict(data)

    def __post_init__(self) -> None:
        if self.slice_axis not in (0, 1, 2):
            raise ValueError(f"ModelCard.slice_axis must be 0, 1 or 2, got {self.slice_axis!r}")
        object.__setattr__(self, "architecture", parse_architecture(self.architecture))
        if self.preset is not None:
            if not isinstance(self.preset, str) or not self.preset:
                raise ValueError(f"ModelCard.preset must be a non-empty string or None, got {self.preset!r}")
            object.__setattr__(self, "preset", str(self.preset))
        for name, kind in (
            ("generator", generator_config_class(self.architecture)),
            ("normalization", NormalizationConfig),
            ("provenance", Provenance),
            ("training_domain", TrainingDomain),
        ):
            _require_instance(name, getattr(self, name), kind)
        object.__setattr__(self, "sources", _parse_channels("sources", self.sources))
        object.__setattr__(self, "targets", _parse_channels("targets", self.targets))
        both = sorted(set(self.sources) & set(self.targets))
        if both:
            raise ValueError(f"ModelCard lists {', '.join(both)} as both source and target")
        for name, sequences, channels in (
            ("sources", self.sources, "in_channels"),
            ("targets", self.targets, "out_channels"),
        ):
            if len(sequences) != getattr(self.generator, channels):
                raise ValueError(
                    f"ModelCard has {len(sequences)} {name} {[s.value for s in sequences]} "
                    f"but generator.{channels} is {getattr(self.generator, channels)}"
                )


def _require_instance(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"ModelCard.{name} must be a {kind.__name__}, got {value!r}")


def _parse_channels(name: str, names: object) -> tuple[Sequence, ...]:
    if not isinstance(names, tuple | list) or not names:
        raise ValueError(f"ModelCard.{name} must be a non-empty list of sequence names, got {names!r}")
    return parse_sequences(tuple(names))
