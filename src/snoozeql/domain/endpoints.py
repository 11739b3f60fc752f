"""Which outside endpoints the server may call: the ``allowed_endpoints`` rule.

A custom endpoint (an account's ``endpoint_url`` or ``api_endpoint``, a webhook URL) is
a place the server sends signed or private requests to, so it must be named by the
operator in ``SNOOZEQL_ALLOWED_ENDPOINTS``: a list of host or host:port patterns.

Pattern forms (host names compared lower-case, without a trailing dot):

- ``db.internal.example`` or ``127.0.0.1``: that host, any port;
- ``localhost:4566``: that host on that port only (the URL's port, or 80/443 from its
  scheme when it has none);
- ``*.internal.example``: any host below that domain (not the domain itself);
- ``[::1]`` / ``[::1]:8080``: an IPv6 address, in brackets;
- ``*``: any host (only for an operator who really means it).

The list is empty by default, so nothing custom is called, loopback included. Pure: no
I/O, no DNS (the rule is about the names the operator wrote).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from snoozeql.domain.errors import ValidationError

__all__ = ["check_endpoint", "endpoint_allowed", "endpoint_host", "validate_patterns"]

SETTING = "SNOOZEQL_ALLOWED_ENDPOINTS"
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    """(host pattern, port or None) of one pattern; ValidationError when malformed."""
    p = pattern.strip().lower()
    if not p:
        raise ValidationError(f"{SETTING}: an empty pattern is not allowed")
    port: int | None = None
    if "/" in p or "@" in p:
        raise ValidationError(
            f"{SETTING}: {pattern!r} is not a host or host:port pattern (no scheme, user "
            "or path; e.g. 127.0.0.1, localhost:4566, *.internal.example)"
        )
    if p.startswith("["):
        host, sep, rest = p[1:].partition("]")
        if not sep or not _IPV6.match(host) or (rest and not rest.startswith(":")):
            raise ValidationError(f"{SETTING}: {pattern!r} is not a valid [IPv6]:port pattern")
        port_text = rest[1:] if rest else None
    else:
        host, _, port_text = p.partition(":") if p.count(":") == 1 else (p, "", "")
        if p.count(":") > 1:
            raise ValidationError(
                f"{SETTING}: write an IPv6 address in brackets, e.g. [::1] ({pattern!r})"
            )
        port_text = port_text or None
        if host != "*" and host.rstrip(".") in ("*", ""):
            host = ""  # "*." or "." is no pattern: refused below
        host = host.rstrip(".")
        labels = host[2:].split(".") if host.startswith("*.") else host.split(".")
        if not host or host != "*" and not all(_LABEL.match(label) for label in labels):
            raise ValidationError(
                f"{SETTING}: {pattern!r} is not a host or host:port pattern "
                "(e.g. 127.0.0.1, localhost:4566, *.internal.example)"
            )
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValidationError(f"{SETTING}: the port in {pattern!r} must be 1-65535")
        port = int(port_text)
    return host, port


def validate_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns as given, after checking each one parses."""
    out = [str(p) for p in patterns]
    for p in out:
        _split_pattern(p)
    return out


def endpoint_host(url: str) -> tuple[str, int]:
    """(host, port) a URL points at; the port from the scheme when not written."""
    try:
        u = urlsplit(url.strip())
        host, port = u.hostname, u.port
    except ValueError:
        raise ValidationError(f"{url!r} is not a valid URL") from None
    if u.scheme not in ("http", "https") or not host:
        raise ValidationError(f"{url!r} must be an http:// or https:// URL")
    return _norm_host(host), port or (443 if u.scheme == "https" else 80)


def _matches(pattern: str, host: str, port: int) -> bool:
    p_host, p_port = _split_pattern(pattern)
    if p_port is not None and p_port != port:
        return False
    if p_host == "*":
        return True
    if p_host.startswith("*."):
        return host.endswith(p_host[1:]) and len(host) > len(p_host) - 1
    return host == p_host


def endpoint_allowed(url: str, patterns: Iterable[str]) -> bool:
    """True when the URL's host (and port) matches one of the patterns."""
    host, port = endpoint_host(url)
    return any(_matches(p, host, port) for p in patterns)


def check_endpoint(url: str, patterns: Iterable[str], what: str) -> str:
    """The URL when allowed; else ValidationError saying how to allow it."""
    host, port = endpoint_host(url)
    if not any(_matches(p, host, port) for p in patterns):
        shown = f"[{host}]" if ":" in host else host
        raise ValidationError(
            f"{what} {shown}:{port} is not an allowed endpoint: custom endpoints are for "
            f"testing and private endpoints, and must be listed in {SETTING} (a JSON list "
            f'of host or host:port patterns, e.g. ["{shown}:{port}"]) by the operator'
        )
    return url
