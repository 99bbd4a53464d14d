"""Steps and pipelines: Python functions with declared inputs and outputs, wired as a DAG.

A step's inputs are its function's parameter names. Each is resolved, when the pipeline
runs, from the output of the (one) upstream step that declares it, else from the
pipeline's run-time parameters, else from the parameter's default value. A parameter
named ``ctx`` is not an input: it receives the :class:`StepContext`, through which the
step reports metrics, params, tags and the data sets it read.

Example::

    @step(outputs="data")
    def load(n_rows: int) -> pd.DataFrame: ...

    @step(outputs=("model", "train_rows"), retries=2, backoff_s=0.5)
    def train(data: pd.DataFrame, ctx: StepContext) -> tuple[Model, int]:
        ctx.log_metrics({"rows": len(data)})
        ...

    pipeline = Pipeline("fraud", [load, train], params=["n_rows"])
"""

from __future__ import annotations

import inspect
import keyword
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from bascule.core.errors import InvalidInputError
from bascule.core.records import DatasetInput

__all__ = ["CONTEXT_PARAM", "Pipeline", "Step", "StepContext", "step"]

CONTEXT_PARAM = "ctx"
"""The parameter name that receives the :class:`StepContext` instead of an input."""

_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")

OutputCheck = Callable[[Any], None]


@dataclass
class StepContext:
    """What a running step may report; the runner records it on the step's tracked run.

    The context is a plain object (it travels to Ray workers and back): what the step
    logs is collected here and written by the runner once the step has returned.
    """

    step_name: str
    pipeline_run_id: str
    step_run_id: str
    attempt: int = 1
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[DatasetInput] = field(default_factory=list)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Record metric values (e.g. ``{"auc": 0.91}``) for this step.

        Args:
            metrics: Metric names and real values.
            step: The training step or epoch the values belong to.

        Raises:
            InvalidInputError: a value is not a real number.
        """
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise InvalidInputError.for_field(
                        f"metric {key!r}", value, "a real number"
                    ) from None
            self.metrics.append((str(key), float(value), int(step)))

    def log_params(self, params: Mapping[str, object]) -> None:
        """Record parameters (stored as text) for this step."""
        self.params.update({str(k): str(v) for k, v in params.items()})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Record tags for this step."""
        self.tags.update({str(k): str(v) for k, v in tags.items()})

    def log_dataset(
        self, data: Any, *, name: str, source: str = "", context: str = "training"
    ) -> DatasetInput:
        """Fingerprint a data set the step used; it is logged on the step and the pipeline run.

        This is the first link of the lineage data fingerprint → run → model version.

        Args:
            data: A DataFrame or a 2-D array.
            name: The data set's name.
            source: Where it came from (a path, a table, a query).
            context: ``training``, ``validation``, ``evaluation``...

        Returns:
            The fingerprint.

        Raises:
            InvalidInputError: ``data`` is neither a DataFrame nor a 2-D array.
        """
        from bascule.tracking.datasets import fingerprint

        found = fingerprint(data, name=name, source=source, context=context)
        self.datasets.append(found)
        return found


@dataclass(frozen=True)
class Step:
    """One unit of a pipeline: a function, the inputs it reads and the outputs it returns.

    Build steps with the :func:`step` decorator. ``retries`` and ``backoff_s`` of ``None``
    take the runner's defaults (settings ``pipelines.max_retries`` and
    ``pipelines.backoff_s``).
    """

    name: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional: frozenset[str] = frozenset()
    retries: int | None = None
    backoff_s: float | None = None
    cache: bool = True
    version: str = ""
    checks: tuple[tuple[str, OutputCheck], ...] = ()
    wants_context: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (handy in unit tests of a step)."""
        return self.fn(*args, **kwargs)


@overload
def step(name: Callable[..., Any], /) -> Step: ...


@overload
def step(
    name: str | None = None,
    /,
    *,
    outputs: str | Sequence[str] = (),
    retries: int | None = None,
    backoff_s: float | None = None,
    cache: bool = True,
    version: str = "",
    checks: Mapping[str, OutputCheck] | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    name: str | Callable[..., Any] | None = None,
    /,
    *,
    outputs: str | Sequence[str] = (),
    retries: int | None = None,
    backoff_s: float | None = None,
    cache: bool = True,
    version: str = "",
    checks: Mapping[str, OutputCheck] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Turn a function into a :class:`Step` (use as ``@step`` or ``@step(...)``).

    The function returns the value of its single output, a tuple with one value per
    output (in order), or a mapping from output names to values; with no outputs its
    return value is ignored.

    Args:
        name: The step's name; default: the function's name.
        outputs: The names of the values the step returns.
        retries: How many times a failed attempt is retried (``None``: the runner's default).
            Errors of bad input (``InvalidInputError`` and its subclasses) are never retried.
        backoff_s: The wait before the first retry; it doubles at each further retry.
        cache: Whether results may be reused from the step cache. Turn it off for steps
            that read the outside world (a file, a table) without taking it as an input.
        version: A free text that is part of the cache key: change it to invalidate
            cached results when code the step calls (not its own body) has changed.
        checks: Output name → a function that raises ``InvalidInputError`` when the value
            is unacceptable (for example :func:`bascule.pipelines.require_fitted`).

    Returns:
        The step, or a decorator that makes one.

    Raises:
        InvalidInputError: a bad name, output name, retry count or function signature.
    """
    if callable(name):
        return _make_step(name, None, (), None, None, True, "", None)

    def decorate(fn: Callable[..., Any]) -> Step:
        return _make_step(fn, name, outputs, retries, backoff_s, cache, version, checks)

    return decorate


