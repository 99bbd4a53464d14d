"""On-demand features: the one function that runs a view's Python code, offline and online.

Training sets and online lookups both build a pandas DataFrame with the source features by
name and the request fields, and call :func:`run_on_demand_frame`; so a feature is computed
the same way in both places.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bascule.core.errors import BasculeError, InvalidInputError
from bascule.features.catalog import OnDemandPart
from bascule.features.definitions import resolve_function

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["run_on_demand_frame"]

_PANDAS_KIND = {
    "bool": "b",
    "float32": "fiu",
    "float64": "fiu",
    "int32": "iu",
    "int64": "iu",
}


def run_on_demand_frame(part: OnDemandPart, inputs: pd.DataFrame) -> pd.DataFrame:
    """Call the view's function on ``inputs`` and check what it returns.

    Raises:
        ConfigError: the function cannot be imported.
        InvalidInputError: the function raised, or returned something other than a DataFrame
            with every declared feature and one row per input row.
    """
    import pandas as pd

    view = part.view
    fn = view.function if view.function is not None else resolve_function(view.function_name)
    try:
        result: Any = fn(inputs.reset_index(drop=True))
    except BasculeError:
        raise
    except Exception as exc:  # user code: any failure is reported as bad input
        raise InvalidInputError(
            f"on-demand feature view {view.name!r} ({view.function_name}) raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, pd.DataFrame):
        raise InvalidInputError(
            f"on-demand feature view {view.name!r} returned {type(result).__name__}; "
            "expected a pandas DataFrame"
        )
    missing = [f.name for f in part.features if f.name not in result.columns]
    if missing:
        raise InvalidInputError(
            f"on-demand feature view {view.name!r} did not return column(s) {missing}; "
            f"it returned {list(result.columns)}"
        )
    if len(result) != len(inputs):
        raise InvalidInputError(
            f"on-demand feature view {view.name!r} returned {len(result)} rows for "
            f"{len(inputs)} input rows"
        )
    for f in part.features:
        kinds = _PANDAS_KIND.get(f.dtype)
        col = result[f.name]
        if kinds is not None and col.dtype.kind not in kinds and not col.isna().all():
            raise InvalidInputError(
                f"on-demand feature view {view.name!r}: feature {f.name!r} is declared "
                f"{f.dtype} but the function returned {col.dtype}"
            )
    return result
