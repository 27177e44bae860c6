"""How the uncertainty map's ranking of the real error moves with the weight of its calibration part.

The map (:mod:`cones.trust.uncertainty`) adds the passes' spread and ``calibration`` times the
synthesized intensity in quadrature. The script runs each case's passes once, then scores the map
for every calibration weight against the error of the issue (each volume on its own brain
percentiles; :mod:`cones.trust.calibration`): weight 0 is the spread alone, a very large weight the
synthesized intensity alone. A weight is worth keeping where the figures stay put around it.

Example::

    python Testing/experiments/uncertainty_calibration.py --model Resources/Models/cones-lite-t1ce.pt \\
        --data ../shared/data/coregistered --cases TCGA-FG-6692
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence as SequenceOf
from dataclasses import replace
from pathlib import Path

from cones.checkpoint import LoadedModel, load_model
from cones.data import find_cases
from cones.evaluation import CaseVolumes, load_case_volumes
from cones.inference import SynthesisOptions, synthesize_volume_with_uncertainty
from cones.trust import PerturbedPasses, UncertaintyCalibration, calibrate_uncertainty, synthesis_error

CALIBRATIONS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 100.0)


def sweep(
    model: LoadedModel, case: CaseVolumes, calibrations: SequenceOf[float], options: SynthesisOptions
) -> dict[float, UncertaintyCalibration]:
    """By calibration weight: how the map of ``case`` ranks its error (one synthesis with the passes)."""
    card = model.card
    spread_only = PerturbedPasses.one_per_source(len(card.sources), calibration=0.0)
    volumes, spreads = synthesize_volume_with_uncertainty(
        model.generator,
        case.sources,
        card.sources,
        card.targets,
        card.normalization,
        options,
        perturbations=spread_only,
    )
    synthesized, spread = volumes[card.targets[0]], spreads[card.targets[0]]
    error = synthesis_error(synthesized, case.target, case.target_brain)
    return {
        weight: calibrate_uncertainty(
            replace(spread_only, calibration=weight).combine(spread, synthesized), error, case.target_brain
        )
        for weight in calibrations
    }


def render_table(results: dict[str, dict[float, UncertaintyCalibration]]) -> str:
    """Markdown: a row per case, a column per calibration weight, "Spearman / ratio" in each cell."""
    weights = list(next(iter(results.values())))
    lines = [
        "| case | " + " | ".join(f"{weight:g}" for weight in weights) + " |",
        "|---|" + "---:|" * len(weights),
    ]
    for case_id, row in results.items():
        cells = (f"{row[w].spearman:.2f} / {row[w].top_decile_ratio:.2f}" for w in weights)
        lines.append(f"| {case_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: SequenceOf[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of cases with the real target")
    parser.add_argument("--cases", nargs="+", help="case folders to score (default: all)")
    parser.add_argument("--calibrations", type=float, nargs="+", default=list(CALIBRATIONS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = load_model(args.model, device=args.device)
    card = model.card
    cases = [case for case in find_cases(args.data) if not args.cases or case.case_id in args.cases]
    if not cases:
        print(f"error: {args.data}: no case to score (asked for {args.cases})")
        return 2
    options = SynthesisOptions(device=args.device, slice_axis=card.slice_axis)
    results = {}
    for case in cases:
        volumes = load_case_volumes(case, card.sources, card.targets[0], card.normalization)
        results[case.case_id] = sweep(model, volumes, args.calibrations, options)
    print(render_table(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
