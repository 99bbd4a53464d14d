"""Business KPIs: what a model's decisions cost, and the threshold that costs least."""

from __future__ import annotations

from bascule.business.costs import BusinessCost, CostMatrix, business_cost
from bascule.business.thresholds import ThresholdOptimizer, check_optimizer

__all__ = [
    "BusinessCost",
    "CostMatrix",
    "ThresholdOptimizer",
    "business_cost",
    "check_optimizer",
]
