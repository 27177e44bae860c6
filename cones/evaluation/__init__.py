"""Evaluation: score models and trivial baselines on held-out cases (``cones evaluate``)."""

from __future__ import annotations

from cones.evaluation.evaluate import EvaluationResult, evaluate, load_case_volumes
from cones.evaluation.methods import CaseVolumes, CopySource, MeanImputation, ModelMethod, ZeroImputation
from cones.evaluation.report import markdown_table, summarize

__all__ = [
    "CaseVolumes",
    "CopySource",
    "EvaluationResult",
    "MeanImputation",
    "ModelMethod",
    "ZeroImputation",
    "evaluate",
    "load_case_volumes",
    "markdown_table",
    "summarize",
]