def _make_step(
    fn: Callable[..., Any],
    name: str | None,
    outputs: str | Sequence[str],
    retries: int | None,
    backoff_s: float | None,
    cache: bool,
    version: str,
    checks: Mapping[str, OutputCheck] | None,
) -> Step:
    if not isinstance(fn, types.FunctionType):
        raise InvalidInputError.for_field(
            "step function", type(fn).__name__, "a plain Python function (def or lambda)"
        )
    step_name: object = name if name is not None else fn.__name__
    if not isinstance(step_name, str) or not _STEP_NAME.match(step_name):
        raise InvalidInputError.for_field(
            "step name", step_name, "letters, digits, '_', '.', '-' (at most 100, not first '.')"
        )
    outs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    for out in outs:
        _check_identifier(out, f"output of step {step_name!r}")
    if len(set(outs)) != len(outs):
        raise InvalidInputError.for_field(
            f"outputs of step {step_name!r}", list(outs), "distinct names"
        )
    if retries is not None and (isinstance(retries, bool) or not 0 <= retries <= 100):
        raise InvalidInputError.for_field(f"retries of step {step_name!r}", retries, "0..100")
    if backoff_s is not None and not 0 <= backoff_s <= 3600:
        raise InvalidInputError.for_field(
            f"backoff_s of step {step_name!r}", backoff_s, "0..3600 seconds"
        )
    unknown_checks = sorted(set(checks or {}) - set(outs))
    if unknown_checks:
        raise InvalidInputError.for_field(
            f"checks of step {step_name!r}", unknown_checks, f"names among the outputs {outs}"
        )
    inputs: list[str] = []
    optional: set[str] = set()
    wants_context = False
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise InvalidInputError.for_field(
                f"parameter {param.name!r} of step {step_name!r}",
                str(param),
                "named parameters only (no *args, **kwargs or positional-only)",
            )
        if param.name == CONTEXT_PARAM:
            wants_context = True
            continue
        inputs.append(param.name)
        if param.default is not param.empty:
            optional.add(param.name)
    return Step(
        name=step_name,
        fn=fn,
        inputs=tuple(inputs),
        outputs=outs,
        optional=frozenset(optional),
        retries=retries,
        backoff_s=backoff_s,
        cache=bool(cache),
        version=str(version),
        checks=tuple((k, v) for k, v in (checks or {}).items()),
        wants_context=wants_context,
    )


def _check_identifier(value: object, what: str) -> str:
    if (
        not isinstance(value, str)
        or not value.isidentifier()
        or keyword.iskeyword(value)
        or value == CONTEXT_PARAM
    ):
        raise InvalidInputError.for_field(
            what, value, f"a Python identifier other than {CONTEXT_PARAM!r}"
        )
    return value


