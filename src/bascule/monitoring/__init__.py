"""Monitoring: drift, data quality, and performance with and without labels.

``drift_report(reference, current)`` tests every feature with a small pure function
chosen by name (``DRIFT_METHODS``: ks, psi, wasserstein, jensenshannon, chisquare; or
``auto`` by column kind and size), each against an effect-size floor *and* a
Bonferroni-corrected significance level, runs a domain classifier for changes no single
feature shows, and states its dataset-level rule in the report: drift when at least one
feature drifts or the classifier's held-out AUC reaches 0.57 with significance.
``quality_report`` checks the data itself; ``performance_report`` gives realised metrics
per window and segment, the confidence-based estimate beside them, and flags suspected
concept drift; ``estimate_performance`` estimates without labels.

Importing this package loads numpy and pandas only; scikit-learn (the domain classifier)
is imported when a multivariate test runs. Business costs live in ``bascule.business``.
"""

from __future__ import annotations

from bascule.monitoring.detectors import DriftDetector
from bascule.monitoring.drift import DRIFT_METHODS
from bascule.monitoring.estimation import estimate_performance
from bascule.monitoring.performance import performance_report
from bascule.monitoring.quality import quality_report
from bascule.monitoring.report import DriftReport, drift_report

__all__ = [
    "DRIFT_METHODS",
    "DriftDetector",
    "DriftReport",
    "drift_report",
    "estimate_performance",
    "performance_report",
    "quality_report",
]
