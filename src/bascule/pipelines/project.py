"""A model project (the ``project:`` section of ``bascule.yaml``): its data and training code.

* :func:`read_project_data` reads the data source with DuckDB: Parquet files named by a
  path or a glob, or a SQL query over them;
* :func:`load_entrypoint` imports the training function (``module:function``), afresh
  when its module lives in the project's ``python_path``, so edits are picked up;
* :func:`check_project` is what ``bascule validate`` runs: every mistake in the project,
  each as one line naming the setting.

Relative paths start from ``base_dir``: the folder of the settings file in effect
(:func:`bascule.core.settings.find_config_file`), else the current folder.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bascule.core.errors import BasculeError, ConfigError, InvalidInputError
from bascule.core.project_settings import DataSettings, ProjectSettings, TrainingSettings

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from bascule.core.settings import Settings

__all__ = [
    "TrainFunction",
    "check_project",
    "cost_columns",
    "describe_project_data",
    "load_entrypoint",
    "read_project_data",
    "training_params",
]

TrainFunction = Callable[["pd.DataFrame", dict[str, Any]], Any]
_TIME_TYPES = ("TIMESTAMP", "DATE", "VARCHAR")
_NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN",
)  # fmt: skip


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _relation_sql(data: DataSettings, base_dir: Path) -> str:
    if data.sql is not None:
        return data.sql
    pattern = str(data.source)
    full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
    files = sorted(glob.glob(full, recursive=True))
    if not files:
        raise InvalidInputError.for_field(
            "project.data.source", pattern, f"a Parquet file or glob matching files (in {base_dir})"
        )
    listing = ", ".join(_quote_literal(f) for f in files)
    return f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"


def _connect(base_dir: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET file_search_path = {_quote_literal(str(base_dir))}")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _where(data: DataSettings) -> str:
    return "project.data.sql" if data.sql is not None else "project.data.source"


def read_project_data(data: DataSettings, *, base_dir: Path) -> pd.DataFrame:
    """Every row of the project's data source, as DuckDB reads it.

    Args:
        data: The ``project.data`` settings.
        base_dir: The folder relative paths start from.

    Returns:
        The rows, all columns (string columns as pandas strings, timestamps in UTC).

    Raises:
        InvalidInputError: no file matches ``source``, or DuckDB cannot run the query
            (the message is DuckDB's).
    """
    import duckdb

    sql = _relation_sql(data, base_dir)
    con = _connect(base_dir)
    try:
        frame: pd.DataFrame = con.sql(sql).df()
    except duckdb.Error as exc:
        raise InvalidInputError(
            f"{_where(data)}: DuckDB cannot read the data: {exc}",
            field=_where(data),
            expected="readable Parquet files or a valid DuckDB query",
        ) from None
    finally:
        con.close()
    return frame


def describe_project_data(
    data: DataSettings, *, base_dir: Path
) -> tuple[dict[str, str], int, int | None]:
    """The columns (name → DuckDB type), the row count and the label's distinct values.

    Reads Parquet metadata and one pass over the label column only.

    Raises:
        InvalidInputError: as :func:`read_project_data`.
    """
    import duckdb

    sql = _relation_sql(data, base_dir)
    con = _connect(base_dir)
    try:
        columns = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE {sql}").fetchall()}
        label = _quote_name(data.label)
        if data.label in columns:
            query = f"SELECT count(*), count(DISTINCT {label}) FROM ({sql})"
            rows, distinct = con.execute(query).fetchone() or (0, 0)
        else:
            rows, distinct = (
                (con.execute(f"SELECT count(*) FROM ({sql})").fetchone() or (0,))[0],
                None,
            )
    except duckdb.Error as exc:
        raise InvalidInputError(
            f"{_where(data)}: DuckDB cannot read the data: {exc}",
            field=_where(data),
            expected="readable Parquet files or a valid DuckDB query",
        ) from None
    finally:
        con.close()
    return columns, int(rows), None if distinct is None else int(distinct)


def _provides(folder: Path, top: str) -> bool:
    return (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()


def _forget_project_modules(dirs: list[Path]) -> None:
    """Drop from ``sys.modules`` every module a project folder provides (the entrypoint's,
    its siblings', or the same names loaded from another project), so they import afresh.
    The standard library and installed packages are never dropped."""
    seen: dict[str, bool] = {}
    for name in list(sys.modules):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top == "bascule":
            continue
        if top not in seen:
            seen[top] = any(_provides(folder, top) for folder in dirs)
        if not seen[top]:
            continue
        origin = str(getattr(sys.modules.get(name), "__file__", None) or "")
        if "site-packages" in origin or "dist-packages" in origin:
            continue
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def load_entrypoint(training: TrainingSettings, *, base_dir: Path) -> TrainFunction:
    """Import the training function ``module:function`` and check it takes ``(df, params)``.

    The ``python_path`` folders go first on ``sys.path``; the modules found in them are
    imported afresh (so an edited ``train.py``, or a helper module it imports, is used at
    once, and two projects with a ``train.py`` each do not mix).

    Raises:
        ConfigError: the module cannot be imported (or raised while importing), the
            function is missing or not callable, or it cannot be called with two arguments.
    """
    ref = training.entrypoint
    module_name, _, qualname = ref.partition(":")
    dirs = [
        (p if p.is_absolute() else base_dir / p).resolve() for p in map(Path, training.python_path)
    ]
    for folder in reversed(dirs):
        text = str(folder)
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)
    _forget_project_modules(dirs)
    where = f"project.training.entrypoint {ref!r}"
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # user code may raise anything while importing; re-raised
        raise ConfigError(
            f"{where}: cannot import module {module_name!r} (searched {[str(d) for d in dirs]} "
            f"first): {type(exc).__name__}: {exc}",
            field="project.training.entrypoint",
        ) from exc
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(
            f"{where}: module {module_name!r} has no {qualname!r}",
            field="project.training.entrypoint",
        ) from None
    if not callable(obj):
        raise ConfigError(
            f"{where}: {qualname!r} is not callable", field="project.training.entrypoint"
        )
    try:
        inspect.signature(obj).bind(None, None)
    except TypeError:
        raise ConfigError(
            f"{where}: expected a function called as {qualname}(df, params), "
            f"got signature {qualname}{inspect.signature(obj)}",
            field="project.training.entrypoint",
        ) from None
    except ValueError:  # builtins without a signature: trust them
        pass
    fn: TrainFunction = obj
    return fn


def training_params(project: ProjectSettings) -> dict[str, Any]:
    """The ``params`` the training function receives: the configured ones plus ``label``,
    ``features`` and ``categorical`` from the data section."""
    data = project.data
    return {
        **project.training.params,
        "label": data.label,
        "features": list(data.features),
        "categorical": list(data.categorical),
    }


def cost_columns(settings: Settings, model: str) -> list[str]:
    """Data columns the model's cost matrix prices rows with (``fn_cost_column``...)."""
    entry = settings.monitoring.models.get(model)
    cost = None if entry is None else entry.cost
    if cost is None:
        return []
    named = (cost.fp_cost_column, cost.fn_cost_column, cost.tp_value_column)
    return [c for c in named if c is not None]


def check_project(settings: Settings, *, base_dir: Path | None = None) -> list[str]:
    """Every mistake in the ``project`` section, one line each naming the setting.

    Checks the cross-references (cost matrix, alert rules), the cron schedule, that the
    training entrypoint imports and takes ``(df, params)``, and that the data source is
    readable with the declared columns of the right kinds and a binary label.

    Args:
        settings: All settings (the project refers to ``monitoring.models.<model>``).
        base_dir: Where relative paths start; default: the current folder.

    Returns:
        The problems; empty when the project is fine or there is no project section.
    """
    project = settings.project
    if project is None:
        return []
    base = (base_dir or Path.cwd()).resolve()
    name = project.model
    problems: list[str] = []
    entry = settings.monitoring.models.get(name)
    uses_cost = "business_cost" in (project.gate.metric, *project.gate.guard_metrics)
    if uses_cost and (entry is None or entry.cost is None):
        problems.append(
            f"project.gate: the gate compares business_cost but monitoring.models.{name}.cost "
            "is not set; add the cost matrix there (fp_cost, fn_cost or fn_cost_column...)"
        )
    rules = [] if entry is None else [r.name for r in entry.alerts]
    unknown = [r for r in project.retraining.on_alerts if r not in rules]
    if unknown:
        problems.append(
            f"project.retraining.on_alerts: {unknown} are not alert rules of "
            f"monitoring.models.{name}.alerts (defined: {rules})"
        )
    if project.retraining.schedule is not None:
        from bascule.pipelines.cron import CronSchedule

        try:
            CronSchedule.parse(project.retraining.schedule)
        except InvalidInputError as exc:
            problems.append(f"project.retraining.schedule: {exc.message}")
    try:
        load_entrypoint(project.training, base_dir=base)
    except ConfigError as exc:
        problems.append(exc.message)
    problems.extend(_check_data(project.data, cost_columns(settings, name), base))
    return problems


def _check_data(data: DataSettings, priced_by: list[str], base: Path) -> list[str]:
    where = _where(data)
    try:
        columns, rows, distinct = describe_project_data(data, base_dir=base)
    except BasculeError as exc:
        return [exc.message]
    problems: list[str] = []
    present = sorted(columns)
    wanted = [("label", data.label), ("timestamp", data.timestamp)]
    wanted += [("features", f) for f in data.features]
    for what, column in wanted:
        if column not in columns:
            problems.append(
                f"project.data.{what}: column {column!r} is not in the data ({where} has {present})"
            )
    for column in priced_by:
        if column not in columns:
            problems.append(
                f"monitoring cost matrix: column {column!r} prices each row but is not in the "
                f"training data ({where} has {present})"
            )
    kind = columns.get(data.timestamp, "")
    if kind and not kind.startswith(_TIME_TYPES):
        problems.append(
            f"project.data.timestamp: column {data.timestamp!r} is {kind}, expected a timestamp"
        )
    for feature in data.features:
        kind = columns.get(feature, "")
        if kind and feature not in data.categorical and not kind.startswith(_NUMERIC_TYPES):
            problems.append(
                f"project.data.features: column {feature!r} is {kind}; list it in "
                "project.data.categorical or make it numeric"
            )
    if rows == 0:
        problems.append(f"{where}: the data has no rows")
    elif distinct is not None and distinct != 2:
        problems.append(
            f"project.data.label: column {data.label!r} has {distinct} distinct values; "
            "the retraining pipeline trains binary classifiers (2 classes)"
        )
    return problems
