"""Telemetry makes its registry and series on first use, all at once."""

from __future__ import annotations

import threading

from snoozeql.observability import Telemetry

SERIES = ("snoozeql_http_request_duration_seconds histogram",
          "snoozeql_tasks_started_total counter", "snoozeql_tasks_succeeded_total counter",
          "snoozeql_tasks_failed_total counter", "snoozeql_tasks_retried_total counter",
          "snoozeql_tasks_in_progress gauge", "snoozeql_task_duration_seconds histogram",
          "snoozeql_provider_calls_total counter", "snoozeql_provider_throttled_total counter",
          "snoozeql_actions_total counter", "snoozeql_action_duration_seconds histogram")


def test_nothing_is_made_until_used_then_a_scrape_sees_every_series() -> None:
    t = Telemetry()
    assert "registry" not in vars(t)  # a process that counts nothing pays for nothing
    text = t.exposition()[0].decode()
    for series in SERIES:
        assert f"# TYPE {series}\n" in text, series
    t.actions.labels("stop", "ok").inc()
    assert Telemetry.actions is vars(Telemetry)["actions"]  # on the class: no series
    assert 'snoozeql_actions_total{action="stop",result="ok"} 1.0' in \
        t.exposition()[0].decode()


def test_first_uses_racing_in_threads_make_one_registry() -> None:
    t = Telemetry()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def use(i: int) -> None:
        start.wait()
        try:
            if i % 2:
                t.provider_call("aws", "DescribeDBInstances", "ok")
            else:
                t.observe_request("/api/v1/instances", "GET", 200, 0.01)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    text = t.exposition()[0].decode()
    assert 'result="ok"} 4.0' in text
    assert 'snoozeql_http_request_duration_seconds_count{method="GET",' \
        'route="/api/v1/instances",status="200"} 4.0' in text
    assert t.registry is t.__dict__["registry"]
