"""A whole training run: data, models, the step loop, validation, logs and checkpoints.

A run folder holds ``last.pt`` (with everything needed to resume), ``best.pt`` (best validation
PSNR), ``log.jsonl`` (one JSON object per log line) and ``cache/`` (the slice cache, unless the
caller shares one between runs). Every random
draw of step ``i`` is seeded from ``(seed, i, rank)``, so ``--resume`` continues exactly where an
interrupted run stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from cones.checkpoint import (
    ModelCard,
    load_model,
    load_resumable,
    make_provenance,
    save_model,
)
from cones.checkpoint.layout import TRAINING_STATE_KEY
from cones.data import (
    bright_target_focus,
    build_slice_cache,
    data_fingerprint,
    find_cases,
    require_sequences,
    sample_batch,
)
from cones.device import resolve_device
from cones.domain import TrainingDomain, measure_cases
from cones.metrics import psnr, ssim
from cones.model import PatchDiscriminator, build_discriminator, build_generator
from cones.outputs import check_output_folder, forget_log_entries_after
from cones.sequences import Sequence, parse_sequences
from cones.training.config import TrainConfig
from cones.training.distributed import DistributedContext, init_distributed, shutdown_distributed
from cones.training.step import AdversarialStep

__all__ = ["train"]

logger = logging.getLogger(__name__)

LAST, BEST, LOG = "last.pt", "best.pt", "log.jsonl"

_SavedRun = tuple[dict[str, Any], ModelCard]
"""A resumed run's ``last.pt``: its payload and card (:func:`~cones.checkpoint.load_resumable`)."""


def _resumed_config(run_dir: Path, state: dict[str, Any], requested: TrainConfig) -> TrainConfig:
    """The saved config of a run, with the requested iteration count (the only thing a resume may change).

    A count the run has already reached would train nothing and still end as if it had: refused,
    naming both numbers.
    """
    saved = TrainConfig.from_dict(state["train_config"])
    differing = [
        name for name in asdict(saved) if name != "iterations" and getattr(saved, name) != getattr(requested, name)
    ]
    if differing:
        raise ValueError(f"cannot resume {run_dir}: settings differ from the saved run: {', '.join(differing)}")
    finished = int(state["iteration"])
    if requested.iterations <= finished:
        raise ValueError(
            f"cannot resume {run_dir}: it has finished {finished} iterations, and --iterations {requested.iterations} "
            f"asks for no more; pass --iterations above {finished} to train on"
        )
    return TrainConfig.from_dict({**saved.to_dict(), "iterations": requested.iterations})


def _resumed_data_history(
    run_dir: Path, saved_run: _SavedRun, data_dir: Path, fingerprint: str, allow_new_data: bool
) -> tuple[str, ...]:
    """The earlier data fingerprints a resumed run records, refusing other data unless it is allowed.

    A resume on other data would otherwise rebuild the cache and overwrite ``last.pt`` and ``best.pt``
    with a model whose card names only the new data, hiding that most of its training saw another set.
    """
    raw, card = saved_run
    state, provenance = raw[TRAINING_STATE_KEY], card.provenance
    saved = provenance.data_fingerprint
    if saved == fingerprint:
        return provenance.earlier_data_fingerprints
    if not allow_new_data:
        saved_folder = state.get("data_dir", "a folder not recorded")
        raise ValueError(
            f"cannot resume {run_dir}: it was trained on other data ({saved_folder}, fingerprint {saved[:12]}) than "
            f"{data_dir} (fingerprint {fingerprint[:12]}); pass --allow-new-data to continue on the new data"
        )
    logger.warning("resuming %s on new data %s (fingerprint %s, was %s)", run_dir, data_dir, fingerprint, saved)
    return (*provenance.earlier_data_fingerprints, saved)


def _restore(
    saved_run: _SavedRun, generator: torch.nn.Module, discriminator: torch.nn.Module, step: AdversarialStep
) -> tuple[int, float]:
    """Load a resumed run's weights, optimizers and counters; returns (iteration, best validation PSNR)."""
    raw, _ = saved_run
    state = raw[TRAINING_STATE_KEY]
    generator.load_state_dict(raw["generator_state"])
    discriminator.load_state_dict(state["discriminator"])
    step.load_state_dict(state)
    return int(state["iteration"]), float(state["best_psnr"])


