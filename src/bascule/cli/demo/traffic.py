"""Replaying a day's card transactions through the inference server over HTTP (V2 REST).

Each request carries ``batch_rows`` transactions as one tensor per field: the customer id
(the feature store's entity key) and what the card terminal knows (amount, merchant,
hour…). The server looks the customer's aggregates up in the online store, so the
request never sends them. Each answer names the version that answered; the request id
(``x-request-id``) and the row index are what the fraud team's labels refer to later.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd

from bascule.core.errors import BasculeError, error_from_code
from bascule.demo.world import REQUEST_FIELDS

__all__ = ["ENTITY_KEY", "Replayer", "v2_inputs"]

ENTITY_KEY = "customer_id"
_TEXT = ("merchant_category", "channel")


def v2_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The V2 ``inputs`` of these transactions: one named tensor per field."""
    out = []
    for name in (ENTITY_KEY, *REQUEST_FIELDS):
        column = frame[name]
        data: list[Any]
        if name in _TEXT:
            out.append(
                {"name": name, "datatype": "BYTES", "shape": [len(frame)], "data": column.tolist()}
            )
        elif pd.api.types.is_integer_dtype(column.dtype):
            data = column.astype(np.int64).tolist()
            out.append({"name": name, "datatype": "INT64", "shape": [len(frame)], "data": data})
        else:
            data = column.astype(np.float64).tolist()
            out.append({"name": name, "datatype": "FP64", "shape": [len(frame)], "data": data})
    return out


class Replayer:
    """Sends transactions to ``POST /v2/models/{model}/infer`` and collects the answers.

    Args:
        client: An HTTP client whose base URL is the inference server.
        model: The served model's name.
        batch_rows: Transactions per request.
    """

    def __init__(self, client: httpx.Client, model: str, *, batch_rows: int = 50) -> None:
        self._client = client
        self._model = model
        self._batch = batch_rows
        self.requests = 0

    def send(self, frame: pd.DataFrame, *, prefix: str) -> pd.DataFrame:
        """Score ``frame`` (in order); one answer row per transaction.

        Request ids are ``{prefix}-{n}``, so the same seed gives the same ids (and the same
        canary split).

        Returns:
            transaction_id, request_id, row, version, decision (0/1), score.

        Raises:
            BasculeError: the server refused a request (its named error, re-raised).
        """
        parts = []
        for n, first in enumerate(range(0, len(frame), self._batch)):
            chunk = frame.iloc[first : first + self._batch]
            rid = f"{prefix}-{n:04d}"
            body = {"id": rid, "inputs": v2_inputs(chunk)}
            response = self._client.post(
                f"/v2/models/{self._model}/infer", json=body, headers={"x-request-id": rid}
            )
            self.requests += 1
            answer = response.json()
            if response.status_code != 200:
                raise _refused(response.status_code, answer)
            outputs = {o["name"]: o for o in answer["outputs"]}
            parts.append(
                pd.DataFrame(
                    {
                        "transaction_id": chunk["transaction_id"].to_numpy(),
                        "request_id": rid,
                        "row": np.arange(len(chunk)),
                        "version": int(answer["model_version"]),
                        "decision": np.asarray(outputs["label"]["data"], dtype=np.int64),
                        "score": _positive_scores(outputs, len(chunk)),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)


def _positive_scores(outputs: dict[str, Any], n: int) -> np.ndarray:
    proba = outputs.get("probabilities")
    if proba is None:
        return np.full(n, np.nan)
    values = np.asarray(proba["data"], dtype=np.float64).reshape(n, -1)
    return values[:, -1]


def _refused(status: int, answer: Any) -> BasculeError:
    if isinstance(answer, dict) and "code" in answer:
        return error_from_code(str(answer["code"]), str(answer.get("error", "")))
    return BasculeError(f"the inference server answered {status}: {answer}")
