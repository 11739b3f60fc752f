"""What operators see of a running SnoozeQL: Prometheus series and joinable log lines.

Every counter, gauge and histogram SnoozeQL keeps is defined here, once, on a
:class:`Telemetry` object that owns its own ``CollectorRegistry`` (the fleet gauges,
computed at scrape time, are in ``services/telemetry.py``). Each
:class:`~snoozeql.services.context.Context` (one per process, or per test) has one, so
two apps in one process never share or collide on series, and nothing is registered
on prometheus-client's global registry.

The series are counted in the process that does the work: HTTP series in the process
that serves the API, task and action series in the process that runs the task (today
``snoozeql serve`` with jobs; a worker process later, which exposes its own
registry). Prometheus sums processes; nothing here assumes one process per store.
Fleet gauges (instances, costs, sync ages) are not counted but read from the store at
scrape time (``services/telemetry.py``), so every process reports the same truth.

Log lines: :meth:`Telemetry.task` and :func:`log_action` write exactly one line per
task run and per action, with the ids that join them (``task_id``, ``action_id``,
``instance_id``, ``account_id``); with ``SNOOZEQL_LOG_JSON=true`` those ids are fields
of the JSON object (``snoozeql.logging.JsonFormatter``). A task's id is kept in a
context variable, so actions done on the task's behalf carry it; thread pools that do
such work submit through :func:`in_context`.

This module sits beside ``config.py`` and ``logging.py``: any layer may import it, and
it imports nothing of SnoozeQL's.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

if TYPE_CHECKING:  # imported when the first series is used (Telemetry._make_series)
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("snoozeql.events")

#: The ``extra`` key under which structured fields travel on a log record.
FIELDS = "snoozeql_fields"

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Request latencies: an API call is milliseconds; a bulk action or a sync started from
# the API can take seconds.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Task runs: a reconcile of nothing takes milliseconds, a sync of a large account minutes.
_TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                 600.0, 1800.0, 3600.0)
# One provider call for an action (stop, start): a fraction of a second to a minute.
_ACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

#: HTTP methods counted by name; anything else is counted as ``other`` (no label per
#: method a client invents).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The route label of a request no route matched (a 404 on an unknown path): never the
#: raw path, which would make a series per probe of a scanner.
UNMATCHED = "<unmatched>"


@dataclass
class TaskRun:
    """One run of a background task, as the log line and the series describe it."""

    task: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    retry: bool = False
    #: Filled in by the task's code, shown in its log line (counts, the account, ...).
    fields: dict[str, Any] = field(default_factory=dict)
    #: Provider calls made for this run that were still throttled after the provider's
    #: own retries: a failed run with some is retried later by the queue, with backoff.
    throttled: int = 0


_current_task: contextvars.ContextVar[TaskRun | None] = contextvars.ContextVar(
    "snoozeql_task", default=None
)


def current_task() -> TaskRun | None:
    """The task run this code works for, if any (also in pools that use in_context)."""
    return _current_task.get()


def task_fields() -> dict[str, str | None]:
    """``task`` and ``task_id`` of the current task run (None outside one), for the
    structured fields of a log line written on its behalf."""
    run = _current_task.get()
    return {"task": run.task if run else None, "task_id": run.id if run else None}


def in_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` bound to the caller's context variables (the current task), for
    ``ThreadPoolExecutor.submit`` / ``map``, whose threads would otherwise not see them."""
    ctx = contextvars.copy_context()

    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


_S = TypeVar("_S")


