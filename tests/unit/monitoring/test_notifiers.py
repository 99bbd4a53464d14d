"""Notifiers through httpx.MockTransport: retries with backoff, give-up, payload shapes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest

from bascule.core.monitoring_records import Alert
from bascule.core.monitoring_settings import MonitoringSettings
from bascule.monitoring.notifiers import (
    AlertEvent,
    AlertmanagerNotifier,
    LogNotifier,
    WebhookNotifier,
    build_notifiers,
)

T0 = 1_772_359_200_000  # 2026-03-01 10:00 UTC


def event(status: str = "firing", feature: str | None = "amount") -> AlertEvent:
    alert = Alert(
        7, "fraud", "drift", "feature_drift", feature, "critical", status, ">", 0.1, 0.4, T0,
        T0 + 3_600_000, T0 + 3_700_000, "fraud: amount drifted",
        resolved_at=T0 + 7_300_000 if status == "resolved" else None,
    )  # fmt: skip
    return AlertEvent(status, alert, f"message {status}", "retrain the model")  # type: ignore[arg-type]


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def replies(*statuses: int | Exception) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    seen: list[httpx.Request] = []
    queue = list(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return httpx.Response(item)

    return handler, seen


def test_webhook_posts_the_alert_as_json_with_headers() -> None:
    handler, seen = replies(200)
    notifier = WebhookNotifier(
        "http://hooks.test/alerts", client(handler), headers={"Authorization": "Bearer t"}
    )

    delivery = notifier.send(event())
    body = json.loads(seen[0].content)

    assert (True, 1, None) == (delivery.ok, delivery.attempts, delivery.error)
    assert "POST" == seen[0].method
    assert "Bearer t" == seen[0].headers["authorization"]
    assert "bascule.alert/1" == body["version"]
    assert "firing" == body["status"]
    assert "message firing" == body["message"]
    assert "retrain the model" == body["description"]
    assert {"id": 7, "model": "fraud", "rule": "drift", "feature": "amount"}.items() <= body[
        "alert"
    ].items()
    assert "2026-03-01T10:00:00+00:00" == body["alert"]["window_start"]
    assert body["alert"]["resolved_at"] is None


def test_webhook_retries_5xx_and_connection_errors_with_exponential_backoff() -> None:
    handler, seen = replies(503, httpx.ConnectError("refused"), 500, 200)
    slept: list[float] = []
    notifier = WebhookNotifier(
        "http://hooks.test", client(handler), retries=3, backoff_s=0.5, sleep=slept.append
    )

    delivery = notifier.send(event())

    assert (True, 4) == (delivery.ok, delivery.attempts)
    assert [0.5, 1.0, 2.0] == slept
    assert 4 == len(seen)


def test_webhook_gives_up_after_the_retries_and_reports_the_last_error() -> None:
    handler, _ = replies(503, 503, 503)
    slept: list[float] = []
    notifier = WebhookNotifier("http://hooks.test", client(handler), retries=2, sleep=slept.append)

    delivery = notifier.send(event())

    assert (False, 3) == (delivery.ok, delivery.attempts)
    assert "HTTP 503 from http://hooks.test" == delivery.error
    assert [1.0, 2.0] == slept


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (404, 1), (429, 3), (408, 3)])
def test_client_errors_are_not_retried_except_timeouts_and_rate_limits(
    status: int, attempts: int
) -> None:
    handler, seen = replies(*([status] * 3))
    notifier = WebhookNotifier(
        "http://hooks.test", client(handler), retries=2, sleep=lambda s: None
    )

    delivery = notifier.send(event())

    assert not delivery.ok
    assert attempts == len(seen) == delivery.attempts


def test_alertmanager_payload_follows_api_v2_for_firing_and_resolved() -> None:
    handler, seen = replies(200, 200)
    notifier = AlertmanagerNotifier("http://am.test:9093/", client(handler), firing_ttl_s=3600)

    notifier.send(event("firing"))
    notifier.send(event("resolved", feature=None))
    firing, resolved = (json.loads(r.content) for r in seen)

    assert "/api/v2/alerts" == seen[0].url.path
    assert 1 == len(firing)
    assert {
        "alertname": "drift",
        "model": "fraud",
        "severity": "critical",
        "metric": "feature_drift",
        "feature": "amount",
        "source": "bascule",
    } == firing[0]["labels"]
    assert {"summary", "description", "value", "threshold"} == set(firing[0]["annotations"])
    assert "message firing" == firing[0]["annotations"]["summary"]
    assert "> 0.1" == firing[0]["annotations"]["threshold"]
    assert "2026-03-01T11:01:40+00:00" == firing[0]["startsAt"]
    assert "2026-03-01T12:01:40+00:00" == firing[0]["endsAt"]
    assert "feature" not in resolved[0]["labels"]
    assert "2026-03-01T12:01:40+00:00" == resolved[0]["endsAt"]


def test_log_notifier_writes_a_warning_when_firing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bascule.alerts"):
        LogNotifier().send(event("firing"))
        LogNotifier().send(event("resolved"))

    assert [
        ("WARNING", "alert firing: message firing"),
        ("INFO", "alert resolved: message resolved"),
    ] == [(r.levelname, r.getMessage()) for r in caplog.records]


def test_notifiers_are_built_from_settings() -> None:
    settings = MonitoringSettings(
        notifiers=[
            {"kind": "webhook", "url": "http://hooks.test", "retries": 1},
            {"kind": "alertmanager", "url": "http://am.test"},
            {"kind": "log"},
        ]
    )

    built = build_notifiers(settings.notifiers, client(lambda r: httpx.Response(200)))

    assert ["webhook", "alertmanager", "log"] == [n.name for n in built]
    assert 1 == built[0].retries  # type: ignore[attr-defined]
