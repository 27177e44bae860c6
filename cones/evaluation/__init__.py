"""Evaluation: score models and the baselines on held-out cases under two protocols (``cones evaluate``)."""

from __future__ import annotations

from cones.evaluation.cases import case_volumes, load_case_volumes
from cones.evaluation.evaluate import EvaluationResult, evaluate
from cones.evaluation.fitted import FittedBaselines, fit_baselines
from cones.evaluation.intensity import BrainIntensity, brain_intensity
from cones.evaluation.linear import (
    LearnedLinear,
    LinearCeiling,
    LinearMap,
    NormalEquations,
    fit_linear_map,
    leave_one_out_maps,
)
from cones.evaluation.methods import CaseVolumes, CopySource, MeanImputation, ModelMethod, ZeroImputation
from cones.evaluation.protocols import IntensityProtocol, on_protocol
from cones.evaluation.report import markdown_table, summarize

__all__ = [
    "BrainIntensity",
    "CaseVolumes",
    "CopySource",
    "EvaluationResult",
    "FittedBaselines",
    "IntensityProtocol",
    "LearnedLinear",
    "LinearCeiling",
    "LinearMap",
    "MeanImputation",
    "ModelMethod",
    "NormalEquations",
    "ZeroImputation",
    "brain_intensity",
    "case_volumes",
    "evaluate",
    "fit_baselines",
    "fit_linear_map",
    "leave_one_out_maps",
    "load_case_volumes",
    "markdown_table",
    "on_protocol",
    "summarize",
]
