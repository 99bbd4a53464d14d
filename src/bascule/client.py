"""``bascule.Client``: predict with a bascule inference server from a DataFrame.

Example::

    import bascule

    with bascule.Client("http://127.0.0.1:8080") as client:
        scores = client.infer("fraud", transactions)   # request_id, label, proba_0, proba_1

The client reads the model's metadata once (its feature columns and classes), sends one
tensor per feature column using the binary tensor data extension, and keeps the HTTP
connection alive between calls. A server error is raised as the matching
:class:`~bascule.core.errors.BasculeError` subclass (by its ``code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import orjson

from bascule.core.errors import BasculeError, InvalidInputError, StorageError, error_from_code
from bascule.core.outputs import serialize_bytes
from bascule.core.tensor_data import DATATYPES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client"]


class Client:
    """A synchronous client of the V2 REST API of ``bascule serve``.

    Args:
        url: Base URL of the server, e.g. ``http://127.0.0.1:8080``.
        timeout: Seconds to wait for an answer.
        transport: An httpx transport (tests pass ``httpx.MockTransport`` or a WSGI one).
    """

    def __init__(
        self, url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport)
        self._metadata: dict[tuple[str, str | None], dict[str, Any]] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StorageError(
                f"cannot reach the inference server at {self._http.base_url}: {exc}",
                url=str(self._http.base_url),
            ) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    @staticmethod
    def _path(model: str, version: str | None) -> str:
        return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")

    # -- API -------------------------------------------------------------------------------------

    def ready(self, model: str | None = None) -> bool:
        """Whether the server (or one of its models) is ready to answer."""
        path = "/v2/health/ready" if model is None else f"{self._path(model, None)}/ready"
        try:
            return self._http.get(path).status_code == 200
        except httpx.HTTPError:
            return False

    def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's V2 metadata (cached): inputs, outputs and bascule's parameters.

        Raises:
            ModelNotFoundError-like NotFoundError, NotReadyError, StorageError.
        """
        key = (model, version)
        if key not in self._metadata:
            data: dict[str, Any] = self._call("GET", self._path(model, version)).json()
            self._metadata[key] = data
        return self._metadata[key]

    def infer(
        self,
        model: str,
        data: pd.DataFrame | Mapping[str, Any],
        *,
        version: str | None = None,
        request_id: str | None = None,
    ) -> pd.DataFrame:
        """Predict every row of ``data``.

        Args:
            model: Served model name.
            data: A DataFrame (or a mapping of column name → values) holding at least the
                model's feature columns; other columns are ignored.
            version: Ask that version (by default the server's policy picks one).
            request_id: Sent as ``x-request-id`` (the server makes one otherwise).

        Returns:
            One row per input row: ``request_id``, then ``label`` and one ``proba_<class>``
            column per class (classifiers), or ``prediction`` (regressors).

        Raises:
            InvalidInputError: columns are missing, or the server rejects the values (400).
            NotFoundError: unknown model or version (404).
            NotReadyError, OverloadedError: the server cannot answer now (503).
            StorageError: the server is unreachable.
        """
        import pandas as pd

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
        meta = self.metadata(model, version)
        columns = (meta.get("parameters") or {}).get("columns") or []
        missing = [c["name"] for c in columns if c["name"] not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"data lacks columns {missing}; model {model!r} expects "
                f"{[c['name'] for c in columns]}",
                field="data",
                value=[str(c) for c in frame.columns],
                expected=str([c["name"] for c in columns]),
            )
        inputs, chunks = [], []
        for col in columns:
            raw = _column_bytes(frame[col["name"]], col["datatype"])
            inputs.append(
                {
                    "name": col["name"],
                    "datatype": col["datatype"],
                    "shape": [len(frame)],
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
            chunks.append(raw)
        header = orjson.dumps({"inputs": inputs})
        headers = {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)),
        }
        if request_id is not None:
            headers["x-request-id"] = request_id
        response = self._call(
            "POST",
            f"{self._path(model, version)}/infer",
            content=b"".join([header, *chunks]),
            headers=headers,
        )
        classes = (meta.get("parameters") or {}).get("classes")
        return _frame(response, len(frame), classes)


def _column_bytes(series: pd.Series, datatype: str) -> bytes:
    if datatype == "BYTES":
        values = series.astype(object).where(series.notna(), "nan").astype(str).to_numpy()
        return serialize_bytes(values)
    dtype = DATATYPES[datatype]
    try:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise InvalidInputError.for_field(
            f"column {series.name!r}", series.head(3).tolist(), f"numbers ({datatype})"
        ) from None
    whole = np.isfinite(values).all() and (values == np.round(values)).all()
    if dtype.kind in "iu" and not whole:
        raise InvalidInputError.for_field(
            f"column {series.name!r}", series.head(3).tolist(), f"whole numbers ({datatype})"
        )
    return np.ascontiguousarray(values.astype(dtype.newbyteorder("<"))).tobytes()


def _frame(response: httpx.Response, rows: int, classes: list[Any] | None) -> pd.DataFrame:
    import pandas as pd

    body = orjson.loads(response.content)
    out: dict[str, Any] = {
        "request_id": [response.headers.get("x-request-id", body.get("id"))] * rows
    }
    for output in body.get("outputs", []):
        values = np.asarray(output.get("data", []))
        shape = output.get("shape") or [len(values)]
        if output["name"] == "probabilities":
            matrix = values.reshape(shape)
            for j, cls in enumerate(classes or range(shape[-1])):
                out[f"proba_{cls}"] = matrix[:, j]
        else:
            out[output["name"]] = values.reshape(shape[0], -1)[:, 0] if len(shape) > 1 else values
    return pd.DataFrame(out)


def _error(response: httpx.Response) -> BasculeError:
    try:
        body = response.json()
        message, code = str(body["error"]), str(body.get("code") or "error")
    except (ValueError, KeyError, TypeError):
        return StorageError(
            f"the inference server answered {response.status_code}: {response.text[:200]}",
            status=response.status_code,
        )
    return error_from_code(code, message, status=response.status_code)
