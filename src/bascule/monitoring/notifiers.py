"""Where alerts go: a JSON webhook, Prometheus Alertmanager, the log.

Each notifier's :meth:`~Notifier.send` delivers one :class:`AlertEvent` (an alert firing or
resolved) and returns a :class:`Delivery`; it never raises for a failed delivery. HTTP goes
through an injected ``httpx.Client`` (tests pass one on ``httpx.MockTransport``) and retries
connection errors, timeouts and HTTP 5xx, 408 and 429 with exponential backoff
(``backoff_s``, then twice as long at each retry) through an injected ``sleep``.

Webhook body (``bascule.alert/1``)::

    {"version": "bascule.alert/1", "status": "firing" | "resolved", "message": "...",
     "description": "...", "alert": {"id": 3, "model": "fraud", "rule": "drift", ...,
     "window_start": "2026-01-01T10:00:00+00:00", "fired_at": "...", "resolved_at": null}}

Alertmanager gets its own API's shape (``POST /api/v2/alerts``): a list with one alert of
``labels`` (``alertname`` = rule, ``model``, ``severity``, ``metric``, ``feature``,
``source=bascule``), ``annotations`` (``summary``, ``description``, ``value``,
``threshold``), ``startsAt`` and ``endsAt``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from bascule.core.monitoring_records import Alert
from bascule.core.monitoring_settings import (
    AlertmanagerNotifierSettings,
    LogNotifierSettings,
    WebhookNotifierSettings,
)

__all__ = [
    "AlertEvent",
    "AlertmanagerNotifier",
    "Delivery",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "build_notifiers",
]

log = logging.getLogger("bascule.alerts")

_RETRY_STATUS = frozenset({408, 429})
_MAX_BACKOFF_S = 300.0


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


@dataclass(frozen=True)
class AlertEvent:
    """An alert that fired or resolved, with the text and advice to send."""

    status: Literal["firing", "resolved"]
    alert: Alert
    message: str
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The webhook body (``bascule.alert/1``), times as ISO 8601 UTC."""
        alert = asdict(self.alert)
        for key in ("window_start", "window_end", "fired_at", "resolved_at"):
            alert[key] = _iso(alert[key])
        return {
            "version": "bascule.alert/1",
            "status": self.status,
            "message": self.message,
            "description": self.description,
            "alert": alert,
        }


@dataclass(frozen=True)
class Delivery:
    """How sending one event to one notifier went."""

    notifier: str
    ok: bool
    attempts: int
    error: str | None = None


class Notifier(Protocol):
    """A channel alerts are sent to."""

    name: str

    def send(self, event: AlertEvent) -> Delivery:
        """Deliver ``event``; failures are returned, never raised."""
        ...


class _HttpNotifier:
    """POST JSON with retries and exponential backoff."""

    name = "http"

    def __init__(
        self,
        client: httpx.Client,
        *,
        retries: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep

    def _post(self, url: str, body: Any, headers: Mapping[str, str] | None = None) -> Delivery:
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            attempts += 1
            try:
                response = self._client.post(
                    url, json=body, headers=dict(headers or {}), timeout=self.timeout_s
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return Delivery(self.name, True, attempts)
            error = f"HTTP {response.status_code} from {url}"
            if response.status_code < 500 and response.status_code not in _RETRY_STATUS:
                break
        log.warning("alert notification to %s failed after %d attempt(s): %s", url, attempts, error)
        return Delivery(self.name, False, attempts, error)


class WebhookNotifier(_HttpNotifier):
    """POST each event as ``bascule.alert/1`` JSON to a URL.

    Args:
        url: Where to POST.
        client: The HTTP client (inject one on ``httpx.MockTransport`` in tests).
        headers: Extra headers, e.g. ``Authorization``.
        retries: Retries after a failed attempt.
        backoff_s: Wait before the first retry; doubles at each further retry.
        timeout_s: Timeout of one request.
        sleep: How to wait between attempts (``time.sleep``).
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        headers: Mapping[str, str] | None = None,
        retries: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            client, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, sleep=sleep
        )
        self.url = url
        self.headers = dict(headers or {})

    def send(self, event: AlertEvent) -> Delivery:
        """POST the event's JSON."""
        return self._post(self.url, event.to_dict(), self.headers)


class AlertmanagerNotifier(_HttpNotifier):
    """Send events to Prometheus Alertmanager's ``POST /api/v2/alerts``.

    Args:
        url: Base URL of Alertmanager (``http://127.0.0.1:9093``).
        client: The HTTP client.
        firing_ttl_s: ``endsAt`` of a firing alert, this far after it fired.
        retries: Retries after a failed attempt.
        backoff_s: Wait before the first retry; doubles at each further retry.
        timeout_s: Timeout of one request.
        sleep: How to wait between attempts.
    """

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        firing_ttl_s: float = 7 * 86_400,
        retries: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            client, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, sleep=sleep
        )
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.firing_ttl_s = firing_ttl_s

    def payload(self, event: AlertEvent) -> list[dict[str, Any]]:
        """The Alertmanager API v2 body for ``event``."""
        a = event.alert
        labels = {
            "alertname": a.rule,
            "model": a.model,
            "severity": a.severity,
            "metric": a.metric,
            "source": "bascule",
        }
        if a.feature:
            labels["feature"] = a.feature
        starts = datetime.fromtimestamp(a.fired_at / 1000, tz=UTC)
        if event.status == "resolved" and a.resolved_at is not None:
            ends = datetime.fromtimestamp(a.resolved_at / 1000, tz=UTC)
        else:
            ends = starts + timedelta(seconds=self.firing_ttl_s)
        annotations = {
            "summary": event.message,
            "description": event.description or a.message,
            "value": "" if a.value is None else f"{a.value:.6g}",
            "threshold": f"{a.comparison} {a.threshold:g}",
        }
        return [
            {
                "labels": labels,
                "annotations": annotations,
                "startsAt": starts.isoformat(),
                "endsAt": ends.isoformat(),
            }
        ]

    def send(self, event: AlertEvent) -> Delivery:
        """POST the event to Alertmanager."""
        return self._post(self.url, self.payload(event))


class LogNotifier:
    """Write each event to the ``bascule.alerts`` logger (warning when firing, info resolved)."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def send(self, event: AlertEvent) -> Delivery:
        """Log the event's message."""
        level = logging.WARNING if event.status == "firing" else logging.INFO
        self._log.log(level, "alert %s: %s", event.status, event.message)
        return Delivery(self.name, True, 1)


def build_notifiers(
    settings: Sequence[
        WebhookNotifierSettings | AlertmanagerNotifierSettings | LogNotifierSettings
    ],
    client: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Notifier]:
    """The notifiers the settings describe, sharing one HTTP client."""
    out: list[Notifier] = []
    for s in settings:
        if isinstance(s, LogNotifierSettings):
            out.append(LogNotifier())
            continue
        http: dict[str, Any] = {
            "retries": s.retries, "backoff_s": s.backoff_s, "timeout_s": s.timeout_s,
            "sleep": sleep,
        }  # fmt: skip
        if isinstance(s, WebhookNotifierSettings):
            out.append(WebhookNotifier(s.url, client, headers=s.headers, **http))
        else:
            out.append(AlertmanagerNotifier(s.url, client, firing_ttl_s=s.firing_ttl_s, **http))
    return out
