"""The training domain of a model and the input checks against it.

:mod:`cones.domain.record` holds what a model card records about its training data,
:mod:`cones.domain.measure` measures cases the same way for training and for checks, and
:mod:`cones.domain.checks` names an input that is not what it claims to be, or not what the model
was trained on, before any synthesis. None of them imports torch: the Slicer panel runs the checks
in Slicer's own process.
"""

from cones.domain.checks import (
    CheckResult,
    InputCheckReport,
    InputsRefused,
    Preparation,
    Severity,
    check_inputs,
)
from cones.domain.measure import (
    BrainSamples,
    SourceMeasurement,
    in_plane_spacing,
    measure_cases,
    measure_sources,
    summarize_domain,
)
from cones.domain.record import DOMAIN_PERCENTILES, TISSUE_CLASSES, SourceStatistics, TrainingDomain

__all__ = [
    "DOMAIN_PERCENTILES",
    "TISSUE_CLASSES",
    "BrainSamples",
    "CheckResult",
    "InputCheckReport",
    "InputsRefused",
    "Preparation",
    "Severity",
    "SourceMeasurement",
    "SourceStatistics",
    "TrainingDomain",
    "check_inputs",
    "in_plane_spacing",
    "measure_cases",
    "measure_sources",
    "summarize_domain",
]
