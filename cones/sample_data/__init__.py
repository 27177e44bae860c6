"""Realistic synthetic BraTS-style glioma cases, generated offline from real brain anatomy.

Users, tests and the Slicer modules need multi-sequence brain MRI with a tumour to try CoNeS on, but
BraTS data cannot be redistributed and downloads are not always possible. This package builds such
cases from the MNI ICBM152 2009 template shipped inside nilearn (the optional ``sample`` extra):
every case is a differently deformed and posed brain with a glioma (necrotic core, enhancing rim,
oedema, mass effect), imaged through the T1, T1ce, T2 and FLAIR signal equations with partial volume,
coil bias and Rician noise, skull-stripped, and written in the BraTS 2018-2021 layout. Raw-looking
cases (:mod:`cones.sample_data.raw`) add the head around the brain (CSF, skull, scalp) and acquire each
sequence on a grid of its own after a known head motion, to test preparation of raw clinical scans.

Labels follow BraTS 2018-2021: 1 necrotic tumour core, 2 peritumoural oedema, 4 enhancing tumour.

Example:
    >>> small = SampleDataConfig(shape=(48, 48, 32), spacing_mm=5.0)
    >>> case = generate_case("demo", seed=0, config=small)               # doctest: +SKIP
    >>> sorted(int(v) for v in np.unique(case.label))                    # doctest: +SKIP
    [0, 1, 2, 4]
    >>> write_sample_dataset(Path("sample_data"), num_cases=3, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from cones.sample_data.case import BRATS_LABELS, SampleCase
from cones.sample_data.config import SampleDataConfig
from cones.sample_data.dataset import generate_case, sample_case_id, write_case, write_sample_dataset
from cones.sample_data.raw import (
    AcquisitionGrid,
    RawAcquisitionConfig,
    RawCase,
    make_raw_case,
    write_raw_case,
    write_raw_dataset,
)
from cones.sample_data.signal import Tissue

__all__ = [
    "BRATS_LABELS",
    "AcquisitionGrid",
    "RawAcquisitionConfig",
    "RawCase",
    "SampleCase",
    "SampleDataConfig",
    "Tissue",
    "generate_case",
    "make_raw_case",
    "sample_case_id",
    "write_case",
    "write_raw_case",
    "write_raw_dataset",
    "write_sample_dataset",
]
