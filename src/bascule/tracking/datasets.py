"""Fingerprints of data sets: a content digest, the schema and the row count."""

from __future__ import annotations

import hashlib
from typing import Any

from bascule.core.errors import InvalidInputError
from bascule.core.records import DatasetInput

__all__ = ["fingerprint"]


def fingerprint(
    data: Any, *, name: str, source: str = "", context: str = "training"
) -> DatasetInput:
    """Describe a DataFrame or 2-D array by a sha256 of its content, its schema and its size.

    The digest covers column names, dtypes and every value (pandas' stable row hashing),
    so the same data gives the same fingerprint in any process.

    Raises:
        InvalidInputError: ``data`` is neither a DataFrame nor a 2-D array.
    """
    import numpy as np
    import pandas as pd

    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidInputError.for_field(
                "dataset", f"array of shape {data.shape}", "a 2-D array"
            )
        data = pd.DataFrame(data, columns=[f"f{i}" for i in range(data.shape[1])])
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError.for_field(
            "dataset", type(data).__name__, "a pandas DataFrame or a 2-D numpy array"
        )
    h = hashlib.sha256()
    schema = {str(c): str(t) for c, t in data.dtypes.items()}
    h.update(repr(sorted(schema.items())).encode())
    h.update(repr([str(c) for c in data.columns]).encode())
    if len(data):
        row_hashes = pd.util.hash_pandas_object(data, index=False).to_numpy()
        h.update(row_hashes.tobytes())
    return DatasetInput(
        name=name,
        digest=h.hexdigest(),
        num_rows=len(data),
        schema=schema,
        source=source,
        context=context,
    )
