"""Monitoring: drift, data quality, performance with and without labels.

Importing this package loads numpy and pandas only; scikit-learn (the domain classifier)
is imported when a multivariate test runs.
"""

from __future__ import annotations

from bascule.monitoring.detectors import DriftDetector
from bascule.monitoring.drift import DRIFT_METHODS
from bascule.monitoring.report import DriftReport, drift_report

__all__ = [
    "DRIFT_METHODS",
    "DriftDetector",
    "DriftReport",
    "drift_report",
]
