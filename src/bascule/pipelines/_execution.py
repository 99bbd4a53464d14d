"""One call of a step's function, and the mapping of its return value to outputs.

:func:`execute_step` is what a Ray worker runs: it returns plain values, so it travels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bascule.core.errors import InvalidInputError
from bascule.pipelines.results import StepError
from bascule.pipelines.steps import Step, StepContext

__all__ = ["Attempt", "collect_outputs", "execute_step"]


@dataclass
class Attempt:
    """One call of a step's function: its return value or its error, and what it reported."""

    value: Any
    error: StepError | None
    context: StepContext


def execute_step(step: Step, kwargs: dict[str, Any], ctx: StepContext) -> Attempt:
    """Call a step's function once, turning any exception into a :class:`StepError`."""
    try:
        value = step.fn(**kwargs, ctx=ctx) if step.wants_context else step.fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a step's failure, whatever it is, is recorded
        return Attempt(None, StepError.from_exception(exc), ctx)
    return Attempt(value, None, ctx)


def collect_outputs(s: Step, value: Any) -> tuple[dict[str, Any], StepError | None]:
    """Map a step's return value to its declared outputs, then run the output checks."""
    outs = s.outputs
    produced: dict[str, Any]
    if not outs:
        produced = {}
    elif len(outs) == 1:
        produced = {outs[0]: value}
    elif isinstance(value, Mapping) and set(value) == set(outs):
        produced = {name: value[name] for name in outs}
    elif isinstance(value, tuple | list) and len(value) == len(outs):
        produced = dict(zip(outs, value, strict=True))
    else:
        shown = (
            f"{type(value).__name__} of {len(value)}"
            if isinstance(value, tuple | list)
            else type(value).__name__
        )
        exc = InvalidInputError.for_field(
            f"return value of step {s.name!r}",
            shown,
            f"a tuple of {len(outs)} values {list(outs)} or a mapping with those keys",
        )
        return {}, StepError.from_exception(exc)
    for name, check in s.checks:
        try:
            check(produced[name])
        except Exception as exc:  # noqa: BLE001 - any check failure rejects the output
            return {}, replace(StepError.from_exception(exc), retryable=False)
    return produced, None
