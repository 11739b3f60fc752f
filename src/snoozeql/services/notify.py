"""Webhook notifications: the warning sent before a scheduled stop.

Two body shapes, because teams point these at two kinds of receiver:

- a generic JSON body (``webhook_urls``) with every field a program needs: the event
  name, the instance, the schedule, when it stops, and how to keep it awake (the CLI
  command and the API call);
- a Slack-compatible body (``slack_webhook_urls``), ``{"text": ...}``, which Slack
  incoming webhooks, Mattermost and Teams' Slack-compatible connectors all accept.

A webhook URL is called only when its host matches ``allowed_endpoints``
(``SNOOZEQL_ALLOWED_ENDPOINTS``), the rule custom cloud endpoints follow; the others are
reported in the log once and never contacted.

Sending (:mod:`snoozeql.providers.webhook`, the outside-system half) is synchronous
with a short timeout; the reconciler decides what to do with a failure (it retries on
its next run, and a warning is only sent once per transition).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Instance
from snoozeql.providers.base import WebhookSender
from snoozeql.providers.webhook import HttpWebhookSender, redact_url

log = logging.getLogger(__name__)

__all__ = ["Notifier", "StopWarning"]


@dataclass(frozen=True)
class StopWarning:
    instance: Instance
    schedule_name: str
    stop_at: datetime  # aware; read in the schedule's zone
    now: datetime

    @property
    def minutes(self) -> int:
        return max(0, round((self.stop_at - self.now).total_seconds() / 60))

    @property
    def keep_awake_cli(self) -> str:
        return f"snoozeql instances keep-awake {self.instance.name} --until <HH:MM>"

    def generic_body(self) -> dict[str, Any]:
        i = self.instance
        return {
            "event": "snoozeql.stop_warning",
            "instance": {
                "id": str(i.id), "name": i.name, "provider": i.provider.value,
                "provider_id": i.provider_id, "region": i.region, "engine": i.engine,
            },
            "schedule": self.schedule_name,
            "stop_at": self.stop_at.isoformat(),
            "minutes_left": self.minutes,
            "keep_awake": {
                "cli": self.keep_awake_cli,
                "api": {"method": "POST", "path": f"/api/v1/instances/{i.id}/override",
                        "body": {"state": "running", "until": "<HH:MM or ISO time>"}},
            },
        }

    def text(self) -> str:
        return (
            f":zzz: {self.instance.name} will be stopped by schedule '{self.schedule_name}' "
            f"at {self.stop_at:%Y-%m-%d %H:%M %z} (in {self.minutes} min). "
            f"To keep it awake: `{self.keep_awake_cli}`"
        )

    def slack_body(self) -> dict[str, Any]:
        return {"text": self.text()}


class Notifier:
    def __init__(self, settings: Settings, sender: WebhookSender | None = None) -> None:
        self.sender = sender or HttpWebhookSender()
        self.generic = list(settings.webhook_urls)
        self.slack = list(settings.slack_webhook_urls)
        self.timeout = settings.webhook_timeout_seconds
        self._allowed_patterns = list(settings.allowed_endpoints)
        self.refused: dict[str, str] = {}
        for url in [*self.generic, *self.slack]:
            reason = self._refusal(url)
            if reason is not None:
                self.refused[url] = reason
                log.error("webhook never called: %s", reason)

    def _refusal(self, url: str) -> str | None:
        try:
            check_endpoint(url, self._allowed_patterns, "webhook")
        except ValidationError as exc:
            shown = redact_url(url)
            return f"{shown}: {exc.message.replace(repr(url), shown).replace(url, shown)}"
        return None

    @property
    def enabled(self) -> bool:
        return any(u not in self.refused for u in [*self.generic, *self.slack])

    def targets(self, warning: StopWarning) -> list[tuple[str, str, dict[str, Any]]]:
        """(claim kind, url, body) per allowed webhook: each is claimed and sent on its
        own, so a receiver that was down is retried without the others getting a second
        copy."""
        out = [(f"warn-g{n}", u, warning.generic_body()) for n, u in enumerate(self.generic)
               if u not in self.refused]
        out += [(f"warn-s{n}", u, warning.slack_body()) for n, u in enumerate(self.slack)
                if u not in self.refused]
        return out

    def post(self, url: str, body: dict[str, Any]) -> str | None:
        """POST one body; the error (with the URL's secret path hidden) or None.

        A URL outside ``allowed_endpoints`` is never contacted."""
        shown = redact_url(url)
        refused = self._refusal(url)
        if refused is not None:
            return refused
        failed = self.sender.post(url, body, self.timeout)
        if failed is None:
            return None
        error = f"{shown}: {failed}"
        log.warning("webhook not delivered: %s", error)
        return error