class _Series(Generic[_S]):
    """An attribute of :class:`Telemetry` made, with every other series, on first use.

    Once made, the value sits in the instance's ``__dict__``, which takes precedence over
    this (non-data) descriptor: later reads are plain attribute reads.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Series[_S]: ...

    @overload
    def __get__(self, obj: Telemetry, objtype: type | None = None) -> _S: ...

    def __get__(self, obj: Telemetry | None, objtype: type | None = None) -> Any:
        if obj is None:  # on the class (help(), autospec): the descriptor itself
            return self
        obj._make_series()
        return obj.__dict__[self.name]


class Telemetry:
    """The series of one SnoozeQL process (or app), on a registry of its own.

    The registry and its series are made on first use (prometheus-client imported
    then), all at once: a command that counts nothing, like ``snoozeql instances list``,
    does not pay for them; a scrape sees every series from the first.
    """

    registry: _Series[CollectorRegistry] = _Series()
    http_duration: _Series[Histogram] = _Series()
    tasks_started: _Series[Counter] = _Series()
    tasks_succeeded: _Series[Counter] = _Series()
    tasks_failed: _Series[Counter] = _Series()
    tasks_retried: _Series[Counter] = _Series()
    tasks_running: _Series[Gauge] = _Series()
    task_duration: _Series[Histogram] = _Series()
    provider_calls: _Series[Counter] = _Series()
    provider_throttled: _Series[Counter] = _Series()
    actions: _Series[Counter] = _Series()
    action_duration: _Series[Histogram] = _Series()

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], Any] = {}
        self._children_lock = threading.Lock()
        self._extra: set[str] = set()
        self._series_lock = threading.Lock()

    def _make_series(self) -> None:
        with self._series_lock:
            if "action_duration" not in self.__dict__:  # the last one made
                self._make_all()

    def _make_all(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        # One histogram per request, no separate counter: its _count is the number of
        # requests by route template, method and status, so a request costs one observe.
        self.http_duration = Histogram(
            "snoozeql_http_request_duration_seconds", "HTTP requests answered and the time "
            "to answer them, by route template, method and status",
            ["route", "method", "status"], buckets=_HTTP_BUCKETS, registry=r)
        self.tasks_started = Counter(
            "snoozeql_tasks_started", "Background task runs started", ["task"], registry=r)
        self.tasks_succeeded = Counter(
            "snoozeql_tasks_succeeded", "Background task runs that succeeded", ["task"],
            registry=r)
        self.tasks_failed = Counter(
            "snoozeql_tasks_failed", "Background task runs that failed", ["task"],
            registry=r)
        self.tasks_retried = Counter(
            "snoozeql_tasks_retried", "Background task runs that are retries of a failed "
            "run", ["task"], registry=r)
        self.tasks_running = Gauge(
            "snoozeql_tasks_in_progress", "Background task runs in progress in this process",
            ["task"], registry=r)
        self.task_duration = Histogram(
            "snoozeql_task_duration_seconds", "Duration of background task runs, by task "
            "and result", ["task", "result"], buckets=_TASK_BUCKETS, registry=r)
        self.provider_calls = Counter(
            "snoozeql_provider_calls", "Calls to a provider's API by provider, operation "
            "and final result (ok, error, throttled: still throttled after the retries)",
            ["provider", "operation", "result"], registry=r)
        self.provider_throttled = Counter(
            "snoozeql_provider_throttled", "Provider answers that were throttling (each "
            "attempt, also those a retry then got through)", ["provider", "operation"],
            registry=r)
        self.actions = Counter(
            "snoozeql_actions", "Actions on instances (start, stop, restart, create, "
            "delete) by action and result, as written to the action log",
            ["action", "result"], registry=r)
        self.action_duration = Histogram(
            "snoozeql_action_duration_seconds", "Duration of actions on instances from "
            "intent to outcome", ["action"], buckets=_ACTION_BUCKETS, registry=r)

    # ------------------------------------------------------------------ HTTP

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request: one dict lookup and one histogram observation (the
        labelled child is made once per route, method and status)."""
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            with self._children_lock:
                child = self.http_duration.labels(route, method, str(status))
                self._children[key] = child
        child.observe(seconds)

    # ------------------------------------------------------------------ tasks

    @contextmanager
    def task(self, name: str, *, retry: bool = False) -> Iterator[TaskRun]:
        """Count, time and log one run of a background task (one log line at its end).

        The run is the current task for the code inside (``current_task``), so action
        log lines written on its behalf carry its ``task_id``.
        """
        run = TaskRun(name, retry=retry)
        self.tasks_started.labels(name).inc()
        retried = self.tasks_retried.labels(name)  # every series of the task exists, at 0
        if retry:
            retried.inc()
        self.tasks_failed.labels(name)
        self.tasks_succeeded.labels(name)
        running = self.tasks_running.labels(name)
        running.inc()
        token = _current_task.set(run)
        began = time.perf_counter()
        error: BaseException | None = None
        try:
            yield run
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - began
            _current_task.reset(token)
            running.dec()
            result = "succeeded" if error is None else "failed"
            (self.tasks_succeeded if error is None else self.tasks_failed).labels(name).inc()
            self.task_duration.labels(name, result).observe(seconds)
            fields: dict[str, Any] = {
                "event": "task", "task": name, "task_id": run.id, "result": result,
                "retry": retry, "duration_s": round(seconds, 3), **run.fields,
            }
            if error is not None:
                fields["error"] = f"{type(error).__name__}: {error}"[:2000]
            log.log(logging.INFO if error is None else logging.ERROR,
                    "task %s %s in %.3f s (task id %s)", name, result, seconds, run.id,
                    exc_info=error if isinstance(error, Exception) else None,
                    extra={FIELDS: fields})

    # ------------------------------------------------------------------ providers

    def provider_call(self, provider: str, operation: str, result: str) -> None:
        self.provider_calls.labels(provider, operation, result).inc()
        if result == "throttled" and (run := _current_task.get()) is not None:
            run.throttled += 1

    def throttled(self, provider: str, operation: str) -> None:
        self.provider_throttled.labels(provider, operation).inc()

    # ------------------------------------------------------------------ export

    def add_collector_once(self, name: str, make: Callable[[], Any]) -> None:
        """Register a scrape-time collector (made by ``make``) once per registry."""
        with self._children_lock:
            if name in self._extra:
                return
            self.registry.register(make())
            self._extra.add(name)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format of every series, and its content type."""
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def log_action(telemetry: Telemetry | None, *, action_id: Any, action: str, result: str,
               instance_id: Any, instance_name: str | None, account_id: Any,
               provider: str | None, actor: str, reason: str | None,
               seconds: float | None = None, error: str | None = None,
               message: str | None = None, **more: Any) -> None:
    """Count one completed action and write its one log line.

    ``error`` must already be a message safe to show (the action log stores the same
    text): providers scrub credentials from their errors, and nothing else here comes
    from outside.
    """
    if telemetry is not None:
        telemetry.actions.labels(action, result).inc()
        if seconds is not None:
            telemetry.action_duration.labels(action).observe(seconds)
    task = _current_task.get()
    fields: dict[str, Any] = {
        "event": "action", "action_id": _text(action_id), "action": action, "result": result,
        "instance_id": _text(instance_id), "instance": instance_name,
        "account_id": _text(account_id), "provider": provider, "actor": actor,
        "reason": reason, "task": task.task if task else None,
        "task_id": task.id if task else None,
    }
    if seconds is not None:
        fields["duration_s"] = round(seconds, 3)
    if error:
        fields["error"] = error
    if message:
        fields["note"] = message  # e.g. "already stopped"
    fields.update(more)
    level = logging.WARNING if result in ("failed", "unknown") else logging.INFO
    log.log(level, "action %s of %s: %s%s (action id %s)", action, instance_name, result,
            f" ({error})" if error else "", _text(action_id), extra={FIELDS: fields})


def _text(value: Any) -> str:
    return "" if value is None else str(value)
