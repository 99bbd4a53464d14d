"""The demo's HTML report: cost per day, drift, alerts, versions and decisions on one page.

Self-contained (inline CSS and SVG, no script, nothing fetched), so it opens anywhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bascule.monitoring.dashboard import line_chart_svg

if TYPE_CHECKING:
    from bascule.cli.demo.figures import Figures
    from bascule.cli.demo.story import Story
    from bascule.core.monitoring_records import Alert
    from bascule.core.records import ModelEvent

__all__ = ["write_report"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem}
.muted{color:#68737d} table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e7eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f6f8} .shift{background:#fff6e6} .num{text-align:right}
.figs{display:flex;gap:1rem;flex-wrap:wrap} .fig{border:1px solid #e3e7eb;border-radius:6px;
padding:.6rem 1rem;min-width:150px} .fig b{display:block;font-size:1.3rem}
"""


def _money(value: float | None, currency: str) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f} {currency}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], marks: Sequence[bool] = ()) -> str:
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        cls = " class='shift'" if i < len(marks) and marks[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _figures(f: Figures) -> str:
    def box(title: str, value: str) -> str:
        return f"<div class='fig'>{html.escape(title)}<b>{html.escape(value)}</b></div>"

    def days(d: int | None) -> str:
        return "—" if d is None else f"{d - f.shift_day} days (day {d})"

    recovered = "—" if f.recovered is None else f"{f.recovered:.0%}"
    return (
        "<div class='figs'>"
        + "".join(
            [
                box("drift onset → drift alert", days(f.drift_alert_day)),
                box("drift onset → cost alert", days(f.cost_alert_day)),
                box("drift onset → promotion", days(f.promotion_day)),
                box("cost / 1,000 before the shift", _money(f.before, f.currency)),
                box("during (served)", _money(f.during, f.currency)),
                box("after the new champion", _money(f.after, f.currency)),
                box("after, had we kept v1", _money(f.v1_after, f.currency)),
                box("extra cost recovered", recovered),
            ]
        )
        + "</div>"
    )


def write_report(
    path: Path,
    story: Story,
    daily: pd.DataFrame,
    figures: Figures,
    history: Sequence[ModelEvent],
    alerts: Sequence[Alert],
) -> Path:
    """Write the report to ``path`` (its folder is created) and return it."""
    ms = {d.day: int(d.date.timestamp() * 1000) for d in story.days}
    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in daily.to_dict(orient="records")
    ]

    def series(column: str) -> list[tuple[int, float]]:
        points = [(ms[int(r["day"])], float(r[column])) for r in rows]
        return [(t, v) for t, v in points if math.isfinite(v)]

    costs = {
        "served": series("served"),
        "had we kept v1": series("keep_v1"),
        "no model": series("no_model"),
    }
    drift = {
        "drifted features": [
            (ms[d.day], d.drifted_features) for d in story.days if d.drifted_features is not None
        ],
    }
    auc = {
        "domain classifier AUC": [
            (ms[d.day], d.domain_auc) for d in story.days if d.domain_auc is not None
        ],
    }
    cur = figures.currency
    day_rows = [
        [
            str(d.day),
            f"{d.date:%a %d %b}",
            f"{d.transactions:,}",
            f"{d.fraud_rate:.1%}",
            ", ".join(f"v{v}: {n:,}" for v, n in d.served_by.items()),
            html.escape(d.serving),
            _money(d.cost_per_1000, cur),
            "—" if d.drifted_features is None else f"{d.drifted_features:.0f}",
            "<br>".join(html.escape(e.text) for e in d.events),
        ]
        for d in story.days
    ]
    history_rows = [
        [
            f"{pd.Timestamp(e.at, unit='ms', tz='UTC'):%d %b %H:%M}",
            html.escape(e.kind),
            "" if e.version is None else f"v{e.version}",
            html.escape(e.alias or ""),
            html.escape(e.reason),
        ]
        for e in history
    ]
    alert_rows = [
        [
            html.escape(a.rule),
            html.escape(a.severity),
            html.escape(str(a.state)),
            html.escape(a.message),
        ]
        for a in alerts
    ]
    version_rows = [
        [
            f"v{v['version']}",
            f"{v['answered']:,}",
            _money(v["business_cost_per_1000"], cur),
            "—" if v["cpu_us_per_prediction"] is None else f"{v['cpu_us_per_prediction']:.0f} µs",
            "—"
            if v["compute_cost_per_1000"] is None
            else f"{v['compute_cost_per_1000']:.2g} {cur}",
        ]
        for v in figures.versions
    ]
    s = story.scenario
    body = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>bascule demo — seed {s.seed}</title><style>{_CSS}</style></head><body>",
        "<h1>bascule demo: the loop, day by day</h1>",
        f"<p class='muted'>seed {s.seed} · {s.per_day:,} card transactions a day · holiday "
        f"rush from day {s.shift_day} · fraud labels arrive {s.label_delay_days} day(s) "
        "later · every transaction went through the V2 server over HTTP</p>",
        _figures(figures),
        "<h2>Business cost per 1,000 transactions</h2>",
        "<p class='muted'>Served: what the answers clients got cost. Had we kept v1: v1 on "
        "the same inputs the server logged. No model: every fraud missed.</p>",
        line_chart_svg(costs, width=900, height=280, dashed=["had we kept v1", "no model"]),
        "<h2>Drift</h2>",
        line_chart_svg(drift, width=900, height=200),
        line_chart_svg(auc, width=900, height=200),
        "<h2>Day by day</h2>",
        _table(
            [
                "day",
                "date",
                "traffic",
                "fraud",
                "answered by",
                "serving at day end",
                "cost / 1,000",
                "drifted",
                "what happened",
            ],
            day_rows,
            [d.shift > 0 for d in story.days],
        ),
        "<h2>Cost per 1,000 predictions, per version</h2>",
        "<p class='muted'>Business: the decisions on the transactions the version answered "
        "for clients. Compute: serving CPU seconds measured by the server times the price per "
        "core-hour in the project settings.</p>",
        _table(["version", "answered", "business", "CPU per prediction", "compute"], version_rows),
        "<h2>Versions and decisions (the model's history)</h2>",
        _table(["when", "event", "version", "alias", "reason"], history_rows),
        "<h2>Alerts</h2>",
        _table(["rule", "severity", "state", "message"], alert_rows),
        "</body></html>",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(body), encoding="utf-8")
    return path