class Pipeline:
    """A named DAG of steps, checked when it is built and kept in a topological order.

    Steps run in the order given as far as their dependencies allow.
    """

    def __init__(self, name: str, steps: Sequence[Step], *, params: Iterable[str] = ()) -> None:
        """Check the DAG.

        Args:
            name: The pipeline's name (it names its tracked runs).
            steps: The steps, each a :class:`Step`.
            params: The names of the run-time parameters steps may read.

        Raises:
            InvalidInputError: naming every problem: duplicate step names, inputs that no
                step produces and no parameter or default supplies, outputs produced by
                two steps (or shadowing a parameter), and cycles.
        """
        if not _STEP_NAME.match(str(name)):
            raise InvalidInputError.for_field(
                "pipeline name", name, "letters, digits, '_', '.', '-' (at most 100)"
            )
        if not steps or not all(isinstance(s, Step) for s in steps):
            raise InvalidInputError.for_field(
                f"steps of pipeline {name!r}", steps, "a non-empty list of @step functions"
            )
        self.name = name
        self.params: tuple[str, ...] = tuple(
            _check_identifier(p, f"parameter of pipeline {name!r}") for p in params
        )
        problems: list[str] = []
        details: dict[str, Any] = {}

        names = [s.name for s in steps]
        dup_steps = sorted({n for n in names if names.count(n) > 1})
        if dup_steps:
            problems.append(f"duplicate step names {dup_steps}")
            details["duplicate_steps"] = dup_steps

        producers: dict[str, list[str]] = {}
        for s in steps:
            for out in s.outputs:
                producers.setdefault(out, []).append(s.name)
        dup_outputs = {out: who for out, who in producers.items() if len(who) > 1}
        for out, who in sorted(dup_outputs.items()):
            problems.append(f"output {out!r} is produced by steps {who}")
        if dup_outputs:
            details["duplicate_outputs"] = dup_outputs
        shadowed = sorted(set(producers) & set(self.params))
        if shadowed:
            problems.append(f"outputs {shadowed} have the names of pipeline parameters")
            details["shadowed_params"] = shadowed

        unknown: dict[str, list[str]] = {}
        for s in steps:
            missing = [
                i
                for i in s.inputs
                if i not in producers and i not in self.params and i not in s.optional
            ]
            if missing:
                unknown[s.name] = missing
                known = sorted(set(producers) | set(self.params))
                problems.append(
                    f"step {s.name!r} reads unknown inputs {missing} "
                    f"(outputs and parameters: {known})"
                )
        if unknown:
            details["unknown_inputs"] = unknown

        if not problems:
            ordered, cycle = _toposort(steps, {o: w[0] for o, w in producers.items()})
            if cycle:
                problems.append("cycle " + " → ".join(cycle))
                details["cycle"] = cycle
        if problems:
            raise InvalidInputError(
                f"pipeline {name!r} is not a valid DAG: " + "; ".join(problems),
                field="pipeline",
                value=name,
                expected="steps whose inputs come from earlier outputs or parameters, no cycles",
                **details,
            )
        self.steps: tuple[Step, ...] = tuple(ordered)
        self.producers: dict[str, str] = {o: w[0] for o, w in producers.items()}

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[s.name for s in self.steps]})"

    def step(self, name: str) -> Step:
        """The step with that name.

        Raises:
            InvalidInputError: no such step (the message lists the steps).
        """
        for s in self.steps:
            if s.name == name:
                return s
        raise InvalidInputError.for_field(
            f"step of pipeline {self.name!r}", name, f"one of {[s.name for s in self.steps]}"
        )

    def upstream(self, name: str) -> tuple[str, ...]:
        """The names of the steps whose outputs step ``name`` reads directly.

        Raises:
            InvalidInputError: no such step.
        """
        s = self.step(name)
        return tuple(dict.fromkeys(self.producers[i] for i in s.inputs if i in self.producers))


def _toposort(steps: Sequence[Step], producer: Mapping[str, str]) -> tuple[list[Step], list[str]]:
    """Kahn's algorithm, picking the earliest listed ready step; returns (order, a cycle)."""
    deps = {s.name: {producer[i] for i in s.inputs if i in producer} for s in steps}
    done: set[str] = set()
    ordered: list[Step] = []
    remaining = list(steps)
    while remaining:
        ready = next((s for s in remaining if deps[s.name] <= done), None)
        if ready is None:
            return ordered, _find_cycle({s.name: deps[s.name] - done for s in remaining})
        ordered.append(ready)
        done.add(ready.name)
        remaining.remove(ready)
    return ordered, []


def _find_cycle(deps: Mapping[str, set[str]]) -> list[str]:
    # Every remaining node has an unfinished dependency, so walking dependencies must
    # revisit a node: the walk from that node back to itself is a cycle.
    node = next(iter(deps))
    path: list[str] = []
    seen: dict[str, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(deps[node])
    cycle = [*path[seen[node] :], node]
    cycle.reverse()  # show data flow: producer → consumer
    return cycle