def _initial_generator_state(
    path: Path, config: TrainConfig, sources: tuple[Sequence, ...], targets: tuple[Sequence, ...]
) -> dict[str, torch.Tensor]:
    """The generator weights of a model to fine-tune, refused unless it is the model this run would build.

    Architecture, preset, sequences, normalization and slice axis must all agree: weights trained on
    another normalization or channel order would load without error and silently mean something else.
    """
    model = load_model(path)
    card = model.card
    wanted = {
        "architecture": config.arch,
        "preset": config.preset,
        "sources": sources,
        "targets": targets,
        "normalization": config.normalization,
        "slice_axis": config.slice_axis,
    }
    differing = [
        f"{key} {getattr(card, key)!r} (run: {value!r})" for key, value in wanted.items() if getattr(card, key) != value
    ]
    if differing:
        raise ValueError(f"cannot start from {path}: it differs from this run in {', '.join(differing)}")
    return model.generator.state_dict()


def _validation_ids(config: TrainConfig, case_ids: list[str], data_dir: Path) -> list[str]:
    """The held-out cases: named in the config, or the last ``validation_cases`` in sorted order."""
    if config.validation_case_ids:
        unknown = sorted(set(config.validation_case_ids) - set(case_ids))
        if unknown:
            raise ValueError(f"validation case(s) {unknown} are not among the cases in {data_dir}")
        chosen = list(config.validation_case_ids)
    else:
        chosen = case_ids[len(case_ids) - config.validation_cases :] if config.validation_cases else []
    if len(chosen) >= len(case_ids):
        raise ValueError(f"{len(case_ids)} case(s) in {data_dir} leave none for training with {len(chosen)} held out")
    return chosen


