"""The demo's live timeline: one row per replayed day, and what is happening right now.

On a terminal it is a ``rich`` live table redrawn as days end; elsewhere (a pipe, CI) each
day is printed as one line when it ends, so logs read the same story.
"""

from __future__ import annotations

import math
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bascule.cli.demo.story import DayRecord

__all__ = ["Timeline"]

_STYLE = {
    "alert": "bold red",
    "resolved": "green",
    "gate_passed": "bold green",
    "gate_failed": "yellow",
    "rollout": "cyan",
    "alias_set": "bold cyan",
    "alias_deleted": "yellow",
    "retrain_started": "magenta",
    "retrain_failed": "bold red",
}


def _money(value: float | None) -> str:
    return "…" if value is None or not math.isfinite(value) else f"{value:,.0f}"


class Timeline:
    """Shows the days as they are played; use as a context manager.

    Args:
        console: Where to draw.
        currency: Shown with the costs.
    """

    def __init__(self, console: Console, *, currency: str = "EUR") -> None:
        self._console = console
        self._currency = currency
        self._days: list[DayRecord] = []
        self._now = Text("starting", style="dim")
        self._live: Live | None = None

    def _table(self) -> Table:
        table = Table(title="the loop, day by day", expand=False, title_justify="left")
        for name, justify in (
            ("day", "right"),
            ("date", "left"),
            ("traffic", "right"),
            ("fraud", "right"),
            (f"cost/1k {self._currency}", "right"),
            ("drifted", "right"),
            ("serving", "left"),
            ("what happened", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for d in self._days:
            table.add_row(*self._cells(d), style="on grey11" if d.shift else None)
        return table

    def _cells(self, d: DayRecord) -> list[str | Text]:
        events = Text()
        for i, e in enumerate(d.events):
            if i:
                events.append("\n")
            events.append(e.text[:110], style=_STYLE.get(e.kind, ""))
        drifted = "" if d.drifted_features is None else f"{d.drifted_features:.0f}"
        return [
            str(d.day),
            f"{d.date:%a %d %b}" + (" 🎄" if d.shift else ""),
            f"{d.transactions:,}",
            f"{d.fraud_rate:.1%}",
            _money(d.cost_per_1000),
            drifted,
            d.serving,
            events,
        ]

    def __enter__(self) -> Timeline:
        if self._console.is_terminal:
            self._live = Live(
                Group(self._table(), self._now),
                console=self._console,
                refresh_per_second=4,
                transient=False,
            )
            self._live.__enter__()
        return self

    def step(self, text: str) -> None:
        """What is happening now."""
        self._now = Text(f"⏳ {text}", style="dim")
        if self._live is not None:
            self._live.update(Group(self._table(), self._now))

    def day(self, record: DayRecord) -> None:
        """A day ended (its figures may still change: labels arrive later)."""
        self._days.append(record)
        if self._live is not None:
            self._live.update(Group(self._table(), self._now))
            return
        d = self._cells(record)
        events = record.events
        labelled = [x for x in self._days if x.cost_per_1000 is not None]
        known = (
            f"  labels in: day {labelled[-1].day} cost/1k {_money(labelled[-1].cost_per_1000)}"
            if labelled
            else ""
        )
        line = (
            f"day {d[0]:>2} {d[1]:<12} traffic {d[2]:>6}  fraud {d[3]:>5}  "
            f"serving {record.serving:<24}{known}"
        )
        self._console.print(line, highlight=False)
        for e in events:
            self._console.print(f"        {e.text}", style=_STYLE.get(e.kind, ""), highlight=False)

    def refresh(self) -> None:
        """Redraw (late figures such as yesterday's cost arrived)."""
        if self._live is not None:
            self._live.update(Group(self._table(), Text("")))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(Group(self._table(), Text("")))
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
