"""The monitoring report of a model over stored runs, as one self-contained HTML file.

Rendered from what the monitoring runs stored (nothing is recomputed): the alerts, the drift
table of the latest window with how often each column drifted, a reference-vs-current plot
per drifted column, data quality and performance (realised beside estimated) over time as
line charts, business cost over time, and the findings. Inline CSS and SVG only: no script
and nothing fetched, so the file opens offline.

When several runs covered the same window, the newest run's figures are shown.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bascule.core.errors import StorageError
from bascule.core.monitoring_records import Alert, MonitoringResult, MonitoringRun
from bascule.monitoring.html import histogram_svg
from bascule.monitoring.report import Histogram

__all__ = ["line_chart_svg", "render_dashboard", "write_dashboard"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}tr.alert td{background:#fdecea}.num{text-align:right}
.firing{color:#a61b1b;font-weight:600}.resolved{color:#1b5e20}
.plots{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}
figcaption{font-size:.85rem;font-weight:600}.muted{color:#777}
"""
_COLOURS = ("#5b8def", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948")
_PERFORMANCE = ("accuracy", "f1", "roc_auc", "mae", "rmse", "r2")
Series = dict[str, list[tuple[int, float]]]


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}"


def line_chart_svg(
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    width: int = 640,
    height: int = 240,
    dashed: Sequence[str] = (),
) -> str:
    """Lines of ``(time in ms, value)`` points, one per series, as an inline ``<svg>``."""
    points = [p for s in series.values() for p in s]
    if not points:
        return "<p class='muted'>No data.</p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top, bottom = 56, 150, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: int) -> float:
        return left + (plot_w * (t - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / (y1 - y0))

    base = height - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{_fmt(y1, 3)}</text>',
        f'<text x="{left - 4}" y="{base}" font-size="10" text-anchor="end">{_fmt(y0, 3)}</text>',
        f'<text x="{left}" y="{base + 14}" font-size="10">{_when(x0)}</text>',
        f'<text x="{left + plot_w}" y="{base + 14}" font-size="10" text-anchor="end">'
        f"{_when(x1)}</text>",
    ]
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        ordered = sorted(pts)
        dash = ' stroke-dasharray="5,3"' if name in dashed else ""
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in ordered)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for t, v in ordered:
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                f"<title>{html.escape(name)} {_when(t)}: {_fmt(v)}</title></circle>"
            )
        ly = top + 12 + 14 * i
        parts.append(
            f'<rect x="{width - right + 10}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{width - right + 24}" y="{ly}" font-size="10">'
            f"{html.escape(name[:22])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _latest(results: Sequence[MonitoringResult]) -> list[MonitoringResult]:
    """One result per (window, metric, feature, segment, version): the newest run's."""
    kept: dict[tuple[object, ...], MonitoringResult] = {}
    for r in sorted(results, key=lambda r: (r.run_id or 0, r.id or 0)):
        kept[(r.window_start, r.window_end, r.metric, r.feature, r.segment, r.model_version)] = r
    return sorted(kept.values(), key=lambda r: (r.window_end, r.id or 0))


def _series(
    results: Sequence[MonitoringResult], metrics: Sequence[str], by_feature: bool
) -> Series:
    out: Series = defaultdict(list)
    for r in results:
        if r.metric in metrics and r.value is not None and r.segment is None:
            name = f"{r.feature}" if by_feature else r.metric
            if r.model_version is not None and by_feature is False and r.metric != "rows":
                name = f"{r.metric} v{r.model_version}"
            out[name].append((r.window_end, r.value))
    return dict(out)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], marks: Sequence[bool] = ()) -> str:
    ths = "".join(f"<th>{h}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="alert"' if i < len(marks) and marks[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{ths}</tr>{''.join(body)}</table>"


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return "<p class='muted'>No alert in this range.</p>"
    rows = [
        (
            f"<span class='{a.state}'>{a.state}</span>",
            a.severity,
            html.escape(a.rule),
            html.escape(a.metric),
            html.escape(a.feature or ""),
            _fmt(a.value),
            f"{html.escape(a.comparison)} {_fmt(a.threshold)}",
            _when(a.fired_at),
            _when(a.resolved_at),
            html.escape(a.message),
        )
        for a in alerts
    ]
    head = ["state", "severity", "rule", "metric", "feature", "value", "threshold", "fired"]
    return _table([*head, "resolved", "message"], rows)


def _drift(latest: Sequence[MonitoringResult]) -> tuple[str, str]:
    drift = [r for r in latest if r.metric in ("feature_drift", "prediction_drift")]
    if not drift:
        return "<p class='muted'>No drift test in this range.</p>", ""
    last_end = max(r.window_end for r in drift)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in drift:
        tested = bool(r.details.get("tested", r.value is not None))
        counts[str(r.feature)][0] += int(r.status == "alert")
        counts[str(r.feature)][1] += int(tested)
    current = [r for r in drift if r.window_end == last_end]
    rows = [
        (
            "prediction" if r.metric == "prediction_drift" else "feature",
            html.escape(str(r.feature)),
            str(r.details.get("method") or "not tested"),
            _fmt(r.value),
            _fmt(r.threshold, 3),
            _fmt(r.details.get("p_value"), 3),
            "yes" if r.status == "alert" else "no",
            f"{counts[str(r.feature)][0]} / {counts[str(r.feature)][1]}",
            html.escape(str(r.details.get("note") or "")),
        )
        for r in current
    ]
    head = ["role", "column", "method", "effect size", "threshold", "p-value", "drifted"]
    table = f"<p>Latest window ends {_when(last_end)}.</p>" + _table(
        [*head, "drifted windows / tested", "note"], rows, [r.status == "alert" for r in current]
    )
    plots: dict[str, MonitoringResult] = {}
    for r in drift:
        if r.status == "alert" and isinstance(r.details.get("histogram"), Mapping):
            plots[str(r.feature)] = r  # the latest drifted window of each column
    figures = []
    for name, r in plots.items():
        h = r.details["histogram"]
        hist = Histogram(tuple(h["labels"]), tuple(h["reference"]), tuple(h["current"]))
        caption = f"{html.escape(name)} — {r.details.get('method')} {_fmt(r.value, 3)}"
        caption += f" (window ending {_when(r.window_end)})"
        figures.append(f"<figure><figcaption>{caption}</figcaption>{histogram_svg(hist)}</figure>")
    plot_html = f"<div class='plots'>{''.join(figures)}</div>" if figures else ""
    return table, plot_html


def _findings(latest: Sequence[MonitoringResult]) -> str:
    found = [r for r in latest if r.status == "finding"]
    if not found:
        return "<p class='muted'>No finding.</p>"
    groups: dict[tuple[str, str], list[MonitoringResult]] = defaultdict(list)
    for r in found:
        groups[(r.metric, r.feature or "")].append(r)
    rows = [
        (
            str(rs[-1].details.get("severity", "")),
            html.escape(code),
            html.escape(column),
            str(len(rs)),
            _when(rs[-1].window_end),
            html.escape(str(rs[-1].details.get("message", ""))),
        )
        for (code, column), rs in sorted(groups.items())
    ]
    return _table(["severity", "code", "column", "windows", "last", "latest message"], rows)


def render_dashboard(
    model: str,
    runs: Sequence[MonitoringRun],
    results: Sequence[MonitoringResult],
    alerts: Sequence[Alert],
    *,
    now: int,
) -> str:
    """The report as an HTML document (a string)."""
    latest = _latest(results)
    firing = sum(a.state == "firing" for a in alerts)
    start = min((r.window_start for r in runs), default=None)
    end = max((r.window_end for r in runs), default=None)
    table, plots = _drift(latest)
    perf = _series(latest, [*_PERFORMANCE, *(f"estimated_{m}" for m in _PERFORMANCE)], False)
    money = _series(latest, ["business_cost", "cost_per_1000"], False)
    missing = _series(latest, ["missing_rate"], True)
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>bascule monitoring — {html.escape(model)}</title><style>{_CSS}</style></head>",
        f"<body><h1>Monitoring report: {html.escape(model)}</h1>",
        f"<p>{len(runs)} run(s) from {_when(start)} to {_when(end)} · generated {_when(now)} "
        f"UTC · alerts firing: <b>{firing}</b></p>",
        "<h2>Alerts</h2>",
        _alerts(alerts),
        "<h2>Drift</h2>",
        table,
        "<h2>Drifted columns: reference vs current</h2>" if plots else "",
        plots,
        "<h2>Data quality over time</h2><figure><figcaption>rows per window</figcaption>",
        line_chart_svg(_series(latest, ["rows"], False)),
        "</figure><figure><figcaption>missing rate per feature</figcaption>",
        line_chart_svg(missing),
        "</figure><h2>Performance over time</h2>",
        "<p class='muted'>Solid: realised on labelled rows; dashed: estimated without labels "
        "(CBPE, assumes calibrated scores and no concept drift).</p>",
        line_chart_svg(perf, dashed=[k for k in perf if k.startswith("estimated_")]),
        "<h2>Business cost over time</h2>",
        line_chart_svg(money),
        "<h2>Findings</h2>",
        _findings(latest),
        "</body></html>",
    ]
    return "\n".join(out)


def write_dashboard(
    path: Path,
    model: str,
    runs: Sequence[MonitoringRun],
    results: Sequence[MonitoringResult],
    alerts: Sequence[Alert],
    *,
    now: int,
) -> Path:
    """Write :func:`render_dashboard` to ``path`` (UTF-8).

    Raises:
        StorageError: The file cannot be written.
    """
    try:
        path.write_text(render_dashboard(model, runs, results, alerts, now=now), encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write the monitoring report to {str(path)!r}: {exc}") from exc
    return path
