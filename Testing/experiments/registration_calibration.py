"""Calibrate and report the registration check of ``--prepare`` on the 39 real cases (issue 32).

Each real case's T2 and FLAIR are acquired again as a clinic would: moved by a random rigid motion
(0-15 degrees about a random axis, 0-20 mm in a random direction, about the brain's centre) onto a
grid of their own (1 mm 3D axial, 0.9 x 0.9 x 4-6 mm axial 2D with a box slice profile, or a 1 x 1 x
1.2 mm sagittal 3D), and registered to the case's T1 by :func:`cones.preprocessing.registration.align`
as ``--prepare`` does. Beside them, inputs that must be refused: another patient's sequence (the
next case of the same split half), the sequence mirrored left-right, and a right registration moved
2-15 degrees and 2-20 mm away (one stopped far from the answer). Every trial's figures (the pose's
:class:`cones.preprocessing.alignment.PoseFigures`, the registered mirror's similarity, the error at
brain points against the known motion, the time) go to ``trials.tsv``. The registered mirror is
measured on the right and mirrored trials only: its test can only refuse, so leaving it out of the
other wrong trials can only make them pass more often. ``--report`` then chooses the check's limit
on the training half of ``real_split.tsv`` and reports its counts on the validation half, with the
registration accuracy and time; ``--stripped`` counts the skull-stripped decisions; ``--synthesis``
measures what moving T2 and FLAIR onto 4 mm slices costs a synthesis. Commands (README, "Raw scans")::

    python Testing/experiments/registration_calibration.py --public ../data/public-brats \\
        --coregistered ../shared/data/coregistered --output runs/registration [--affine]
    python Testing/experiments/registration_calibration.py --output runs/registration --report
    python Testing/experiments/registration_calibration.py --public ../data/public-brats \\
        --coregistered ../shared/data/coregistered --output runs/registration --stripped \\
        --native ../shared/data/native/TCGA-FG-6692
    python Testing/experiments/registration_calibration.py --public ../data/public-brats \\
        --coregistered ../shared/data/coregistered --output runs/registration \\
        --synthesis Resources/Models/cones-lite-t1ce.pt
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence as SequenceOf
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_yardstick import read_split

from cones.data.discovery import find_cases
from cones.data.geometry import to_canonical
from cones.domain.checks import MirrorFit, Severity, flipped_left_right
from cones.preprocessing.alignment import PoseFigures, measure_pose
from cones.preprocessing.brain_extraction import brain_mask_of_stripped, looks_skull_stripped
from cones.preprocessing.registration import MIRRORED_MIN_SHARE, TransformKind, align, registered_mirror_nmi
from cones.sample_data.acquisition import acquire
from cones.sequences import Sequence

SEED = 32
GRIDS = {
    "3d-axial-1mm": (1.0, 1.0, 1.0),
    "2d-axial-thick": None,
    "3d-sagittal": (1.0, 1.0, 1.2),
}
"""The acquisition grids; the 2D axial one draws its slice thickness (4-6 mm) per trial."""
WRONG_KINDS = ("other_patient", "mirrored", "stopped_far")


@dataclass(frozen=True)
class Trial:
    """One registration to judge: what was given, and what must come out."""

    trial: str
    case: str
    role: str
    sequence: str
    kind: str
    transform_kind: str
    grid: str
    spacing: tuple[float, float, float]
    rotation_deg: float
    translation_mm: float
    axis: tuple[float, float, float]
    direction: tuple[float, float, float]
    donor: str
    far_rotation_deg: float = 0.0
    far_translation_mm: float = 0.0
    far_axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    far_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)


def plan(cases: list[tuple[str, str, Path]], affine: bool) -> list[Trial]:
    """Every trial, drawn from one seed: per case two right ones (T2, FLAIR) and one of each wrong kind."""
    rng = np.random.default_rng(SEED)
    trials = []
    for role in ("training", "validation"):
        half = [case for case in cases if case[1] == role]
        for index, (case, _, _) in enumerate(half):
            donor = half[(index + 1) % len(half)][0]
            wrong = [(("t2", "flair")[(index + k) % 2], kind) for k, kind in enumerate(WRONG_KINDS)]
            for number, (sequence, kind) in enumerate([("t2", "right"), ("flair", "right"), *wrong]):
                grid = str(rng.choice(list(GRIDS)))
                spacing = GRIDS[grid] or (0.9, 0.9, float(np.round(rng.uniform(4.0, 6.0), 1)))
                far = {}
                if kind == "stopped_far":
                    far = {
                        "far_rotation_deg": float(rng.uniform(2, 15)),
                        "far_translation_mm": float(rng.uniform(2, 20)),
                        "far_axis": _unit(rng),
                        "far_direction": _unit(rng),
                    }
                trial = Trial(
                    trial=f"{case}-{number}-{sequence}-{kind}",
                    case=case,
                    role=role,
                    sequence=sequence,
                    kind=kind,
                    transform_kind="rigid",
                    grid=grid,
                    spacing=spacing,
                    rotation_deg=float(rng.uniform(0, 15)),
                    translation_mm=float(rng.uniform(0, 20)),
                    axis=_unit(rng),
                    direction=_unit(rng),
                    donor=donor if kind == "other_patient" else case,
                    **far,
                )
                trials.append(trial)
                if affine and kind == "right":
                    trials.append(_as_affine(trial))
    return trials


def _as_affine(trial: Trial) -> Trial:
    fields = {**asdict(trial), "trial": trial.trial + "-affine", "transform_kind": "affine"}
    return Trial(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})


def _unit(rng: np.random.Generator) -> tuple[float, float, float]:
    vector = rng.normal(size=3)
    return tuple(float(v) for v in vector / np.linalg.norm(vector))


def motion(
    centre: SequenceOf[float],
    angle_deg: float,
    axis: SequenceOf[float],
    shift_mm: float,
    direction: SequenceOf[float],
) -> sitk.Transform:
    """A rigid motion about ``centre``: ``angle_deg`` about ``axis``, then ``shift_mm`` along ``direction``."""
    moved = sitk.VersorRigid3DTransform()
    moved.SetCenter([float(c) for c in centre])
    moved.SetRotation([float(a) for a in axis], float(np.radians(angle_deg)))
    moved.SetTranslation([float(shift_mm * d) for d in direction])
    return moved


def acquired(image: sitk.Image, truth: sitk.Transform, grid: str, spacing: SequenceOf[float]) -> sitk.Image:
    """``image`` acquired after the head moved by ``truth`` (reference to sequence points) on ``grid``."""
    head = sitk.Cast(image, sitk.sitkFloat32)
    if grid == "3d-sagittal":
        head = sitk.PermuteAxes(head, [1, 2, 0])
    return acquire(head, spacing, truth, np.random.default_rng(0), 0.0)


def brain_errors(found: sitk.Transform, truth: sitk.Transform, brain: sitk.Image) -> np.ndarray:
    """Distance (mm) between where ``found`` and ``truth`` take brain points (every 4th voxel)."""
    indices = np.argwhere(sitk.GetArrayViewFromImage(brain)[::4, ::4, ::4] > 0) * 4
    points = [brain.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]]) for index in indices]
    return np.array([np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p))) for p in points])


def run_trial(trial: Trial, folders: dict[str, Path]) -> dict[str, object]:
    """Acquire, register and measure one trial (one thread: the workers run side by side)."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    given = acquire_trial(trial, folders)
    started = time.perf_counter()
    initial = sitk.Euler3DTransform() if trial.transform_kind == "rigid" else sitk.AffineTransform(3)
    initial.SetCenter(given.centre)
    found, _ = align(given.reference, given.source, initial)
    align_seconds = time.perf_counter() - started
    errors = brain_errors(found, given.truth, given.brain)
    pose = found
    if trial.kind == "stopped_far":
        away = motion(
            given.centre, trial.far_rotation_deg, trial.far_axis, trial.far_translation_mm, trial.far_direction
        )
        pose = sitk.CompositeTransform([found, away])
        errors = brain_errors(pose, given.truth, given.brain)
    started = time.perf_counter()
    figures = measure_pose(given.reference, given.source, pose, given.brain)
    measure_seconds = time.perf_counter() - started
    row: dict[str, object] = {**asdict(trial)}
    mirror_seconds = float("nan")
    mirror = float("nan")
    if trial.transform_kind == "rigid" and trial.kind in ("right", "mirrored"):
        started = time.perf_counter()
        mirror = registered_mirror_nmi(given.reference, given.source, TransformKind.RIGID, given.brain)
        mirror_seconds = time.perf_counter() - started
    row.update(
        nmi=figures.normalized_mutual_information,
        sharpness=figures.sharpness,
        around=json.dumps([round(value, 5) for value in figures.around]),
        mirror_nmi=mirror,
        error_median_mm=float(np.median(errors)),
        error_p95_mm=float(np.percentile(errors, 95)),
        align_seconds=align_seconds,
        measure_seconds=measure_seconds,
        mirror_seconds=mirror_seconds,
    )
    return row