def _validate(generator: torch.nn.Module, cache, rows: np.ndarray, device: torch.device) -> dict[str, float]:
    """PSNR/SSIM (images in [0, 1], as in the paper) of whole held-out slices, averaged per case."""
    generator.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": []}
    with torch.inference_mode():
        for case in dict.fromkeys(cache.case_ids[row] for row in rows):
            case_rows = rows[[cache.case_ids[row] == case for row in rows]]
            predictions = [
                generator(torch.from_numpy(np.asarray(cache.sources[chunk], dtype=np.float32)).to(device))
                .image.cpu()
                .numpy()
                for chunk in np.array_split(case_rows, max(1, len(case_rows) // 8))
            ]
            prediction = (np.concatenate(predictions) + 1.0) / 2.0
            reference = (np.asarray(cache.targets[case_rows], dtype=np.float32) + 1.0) / 2.0
            for channel in range(reference.shape[1]):
                scores["psnr"].append(psnr(prediction[:, channel], reference[:, channel]))
                scores["ssim"].append(ssim(prediction[:, channel], reference[:, channel]))
    generator.train()
    return {name: float(np.mean(values)) for name, values in scores.items()}


class _RunLog:
    """Appends JSON lines to ``log.jsonl`` (rank 0 only); the Slicer module and tests read it."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, **entry: object) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

    def forget_after(self, iteration: int) -> None:
        """Drop the entries a stopped run wrote after its last checkpoint (:func:`forget_log_entries_after`)."""
        if self.enabled:
            forget_log_entries_after(self.path, iteration)


def train(
    config: TrainConfig,
    data_dir: str | Path,
    output_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    resample: bool = False,
    command: str | None = None,
    data_description: str | None = None,
    show_progress: bool = True,
    cache_dir: str | Path | None = None,
    initial_model: str | Path | None = None,
    allow_new_data: bool = False,
) -> Path:
    """Train a generator (CoNeS or a baseline, per ``config.arch``) on a dataset folder; return ``last.pt``.

    Args:
        config: hyper-parameters (ignored except ``iterations`` when resuming: the saved ones rule).
        data_dir: folder of case folders (BraTS naming).
        output_dir: the run folder; must not hold a run unless ``resume``.
        device: ``auto``, ``cpu`` or ``cuda``; bfloat16 autocast is used on CUDA.
        resume: continue the run in ``output_dir`` from its ``last.pt``.
        resample: resample sequences on other grids onto the first source instead of refusing.
        command: the command line, recorded in the checkpoint's provenance.
        data_description: which data (and its attribution), recorded in the provenance; a resumed run
            keeps the saved one unless another is given.
        show_progress: draw a tqdm bar on rank 0.
        cache_dir: the slice cache folder (default: ``output_dir/cache``); runs on the same data
            with the same normalization can share one, as the baseline comparison does.
        initial_model: a trained model file whose generator weights the run starts from (fine-tuning
            on one's own data); the discriminator and optimizers start afresh, so an exported,
            inference-only model will do.
        allow_new_data: let a resumed run continue on data other than the data it was trained on
            (its model card then keeps the earlier data fingerprints); refused otherwise.

    Raises:
        FileExistsError: ``output_dir`` already holds a run and ``resume`` is False.
        ValueError: bad data (see :mod:`cones.data`), an output folder that is the data folder or
            cannot be written, resume settings or data that differ, ``resume`` together with
            ``initial_model``, or an initial model that does not fit ``config``.
    """
    run_dir = check_output_folder(output_dir, reads={"the --data folder": data_dir})
    if resume and initial_model is not None:
        raise ValueError("a resumed run continues from its own last.pt; do not give an initial model as well")
    if not resume and (run_dir / LAST).exists():
        raise FileExistsError(f"{run_dir} already holds a training run; resume it or choose another folder")
    torch_device = resolve_device(device)
    context = init_distributed(torch_device)
    new_folder = not run_dir.exists()
    try:
        return _train(
            config,
            Path(data_dir),
            run_dir,
            torch_device,
            context,
            resume,
            resample,
            command,
            data_description,
            show_progress,
            Path(cache_dir) if cache_dir is not None else run_dir / "cache",
            Path(initial_model) if initial_model is not None else None,
            allow_new_data,
        )
    except BaseException:
        if new_folder and not (run_dir / LAST).exists():
            # Refused data or an interrupt before the first checkpoint: the folder this call made holds
            # nothing to resume, and a half-built cache must not pass for a run.
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        shutdown_distributed(context)


def _train(
    config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    device: torch.device,
    context: DistributedContext,
    resume: bool,
    resample: bool,
    command: str | None,
    data_description: str | None,
    show_progress: bool,
    cache_dir: Path,
    initial_model: Path | None,
    allow_new_data: bool,
) -> Path:
    # last.pt is read once (a paper-preset run's, optimizer states included, is large) and let go once restored.
    saved_run = load_resumable(run_dir / LAST) if resume else None
    if saved_run is not None:
        config = _resumed_config(run_dir, saved_run[0][TRAINING_STATE_KEY], config)
        # A resume command seldom repeats the description; without this the resumed model's card would
        # lose which data it learned from and its attribution.
        data_description = data_description or saved_run[1].provenance.data_description
    sources, targets = parse_sequences(config.sources), parse_sequences(config.targets)
    initial = _initial_generator_state(initial_model, config, sources, targets) if initial_model else None
    cases = require_sequences(find_cases(data_dir), (*sources, *targets))
    validation_ids = _validation_ids(config, [case.case_id for case in cases], data_dir)
    fingerprint = data_fingerprint(cases, sources, targets, config.normalization, config.slice_axis, resample)
    earlier_data = _resumed_data_history(run_dir, saved_run, data_dir, fingerprint, allow_new_data) if saved_run else ()
    run_dir.mkdir(parents=True, exist_ok=True)
    if context.enabled and not context.is_main:
        torch.distributed.barrier()  # rank 0 builds the cache first; the others then reuse it
    cache = build_slice_cache(cases, sources, targets, cache_dir, config.normalization, config.slice_axis, resample)
    if context.enabled and context.is_main:
        torch.distributed.barrier()
    training_cases = [case for case in cases if case.case_id not in validation_ids]
    training_rows = cache.slices_of([case.case_id for case in training_cases])
    # Only rank 0 writes model files, so only it measures what the inputs of this training look like.
    domain = (
        measure_cases(training_cases, sources, config.normalization, config.slice_axis, resample)
        if context.is_main
        else TrainingDomain.assumed()
    )
    validation_rows = cache.slices_of(validation_ids)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        generator = build_generator(config.preset, len(sources), len(targets), config.arch).to(device)
        discriminator = build_discriminator(config.preset, len(sources), len(targets)).to(device)
    if initial is not None:
        generator.load_state_dict(initial)
    generator_module: torch.nn.Module = generator
    discriminator_module: PatchDiscriminator = discriminator
    if context.enabled:
        device_ids = [device.index or context.local_rank] if device.type == "cuda" else None
        generator = DistributedDataParallel(generator, device_ids=device_ids)
        discriminator = DistributedDataParallel(discriminator, device_ids=device_ids)
    step = AdversarialStep(config, generator, discriminator, autocast=device.type == "cuda")

    start, best_psnr = 0, float("-inf")
    if saved_run is not None:
        start, best_psnr = _restore(saved_run, generator_module, discriminator_module, step)
        saved_run = None

    log = _RunLog(run_dir / LOG, context.is_main)
    log.forget_after(start)
    if context.is_main:
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    augmentation = config.augmentation if config.augment else None
    focus = (
        bright_target_focus(cache, training_rows, config.bright_crop_fraction, config.bright_crop_threshold)
        if config.bright_crop_fraction > 0
        else None
    )

    def save(path: Path, iteration: int) -> None:
        card = ModelCard(
            architecture=config.arch,
            preset=config.preset,
            generator=generator_module.config,
            sources=sources,
            targets=targets,
            normalization=config.normalization,
            slice_axis=config.slice_axis,
            training_domain=domain,
            provenance=make_provenance(iteration, cache.fingerprint, command, data_description, earlier_data),
        )
        state = {
            "train_config": config.to_dict(),
            "data_dir": str(data_dir.resolve()),
            "iteration": iteration,
            "best_psnr": best_psnr,
            "discriminator": discriminator_module.state_dict(),
            **step.state_dict(),
        }
        save_model(path, generator_module, card, training_state=state, overwrite=True)

    progress = tqdm(
        total=config.iterations,
        initial=start,
        disable=not (show_progress and context.is_main),
        desc="training",
        unit="it",
    )
    started = time.perf_counter()
    for iteration in range(start, config.iterations):
        rng = np.random.default_rng([config.seed, iteration, context.rank])
        batch = sample_batch(cache, training_rows, config.batch_size, config.crop_size, rng, augmentation, focus)
        tensors = {key: torch.from_numpy(value).to(device) for key, value in batch.items()}
        noise = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        losses = step(tensors["sources"], tensors["target"], tensors["offset"], iteration, noise)
        done = iteration + 1
        progress.update()
        if done % config.log_interval == 0 or done == config.iterations:
            log.write(
                kind="train",
                iteration=done,
                seconds=round(time.perf_counter() - started, 3),
                learning_rate_factor=config.learning_rate_factor(iteration),
                **asdict(losses),
            )
            progress.set_postfix(l1=f"{losses.reconstruction:.3f}", d=f"{losses.discriminator:.2f}")
        if (
            context.is_main
            and len(validation_rows)
            and (done % config.validation_interval == 0 or done == config.iterations)
        ):
            scores = _validate(generator_module, cache, validation_rows, device)
            log.write(kind="validation", iteration=done, **scores)
            logger.info("iteration %d: validation PSNR %.2f dB, SSIM %.4f", done, scores["psnr"], scores["ssim"])
            if scores["psnr"] > best_psnr:
                best_psnr = scores["psnr"]
                save(run_dir / BEST, done)
        if context.is_main and (done % config.checkpoint_interval == 0 or done == config.iterations):
            save(run_dir / LAST, done)
    progress.close()
    return run_dir / LAST
