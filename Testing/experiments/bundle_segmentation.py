"""Make the bundled segmentation model: a train-seg run's weights with its Table 5 rows in the card.

``cones evaluate-segmentation`` measures the model on the validation cases; this writes a copy of
the run's ``last.pt`` whose card records the mean Dice with every sequence real and with the
``--missing`` sequence synthesized by one synthesis model, which ``cones synthesize --segment`` and
Slicer show beside a segmentation computed that way::

    python Testing/experiments/bundle_segmentation.py --run segrun/last.pt \\
        --table table5/segmentation.csv --missing t1ce \\
        --synthesis-condition cones:Models/cones-lite-t1ce --synthesis-model-name cones-lite-t1ce.pt \\
        --output Resources/Models/cones-seg-brats.pt --overwrite
"""

from __future__ import annotations

import argparse
import sys

from cones.segmentation.builtin import record_validation_scores
from cones.segmentation.evaluation import read_rows, validation_scores
from cones.sequences import parse_sequence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the train-seg model file (RUN/last.pt)")
    parser.add_argument("--table", required=True, help="the segmentation.csv of cones evaluate-segmentation")
    parser.add_argument("--missing", required=True, help="the sequence the table took away")
    parser.add_argument("--synthesis-condition", required=True, help="the table's condition of the synthesis row")
    parser.add_argument("--synthesis-model-name", required=True, help="the synthesis model's file name, as shown")
    parser.add_argument("--output", required=True, help="the model file to write")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    rows = read_rows(args.table)
    measured = (
        validation_scores(rows, "real"),
        validation_scores(rows, args.synthesis_condition, (parse_sequence(args.missing),), args.synthesis_model_name),
    )
    try:
        written = record_validation_scores(args.run, args.output, measured, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for row in measured:
        print(f"{', '.join(seq.display_name for seq in row.synthesized) or 'all real'}: {row.describe()}")
    print(f"written to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
