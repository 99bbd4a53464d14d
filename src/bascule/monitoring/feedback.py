"""Feedback: the labels (and business outcomes) that arrive late, keyed by request id.

A record names the ``request_id`` the inference server returned (``x-request-id``), the
``label``, and optionally the ``row`` within a request that carried several rows (0
otherwise), the ``model``, a business ``outcome`` (an amount) and the ``timestamp`` of the
outcome. :func:`parse_feedback` checks one record's types; :func:`coerce_label` checks a
label against the model that answered (a class of a classifier, a number for a regressor).
A bad record is reported with its reason, never stored half-way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature

__all__ = [
    "FEEDBACK_COLUMNS",
    "Feedback",
    "FeedbackResult",
    "coerce_label",
    "decode_label",
    "encode_label",
    "parse_feedback",
    "read_feedback_file",
]

FEEDBACK_COLUMNS = ("request_id", "label", "row", "model", "outcome", "timestamp")
"""Columns a feedback file may have; ``request_id`` and ``label`` are required."""
MAX_ID_LENGTH = 128
SAMPLE_SIZE = 20
"""Unknown request ids and invalid-record reasons listed in a result (all are counted)."""

Label = str | int | float | bool


@dataclass(frozen=True)
class Feedback:
    """One checked feedback record."""

    request_id: str
    label: Label
    row: int = 0
    model: str | None = None
    outcome: float | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """What an ingest did: stored (new or updated), unknown request ids, invalid records.

    Unknown request ids (not in the prediction log within ``lookback``) are stored too, so
    they still join if the prediction shows up; they are counted and listed (a sample of
    ``SAMPLE_SIZE``) so a wrong id never goes unnoticed. Invalid records are not stored.
    ``labelled`` counts, per model, the new rows joined to one of its logged predictions
    (what the retraining policy's ``min_new_labels`` counts).
    """

    received: int
    accepted: int
    updated: int
    unknown: int
    unknown_request_ids: list[str] = field(default_factory=list)
    invalid: int = 0
    invalid_reasons: list[str] = field(default_factory=list)
    lookback: str = ""
    labelled: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "updated": self.updated,
            "unknown": {"count": self.unknown, "request_ids": list(self.unknown_request_ids)},
            "invalid": {"count": self.invalid, "reasons": list(self.invalid_reasons)},
            "lookback": self.lookback,
            "labelled": dict(self.labelled),
        }

    def __add__(self, other: FeedbackResult) -> FeedbackResult:
        return FeedbackResult(
            self.received + other.received,
            self.accepted + other.accepted,
            self.updated + other.updated,
            self.unknown + other.unknown,
            (self.unknown_request_ids + other.unknown_request_ids)[:SAMPLE_SIZE],
            self.invalid + other.invalid,
            (self.invalid_reasons + other.invalid_reasons)[:SAMPLE_SIZE],
            self.lookback or other.lookback,
            {
                m: self.labelled.get(m, 0) + other.labelled.get(m, 0)
                for m in sorted(self.labelled.keys() | other.labelled.keys())
            },
        )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pandas NA and NaT are not equal to themselves
    except (TypeError, ValueError):
        return False


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise TypeError(type(value).__name__)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_feedback(raw: Mapping[str, Any], index: int = 0) -> Feedback | str:
    """Check one record's fields and types.

    Args:
        raw: The record (``request_id``, ``label``, optional ``row``, ``model``,
            ``outcome``, ``timestamp``).
        index: Its position, for the reason.

    Returns:
        The record, or why it is invalid (naming the record, the field and what was expected).
    """
    rid = raw.get("request_id")

    def bad(name: str, value: Any, expected: str) -> str:
        shown = repr(value)[:80]
        return f"record {index} (request_id {rid!r}): '{name}' is {shown}, expected {expected}"

    unknown = sorted(set(raw) - set(FEEDBACK_COLUMNS))
    if unknown:
        return bad(unknown[0], raw[unknown[0]], f"only the fields {list(FEEDBACK_COLUMNS)}")
    if isinstance(rid, int | numbers.Integral) and type(rid) is not bool:
        rid = str(rid)
    if not isinstance(rid, str) or not rid.strip() or len(rid) > MAX_ID_LENGTH:
        return bad("request_id", rid, f"a non-empty string of at most {MAX_ID_LENGTH} characters")
    label: Any = raw.get("label")
    if hasattr(label, "item") and not isinstance(label, str):
        label = label.item()  # numpy scalars from Parquet
    if _missing(label) or not isinstance(label, str | int | float | bool):
        return bad("label", label, "a class (string or integer) or a number")
    if isinstance(label, float) and not math.isfinite(label):
        return bad("label", label, "a finite number")
    row = raw.get("row")
    row = 0 if _missing(row) else row
    if isinstance(row, float) and row.is_integer():
        row = int(row)
    if isinstance(row, bool) or not isinstance(row, numbers.Integral) or int(row) < 0:
        return bad("row", row, "an integer >= 0 (the row within the request)")
    model = raw.get("model")
    model = None if _missing(model) else model
    if model is not None and (not isinstance(model, str) or not model):
        return bad("model", model, "a model name")
    outcome = raw.get("outcome")
    outcome = None if _missing(outcome) else outcome
    if outcome is not None and (
        isinstance(outcome, bool)
        or not isinstance(outcome, numbers.Real)
        or not math.isfinite(float(outcome))
    ):
        return bad("outcome", outcome, "a finite number (e.g. the amount at stake)")
    stamp = raw.get("timestamp")
    when = None
    if not _missing(stamp):
        try:
            when = _time(stamp)
        except (TypeError, ValueError):
            return bad("timestamp", stamp, "an ISO 8601 time such as 2026-01-31T12:00:00Z")
    return Feedback(
        rid,
        label,
        int(row),
        model,
        None if outcome is None else float(outcome),
        when,
    )


def encode_label(label: Label) -> tuple[str, str]:
    """A label as stored: ``(text, kind)`` with kind ``int``, ``float``, ``str`` or ``bool``."""
    if isinstance(label, bool):
        return ("1" if label else "0"), "bool"
    if isinstance(label, int):
        return str(label), "int"
    if isinstance(label, float):
        return repr(label), "float"
    return label, "str"


def decode_label(text: str, kind: str) -> Label:
    """The value :func:`encode_label` stored."""
    if kind == "bool":
        return text == "1"
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def coerce_label(label: Label, signature: ModelSignature, model: str) -> Label:
    """The label in the model's own type.

    A classifier's label must be one of its classes: ``1``, ``1.0``, ``"1"`` and ``True`` all
    name class ``1`` of integer classes, and ``1`` names class ``"1"`` of string classes. A
    regressor's label must be a finite number (or a numeric string).

    Raises:
        InvalidInputError: The label cannot be one of the model's (field ``label``).
    """
    if signature.task == "regression":
        try:
            value = float(label)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(label, bool) or not math.isfinite(value):
            raise InvalidInputError.for_field(
                "label", label, f"a finite number (model '{model}' is a regressor)"
            )
        return value
    classes: list[Any] = list(signature.classes or [])
    candidate: Any = label
    if classes and isinstance(classes[0], int):
        try:
            number = float(label)
        except (TypeError, ValueError):
            number = math.nan
        candidate = int(number) if math.isfinite(number) and number.is_integer() else label
    elif classes:
        if isinstance(label, bool) or (isinstance(label, float) and label.is_integer()):
            candidate = str(int(label))
        else:
            candidate = str(label)
    if classes and candidate not in classes:
        raise InvalidInputError.for_field(
            "label", label, f"a class of model '{model}' (one of {classes})"
        )
    result: Label = candidate
    return result


def read_feedback_file(path: Path) -> list[dict[str, Any]]:
    """The records of a Parquet feedback file.

    Raises:
        InvalidInputError: The file is missing or not Parquet, or lacks ``request_id`` or
            ``label``, or has columns that are not feedback fields.
    """
    import pandas as pd

    if not path.is_file():
        raise InvalidInputError.for_field("file", str(path), "an existing Parquet file")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InvalidInputError.for_field("file", str(path), f"a Parquet file ({exc})") from None
    columns = [str(c) for c in frame.columns]
    missing = [c for c in ("request_id", "label") if c not in columns]
    if missing:
        raise InvalidInputError.for_field(
            "columns", columns, f"the columns request_id and label (missing {missing})"
        )
    extra = [c for c in columns if c not in FEEDBACK_COLUMNS]
    if extra:
        raise InvalidInputError.for_field(
            "columns", extra, f"only feedback columns {list(FEEDBACK_COLUMNS)}"
        )
    return frame.astype(object).to_dict(orient="records")  # type: ignore[return-value]  # str keys
