"""Render a :class:`~bascule.monitoring.report.DriftReport` as one self-contained HTML file.

Inline CSS and hand-made SVG only: no script, no font, no stylesheet fetched from
anywhere, so the file opens offline and can be attached to a ticket. Charts are drawn
here, from the figures the report already holds; nothing is recomputed.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from bascule.core.errors import StorageError

if TYPE_CHECKING:
    from bascule.monitoring.report import DriftReport, FeatureDrift, Histogram

__all__ = ["histogram_svg", "render_html", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}tr.drift td{background:#fdecea}
.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.6rem 1rem;border-radius:.3rem;display:inline-block;font-weight:600}
.yes{background:#fdecea;color:#a61b1b}.no{background:#e8f5e9;color:#1b5e20}
.error{color:#a61b1b}.warning{color:#8a5a00}.info{color:#555}.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figcaption{font-size:.85rem;font-weight:600}
"""

_REF, _CUR = "#5b8def", "#f28e2b"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.2e}"
    return f"{value:.{digits}g}"


def histogram_svg(hist: Histogram, *, width: int = 460, height: int = 220) -> str:
    """Grouped bars of reference and current shares per bin, as an inline ``<svg>``."""
    n = max(len(hist.labels), 1)
    top = max([*hist.reference, *hist.current, 1e-9])
    left, bottom, plot_h = 40, 60, height - 80
    slot = (width - left - 10) / n
    bar = max(slot * 0.38, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#999"/>',
        f'<text x="{left - 4}" y="{height - bottom - plot_h + 4}" font-size="10" '
        f'text-anchor="end">{top:.0%}</text>',
        f'<text x="{left - 4}" y="{height - bottom}" font-size="10" text-anchor="end">0%</text>',
    ]
    for i, label in enumerate(hist.labels):
        x0 = left + i * slot + slot * 0.1
        for j, (share, colour) in enumerate(((hist.reference[i], _REF), (hist.current[i], _CUR))):
            h = plot_h * share / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(label)}: '
                f"{'reference' if j == 0 else 'current'} {share:.1%}</title></rect>"
            )
        tx, ty = x0 + bar, height - bottom + 10
        parts.append(
            f'<text x="{tx:.1f}" y="{ty}" font-size="9" text-anchor="end" '
            f'transform="rotate(-40 {tx:.1f} {ty})">{html.escape(label[:18])}</text>'
        )
    parts += [
        f'<rect x="{width - 150}" y="4" width="10" height="10" fill="{_REF}"/>',
        f'<text x="{width - 136}" y="13" font-size="10">reference</text>',
        f'<rect x="{width - 80}" y="4" width="10" height="10" fill="{_CUR}"/>',
        f'<text x="{width - 66}" y="13" font-size="10">current</text>',
        "</svg>",
    ]
    return "".join(parts)


def _row(role: str, f: FeatureDrift) -> str:
    cls = ' class="drift"' if f.drifted else ""
    cells = [
        html.escape(role),
        html.escape(f.column),
        f.kind,
        f.method or "not tested",
        _fmt(f.statistic),
        _fmt(f.p_value, 3),
        _fmt(f.effect_size),
        _fmt(f.threshold, 3),
        "yes" if f.drifted else "no",
        str(f.n_current),
        html.escape(f.note),
    ]
    tds = "".join(
        f'<td class="num">{c}</td>' if 4 <= i <= 7 or i == 9 else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f"<tr{cls}>{tds}</tr>"


def render_html(report: DriftReport) -> str:
    """The whole report as an HTML document (a string)."""
    verdict = "Dataset drift detected" if report.dataset_drift else "No dataset drift"
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>bascule drift report</title><style>",
        _CSS,
        "</style></head><body><h1>Drift report</h1>",
        f'<p><span class="verdict {"yes" if report.dataset_drift else "no"}">{verdict}</span></p>',
        f"<p>Reference rows: {report.n_reference:,} · current rows: {report.n_current:,} · "
        f"family-wise alpha: {report.alpha:g}</p>",
        f"<p><b>Rule.</b> {html.escape(report.rule)}.</p>",
    ]
    if report.reasons:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons)
        out.append(f"<p><b>Why.</b></p><ul>{items}</ul>")
    if report.predictions:
        state = "drifted" if report.prediction_drift else "did not drift"
        out.append(f"<p><b>Predictions</b> {state}.</p>")
    mv = report.multivariate
    if mv is not None:
        out.append(
            f"<h2>Multivariate (domain classifier)</h2><p>Held-out AUC {_fmt(mv.auc, 3)} "
            f"(floor {mv.threshold:.2f}, p-value {_fmt(mv.p_value, 3)}, alpha {mv.alpha:g}) "
            f"on {mv.n_reference:,} + {mv.n_current:,} rows, {len(mv.columns)} columns: "
            f"<b>{'drift' if mv.drifted else 'no drift'}</b>. {html.escape(mv.note)}</p>"
        )
    if report.findings:
        out.append("<h2>Findings</h2><table><tr><th>severity</th><th>code</th><th>column</th>")
        out.append("<th>message</th></tr>")
        for fd in report.findings:
            out.append(
                f'<tr><td class="{fd.severity}">{fd.severity}</td><td>{fd.code}</td>'
                f"<td>{html.escape(fd.column or '')}</td><td>{html.escape(fd.message)}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Per column</h2><table><tr>")
    heads = ["role", "column", "kind", "method", "statistic", "p-value", "effect size"]
    heads += ["threshold", "drifted", "current n", "note"]
    out.append("".join(f"<th>{h}</th>" for h in heads) + "</tr>")
    out += [_row("feature", f) for f in report.features]
    out += [_row("prediction", p) for p in report.predictions]
    out.append("</table>")
    shown = [f for f in (*report.features, *report.predictions) if f.drifted and f.histogram]
    if shown:
        out.append("<h2>Drifted columns: reference vs current</h2><div class='plots'>")
        for f in shown:
            if f.histogram is not None:
                caption = f"{html.escape(f.column)} — {f.method} {_fmt(f.effect_size, 3)}"
                out.append(f"<figure><figcaption>{caption}</figcaption>")
                out.append(histogram_svg(f.histogram) + "</figure>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(report: DriftReport, path: Path) -> Path:
    """Write :func:`render_html` of ``report`` to ``path`` (UTF-8).

    Raises:
        StorageError: The file cannot be written.
    """
    try:
        path.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write the drift report to {str(path)!r}: {exc}") from exc
    return path
