"""Generated data for the demo, examples and benchmarks (nothing is downloaded)."""

from bascule.demo.transactions import CATEGORICAL, FEATURES, NUMERIC, generate_transactions

__all__ = ["CATEGORICAL", "FEATURES", "NUMERIC", "generate_transactions"]