def run_trials(trials: list[Trial], folders: dict[str, Path], output: Path, workers: int) -> None:
    """Run every trial not yet in ``output/trials.tsv``, appending each row as it ends."""
    table = output / "trials.tsv"
    done = {row["trial"] for row in _read(table)} if table.exists() else set()
    todo = sorted((trial for trial in trials if trial.trial not in done), key=_interleaved(trials))
    print(f"{len(todo)} of {len(trials)} trials to run", flush=True)
    columns = _read_header(table) if table.exists() else None
    with ProcessPoolExecutor(workers) as pool:
        for row in pool.map(run_trial, todo, [folders] * len(todo)):
            if columns is not None and columns != list(row):
                raise ValueError(f"{table} was written with other columns; give another --output")
            with table.open("a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(row), delimiter="\t")
                if columns is None:
                    writer.writeheader()
                    columns = list(row)
                writer.writerow(row)
            print(
                f"{row['trial']}: nmi {row['nmi']:.4f} sharp {row['sharpness']:.4f} mirror {row['mirror_nmi']:.4f} "
                f"error {row['error_median_mm']:.2f}/{row['error_p95_mm']:.2f} mm {row['align_seconds']:.1f}+"
                f"{row['measure_seconds']:.1f}+{row['mirror_seconds']:.1f} s",
                flush=True,
            )


SYNTHESIS_GRID = (0.9, 0.9, 4.0)
"""The clinical 2D grid (box slice profile) of the synthesis trial."""
SLAB_MARGIN = 30
"""Slices (1 mm) added above and below a BraTS volume before it is acquired again for the synthesis trial: tilted by
15 degrees, a brain outgrows the 155 mm field of view, and a radiographer plans the slab to cover it."""


def run_synthesis(case: str, folder: Path, model_path: Path, seed: int) -> dict[str, object]:
    """One validation case synthesized aligned, and with T2 and FLAIR moved onto 4 mm slices of their own.

    Each moves 10-15 degrees and 15-20 mm, onto slices that cover the whole brain (:data:`SLAB_MARGIN`).
    Both outputs are scored as ``Testing/real/test_raw_scans.py`` does (own percentiles, inside the
    brain, against the real T1ce); the moved run goes through :func:`cones.preprocessing.synthesize_raw`.
    """
    from cones.checkpoint import load_model
    from cones.inference import SynthesisOptions, synthesize_images
    from cones.metrics import own_scale_scores
    from cones.preprocessing import RegistrationFailed, synthesize_raw

    rng = np.random.default_rng([SEED, seed])
    model = load_model(model_path)
    options = SynthesisOptions(device="cpu")
    files = {case.case_id: case.sequences for case in find_cases(folder.parent)}[case]
    images = {sequence: sitk.ReadImage(str(files[sequence]), sitk.sitkFloat32) for sequence in files}
    sources = {sequence: images[sequence] for sequence in model.card.sources}
    _, centre = brain_and_centre(images[Sequence.T1])
    real = sitk.GetArrayFromImage(images[Sequence.T1CE])
    inside = real > 0
    aligned = synthesize_images(model, sources, options=options)[Sequence.T1CE]
    moved, motions = dict(sources), {}
    for sequence in (Sequence.T2, Sequence.FLAIR):
        angle, shift = float(rng.uniform(10, 15)), float(rng.uniform(15, 20))
        truth = motion(centre, angle, _unit(rng), shift, _unit(rng))
        whole_brain = sitk.ConstantPad(sources[sequence], (0, 0, SLAB_MARGIN), (0, 0, SLAB_MARGIN), 0.0)
        moved[sequence] = acquired(whole_brain, truth, "2d-axial-thick", SYNTHESIS_GRID)
        motions[sequence.value] = (round(angle, 2), round(shift, 2))
    started = time.perf_counter()
    try:
        raw = synthesize_raw(model, moved, options=options)
    except RegistrationFailed as refused:
        return {"case": case, "motions": json.dumps(motions), "refused": str(refused)}
    seconds = time.perf_counter() - started
    prepared = raw.outputs[Sequence.T1CE]
    sharpness = {
        sequence.value: round(result.pose.sharpness, 5)
        for sequence, result in raw.prepared.report.registrations.items()
    }
    aligned_psnr, aligned_ssim = own_scale_scores(sitk.GetArrayFromImage(aligned), real, inside)
    moved_psnr, moved_ssim = own_scale_scores(sitk.GetArrayFromImage(prepared), real, inside)
    return {
        "case": case,
        "motions": json.dumps(motions),
        "aligned_psnr": aligned_psnr,
        "moved_psnr": moved_psnr,
        "cost_db": aligned_psnr - moved_psnr,
        "aligned_ssim": aligned_ssim,
        "moved_ssim": moved_ssim,
        "sharpness": json.dumps(sharpness),
        "register_seconds": raw.prepared.report.seconds["register"],
        "prepare_seconds": seconds,
        "refused": "",
    }


def _interleaved(trials: list[Trial]):
    """Sort key taking the cases of the two halves in turn, so that a run stopped early has some of each."""
    order: dict[str, dict[str, int]] = {"training": {}, "validation": {}}
    for trial in trials:
        order[trial.role].setdefault(trial.case, len(order[trial.role]))
    return lambda trial: (order[trial.role][trial.case], trial.role, trial.trial)


def refusal(row: dict[str, str], min_sharpness: float, min_nmi: float | None = None) -> str | None:
    """Why the check (:func:`cones.preprocessing.registration.check_registration`, with this limit) refuses a trial.

    ``min_nmi``: judge by the old rule instead (normalized mutual information below it), the mirror test kept.
    """
    nmi, mirror = float(row["nmi"]), float(row["mirror_nmi"])
    fit = MirrorFit(nmi, mirror)
    if not np.isnan(mirror) and fit.severity() is Severity.ERROR and fit.gain >= MIRRORED_MIN_SHARE * (nmi - 1):
        return "mirrored"
    if min_nmi is not None:
        return "shares too little" if nmi < min_nmi else None
    return "not sharp" if sharpness(row) < min_sharpness else None


def sharpness(row: dict[str, str]) -> float:
    """The sharpness :class:`cones.preprocessing.alignment.PoseFigures` defines, from the recorded figures."""
    return PoseFigures(float(row["nmi"]), tuple(json.loads(row["around"]))).sharpness


def choose(rows: list[dict[str, str]]) -> float:
    """The least sharpness, halfway across the gap the training trials leave between right and wrong ones."""
    lowest_right = min(sharpness(row) for row in rows if row["kind"] == "right")
    wrong = [row for row in rows if row["kind"] in WRONG_KINDS and refusal(row, -np.inf) is None]
    sharpest_wrong = max(sharpness(row) for row in wrong)
    return round((lowest_right + sharpest_wrong) / 2, 4)


def _count(verdicts: list[tuple[str, bool]], kind: str, refused: bool) -> str:
    """``"hits / trials"``: how many trials of ``kind`` were (``refused``) or were not refused."""
    of_kind = [verdict for trial_kind, verdict in verdicts if trial_kind == kind]
    return f"{sum(verdict == refused for verdict in of_kind)} / {len(of_kind)}"


def report(rows: list[dict[str, str]], output: Path) -> str:
    """The chosen limit, the counts on each half, accuracy and time, as Markdown (also ``output/report.md``)."""
    rigid = [row for row in rows if row["transform_kind"] == "rigid"]
    training = [row for row in rigid if row["role"] == "training"]
    min_sharpness = choose(training)
    lines = [
        f"Chosen on the {len({r['case'] for r in training})} training cases: min sharpness {min_sharpness}.",
        "",
        "| half | rule | right refused | other patient accepted | mirrored accepted | stopped far accepted |",
        "|---|---|---|---|---|---|",
    ]
    for role in ("training", "validation"):
        half = [row for row in rigid if row["role"] == role]
        rules = {"pose check": {}, "old: NMI >= 1.025": {"min_nmi": 1.025}}
        for name, extra in rules.items():
            verdicts = [(row["kind"], refusal(row, min_sharpness, **extra) is not None) for row in half]
            cells = [_count(verdicts, "right", True), *(_count(verdicts, kind, False) for kind in WRONG_KINDS)]
            lines.append(f"| {role} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "| registration | grid | trials | median error (mm) | 95th percentile (mm) | max (mm) | seconds |"]
    lines.append("|---|---|---|---|---|---|---|")
    for kind in ("rigid", "affine"):
        right = [row for row in rows if row["kind"] == "right" and row["transform_kind"] == kind]
        for grid in (*GRIDS, "all"):
            chosen = [row for row in right if grid in (row["grid"], "all")]
            if not chosen:
                continue
            medians = [float(row["error_median_mm"]) for row in chosen]
            p95 = [float(row["error_p95_mm"]) for row in chosen]
            seconds = [float(row["align_seconds"]) for row in chosen]
            lines.append(
                f"| {kind} | {grid} | {len(chosen)} | {np.median(medians):.2f} | {np.percentile(p95, 95):.2f} | "
                f"{max(p95):.2f} | {np.median(seconds):.1f} |"
            )
    right = [row for row in rigid if row["kind"] == "right"]
    checks = [float(row["measure_seconds"]) for row in right]
    mirrors = [float(row["mirror_seconds"]) for row in right]
    lines += [
        "",
        f"Check time per registration (one thread): pose figures median {np.median(checks):.1f} s, registered mirror "
        f"median {np.median(mirrors):.1f} s.",
    ]
    for row in rigid:
        why = refusal(row, min_sharpness)
        if (row["kind"] == "right") == (why is not None):
            lines.append(f"- wrong verdict: {row['trial']} ({row['role']}): {why or 'accepted'}")
    text = "\n".join(lines)
    (output / "report.md").write_text(text + "\n")
    return text


@dataclass(frozen=True)
class Acquisition:
    """What one trial registers: the reference as given, its brain, and the source acquired after a known motion."""

    reference: sitk.Image
    brain: sitk.Image
    centre: tuple[float, float, float]
    truth: sitk.Transform
    source: sitk.Image


def brain_and_centre(reference: sitk.Image) -> tuple[sitk.Image, tuple[float, float, float]]:
    """A stripped reference's brain and its centroid (the centre of every motion)."""
    brain = brain_mask_of_stripped(reference)
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(brain)
    return brain, statistics.GetCentroid(1)


def acquire_trial(trial: Trial, folders: dict[str, Path]) -> Acquisition:
    """The trial's reference T1 and its source acquired after the trial's motion (what :func:`run_trial` registers)."""
    own = {case.case_id: case.sequences for case in find_cases(folders[trial.case].parent)}[trial.case]
    reference = sitk.ReadImage(str(own[Sequence.T1]), sitk.sitkFloat32)
    brain, centre = brain_and_centre(reference)
    donor = {case.case_id: case.sequences for case in find_cases(folders[trial.donor].parent)}[trial.donor]
    source = sitk.ReadImage(str(donor[Sequence(trial.sequence)]), sitk.sitkFloat32)
    if trial.kind == "mirrored":
        source = flipped_left_right(to_canonical(source)[0])
    truth = motion(centre, trial.rotation_deg, trial.axis, trial.translation_mm, trial.direction)
    return Acquisition(reference, brain, centre, truth, acquired(source, truth, trial.grid, trial.spacing))


def _stripped(trial: Trial, folders: dict[str, Path]) -> tuple[bool, bool]:
    acquisition = acquire_trial(trial, folders)
    return looks_skull_stripped(acquisition.reference), looks_skull_stripped(acquisition.source)


def stripped_decisions(trials: list[Trial], folders: dict[str, Path], workers: int) -> str:
    """How many of the (stripped) references and acquired sources the skull-stripped test takes as stripped."""
    rigid = [trial for trial in trials if trial.transform_kind == "rigid"]
    with ProcessPoolExecutor(workers) as pool:
        decisions = list(pool.map(_stripped, rigid, [folders] * len(rigid)))
    references = {trial.case: reference for trial, (reference, _) in zip(rigid, decisions, strict=True)}
    return (
        f"Skull-stripped decision: {sum(references.values())} of {len(references)} reference T1 as given, "
        f"{sum(source for _, source in decisions)} of {len(decisions)} acquired sources taken as stripped (all are)."
    )


def unstripped_decisions(native: Path | None, heads: int = 4) -> str:
    """How many raw heads (skull on) the skull-stripped test takes as not stripped: the native case, generated heads."""
    from cones.sample_data import SampleDataConfig, generate_case
    from cones.sample_data.raw import AcquisitionGrid, RawAcquisitionConfig, make_raw_case

    images = []
    if native is not None:
        images += [sitk.ReadImage(str(path)) for case in find_cases(native.parent) for path in case.sequences.values()]
    grids = RawAcquisitionConfig(
        t1=AcquisitionGrid(2.0, 2.0),
        t1ce=AcquisitionGrid(2.0, 2.0),
        t2=AcquisitionGrid(1.8, 4.0),
        flair=AcquisitionGrid(1.8, 4.0),
    )
    for seed in range(heads):
        case = generate_case(f"RAW-{seed}", seed=seed, config=SampleDataConfig(shape=(120, 120, 78), spacing_mm=2.0))
        images += list(make_raw_case(case, seed=seed, config=grids).images.values())
    taken = sum(not looks_skull_stripped(image) for image in images)
    return (
        f"{taken} of {len(images)} raw volumes (skull on: the native case's sequences, {heads} generated heads' "
        "sequences) taken as not stripped."
    )


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)


def _read_header(path: Path) -> list[str]:
    with path.open() as handle:
        return handle.readline().rstrip("\n").split("\t")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def parse_arguments(argv: SequenceOf[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--public", type=Path, help="the extracted public BraTS cases")
    parser.add_argument("--coregistered", type=Path, help="../shared/data/coregistered")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--affine", action="store_true", help="also register each right trial affinely")
    parser.add_argument("--cases", type=int, default=0, help="only the first N cases of each half (0: all)")
    parser.add_argument(
        "--synthesis",
        type=Path,
        metavar="MODEL",
        help="instead: synthesize each validation case aligned and moved onto 4 mm slices with this model",
    )
    parser.add_argument("--report", action="store_true", help="instead: choose and report from trials.tsv")
    parser.add_argument(
        "--stripped", action="store_true", help="instead: count the skull-stripped decisions on every trial's images"
    )
    parser.add_argument("--native", type=Path, help="with --stripped: the native case (raw heads)")
    return parser.parse_args(argv)


def main(argv: SequenceOf[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    arguments.output.mkdir(parents=True, exist_ok=True)
    if arguments.report:
        text = report(_read(arguments.output / "trials.tsv"), arguments.output)
        print(text)
        return 0
    split = read_split()
    roots = {"public-brats": arguments.public, "coregistered": arguments.coregistered}
    if None in roots.values():
        raise SystemExit("--public and --coregistered are needed to run trials")
    folders = {case.case: roots[case.folder] / case.case for case in split}
    cases = [(case.case, case.role, folders[case.case]) for case in split]
    if arguments.stripped:
        text = stripped_decisions(plan(cases, False), folders, arguments.workers)
        text += "\n" + unstripped_decisions(arguments.native)
        (arguments.output / "stripped.md").write_text(text + "\n")
        print(text)
        return 0
    if arguments.cases:
        halves = [[case for case in cases if case[1] == role] for role in ("training", "validation")]
        cases = [case for half in halves for case in half[: arguments.cases]]
    if arguments.synthesis is not None:
        validation = [case for case in cases if case[1] == "validation"]
        rows = [
            run_synthesis(case, folder, arguments.synthesis, index)
            for index, (case, _, folder) in enumerate(validation)
        ]
        _write(arguments.output / "synthesis.tsv", rows)
        refused = [row for row in rows if row["refused"]]
        print(
            f"{len(refused)} of {len(rows)} moved cases refused" + "".join(f"\n  {row['refused']}" for row in refused)
        )
        rows = [row for row in rows if not row["refused"]]
        costs = [row["cost_db"] for row in rows]
        print(f"cost of moving T2 and FLAIR onto 4 mm slices: mean {np.mean(costs):.2f} dB, max {np.max(costs):.2f} dB")
        seconds = [row["register_seconds"] / 2 for row in rows]
        print(f"time per registration (checks included, all cores): median {np.median(seconds):.1f} s")
        return 0
    run_trials(plan(cases, arguments.affine), folders, arguments.output, arguments.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
