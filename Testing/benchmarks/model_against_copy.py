"""A synthesis model against the trivial guess of copying the first source, per case, inside the brain.

The figures of ``Resources/Models/README.md``: for every case of the given dataset folders, the
model synthesizes its target from the sources (whole volume, as ``cones synthesize`` does), and
:func:`cones.demo.score_against_copy` scores it and the copied first source against the real target
(PSNR, SSIM, MAE on the output scale, inside the sources' foreground). One JSON line per case.

Usage::

    cones sample-data --out fresh --cases 4 --seed 3000
    python Testing/benchmarks/model_against_copy.py Resources/Models/cones-lite-t1ce.pt \
        fresh ../shared/data/coregistered
"""

from __future__ import annotations

import argparse
import json
import sys

import SimpleITK as sitk

from cones.checkpoint import load_model
from cones.data import find_cases, read_image
from cones.demo import case_on_output_scale, score_against_copy
from cones.inference import SynthesisOptions, synthesize_images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model file")
    parser.add_argument("data", nargs="+", help="dataset folders (case folders with sources and target)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = load_model(args.model)
    (target,) = model.card.targets
    for folder in args.data:
        for case in find_cases(folder):
            images = {sequence: read_image(path) for sequence, path in case.sequences.items()}
            sources = {sequence: images[sequence] for sequence in model.card.sources}
            synthesized = synthesize_images(model, sources, options=SynthesisOptions(device=args.device))[target]
            arrays = {sequence: sitk.GetArrayFromImage(image) for sequence, image in images.items()}
            mask, scaled = case_on_output_scale(arrays, model.card)
            scores = score_against_copy(sitk.GetArrayFromImage(synthesized), scaled, mask, model.card)
            rounded = {name: {metric: round(value, 3) for metric, value in row.items()} for name, row in scores.items()}
            print(json.dumps({"case": case.case_id, **rounded}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
