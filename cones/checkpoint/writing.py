"""Writing CoNeS model files that can always be read back.

Two things could turn hours of training into a file that :mod:`cones.checkpoint.reading` refuses: an
object that ``torch.load(weights_only=True)`` will not unpickle (a numpy array among the RNG states),
and a crash or a full disk halfway through the write. The first is refused before anything is
written; the second cannot leave a partial file, because the archive is written next to its
destination and moved into place in one atomic step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cones.checkpoint.card import ModelCard
from cones.checkpoint.layout import FORMAT_NAME, FORMAT_VERSION, TRAINING_STATE_KEY, CheckpointError
from cones.checkpoint.reading import load_checkpoint
from cones.domain.record import TrainingDomain
from cones.outputs import OutputExistsError, same_file, write_atomically

__all__ = ["save_model", "strip_training_state"]

_LOG = logging.getLogger(__name__)
# What torch.load(weights_only=True) accepts besides tensors. Types are compared exactly, since e.g.
# numpy.float64 subclasses float but is refused.
_PLAIN_SCALARS = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)
_PLAIN_MAPPINGS = (dict, OrderedDict)
_PLAIN_COLLECTIONS = (list, tuple, set)


def save_model(
    path: str | os.PathLike[str],
    generator: nn.Module,
    card: ModelCard,
    training_state: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a self-describing model file atomically; missing parent folders are created.

    Args:
        path: destination file.
        generator: the trained generator; its weights are stored on the CPU.
        card: what the generator is and where it came from; ``card.generator`` must be the config the
            generator was built from.
        training_state: what resuming training needs: optimizer and scheduler ``state_dict()``s,
            counters, RNG states as tensors (``torch.get_rng_state()``). Only tensors and plain Python
            data (dict, list, tuple, set, str, numbers, None) are allowed; convert numpy arrays with
            ``torch.from_numpy``. Leave it out for a small file that serves inference only.
        overwrite: replace an existing file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        CheckpointError: the generator's config differs from ``card.generator``, or ``training_state``
            holds objects that ``torch.load(weights_only=True)`` would refuse.
    """
    path = Path(path)
    config = getattr(generator, "config", None)
    if config is not None and config != card.generator:
        differing = [
            field.name
            for field in dataclasses.fields(card.generator)
            if getattr(config, field.name, None) != getattr(card.generator, field.name)
        ]
        raise CheckpointError(
            f"not writing {path}: the generator was built from a different config than the model card's "
            f"(differing fields: {', '.join(differing)})"
        )
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "card": card.to_dict(),
        "generator_state": {name: tensor.detach().cpu() for name, tensor in generator.state_dict().items()},
    }
    if training_state is not None:
        payload[TRAINING_STATE_KEY] = dict(training_state)
    _write_atomically(path, payload, overwrite)
    return path


def strip_training_state(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    overwrite: bool = False,
    training_domain: TrainingDomain | None = None,
) -> Path:
    """Copy a model file without its training state: a smaller file that serves inference only.

    The copy is written in the current format version (a version-1 card gains the assumed training
    domain, see :meth:`~cones.domain.TrainingDomain.assumed`).

    Args:
        source: a model file, with or without training state.
        destination: the file to write; never ``source`` itself, whose training state a resumed run needs.
        overwrite: replace an existing ``destination``.
        training_domain: record this training domain in the copy's card (measured on the data the
            model was trained on, for a model whose card lacks it); ``None`` keeps the card's.

    Returns:
        ``destination`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: ``source`` is refused (see :func:`~cones.checkpoint.load_checkpoint`), or
            ``destination`` is ``source``.
        OutputExistsError: ``destination`` exists and ``overwrite`` is false.
    """
    destination = Path(destination)
    if same_file(source, destination):
        raise CheckpointError(
            f"not writing {destination}: it is the model being exported ({source}); write the copy to another file"
        )
    payload = {key: value for key, value in load_checkpoint(source).items() if key != TRAINING_STATE_KEY}
    card = ModelCard.from_dict(payload["card"])
    if training_domain is not None:
        card = dataclasses.replace(card, training_domain=training_domain)
    payload.update(format_version=FORMAT_VERSION, card=card.to_dict())
    _write_atomically(destination, payload, overwrite)
    return destination


def _write_atomically(path: Path, payload: dict[str, Any], overwrite: bool) -> None:
    foreign = next(_non_plain_items(payload, "the model"), None)
    if foreign is not None:
        raise CheckpointError(
            f"not writing {path}: {foreign}; a model file holds only tensors and plain Python data, "
            "which torch.load(weights_only=True) can read back"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(path)

    def write(hidden: Path) -> None:
        with hidden.open("xb") as stream:
            torch.save(payload, stream)

    write_atomically(path, write, overwrite=overwrite)
    _LOG.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)


def _non_plain_items(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN_SCALARS:
        return
    if type(value) in _PLAIN_MAPPINGS:
        for key, item in value.items():
            yield from _non_plain_items(key, f"a key of {where}")
            yield from _non_plain_items(item, f"{where}[{key!r}]")
    elif type(value) in _PLAIN_COLLECTIONS:
        for index, item in enumerate(value):
            yield from _non_plain_items(item, f"{where}[{index}]")
    else:
        yield f"{where} is a {type(value).__module__}.{type(value).__qualname__}"
