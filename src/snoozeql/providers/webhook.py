"""Webhook delivery: one JSON body POSTed to one URL, through httpx.

The outside-system half of :mod:`snoozeql.services.notify`, which decides what to send,
to which URLs (the allowed ones) and when. Nothing here follows a redirect (httpx's
default): an allowed host's 3xx pointing elsewhere is an undelivered webhook.

httpx is imported when a webhook is sent, not with this module: the server's jobs
import it through the notifier, and ``import httpx`` loads rich and pygments too when
they are installed (its command line; typer installs them), 4 MB of a server that
may never send a webhook.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HttpWebhookSender", "redact_url"]


class HttpWebhookSender:
    """A :class:`~snoozeql.providers.base.WebhookSender` over httpx (synchronous)."""

    def post(self, url: str, body: dict[str, Any], timeout: float) -> str | None:
        import httpx

        try:
            resp = httpx.post(url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}"


def redact_url(url: str) -> str:
    """Webhook URLs carry their secret in the path (Slack): show scheme and host only."""
    import httpx

    try:
        u = httpx.URL(url)
        return f"{u.scheme}://{u.host}{':' + str(u.port) if u.port else ''}/..."
    except (httpx.InvalidURL, ValueError):
        return "<invalid webhook URL>"
