"""Test doubles for AWS behaviours moto cannot show: throttling, refusals, the Price List.

Both are named stubs, built from AWS's public API reference, and both are real HTTP
servers on 127.0.0.1 that boto3 talks to through ``endpoint_url``.

Fixtures:

``aws_proxy`` (function)
    An :class:`AwsRecordingProxy` in front of ``moto_server``: it forwards every request
    unchanged and records it (action, region from the SigV4 scope, form parameters).
    ``.throttle(n, action=..., region=...)`` makes it answer the next ``n`` matching
    requests itself
    with the Query protocol's ``Throttling`` error (HTTP 400, ``<ErrorResponse>``), which
    is what RDS sends when an account exceeds its API rate. ``.rewrite(action, fn)``
    passes moto's answers through ``fn``. ``.refuse(action, code, message, **params)``
    answers matching requests itself with that error (HTTP 400), for refusals AWS makes
    and moto does not (StopDBInstance on an Aurora cluster's member). ``.url`` is its
    endpoint.

``aws_pricing_stub`` (function)
    A :class:`PriceListStub` serving ``AWSPriceListService.GetProducts`` (JSON 1.1
    protocol, SigV4-signed requests) over ``.products`` (Price List product documents;
    ``rds_product(...)`` builds one). TERM_MATCH filters, ``MaxResults``/``NextToken``
    paging and ``PriceList`` entries as JSON strings follow the API reference.
    ``.fail_next(n, code, status)`` answers the next ``n`` requests with that error.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily: pytest loads moto_server as a plugin after this one
    from tests.support.moto_server import MotoServer

_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass
class ProxiedRequest:
    """One request the proxy saw."""

    action: str | None
    region: str | None
    service: str | None
    access_key: str | None
    params: dict[str, str]
    throttled: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _start(handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, threading.Thread, str]:
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"


class AwsRecordingProxy:
    """Forwards to moto, records requests, and can throttle the next few of them."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._throttle_left = 0
        self._throttle_action: str | None = None
        self._throttle_region: str | None = None
        self._rewrites: dict[str, Callable[[bytes], bytes]] = {}
        self._refusals: list[tuple[str, dict[str, str], str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy._serve(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server, self._thread, self.url = _start(Handler)

    def throttle(self, count: int, action: str | None = None, region: str | None = None) -> None:
        """Answer the next ``count`` requests with Throttling (only ``action``/``region``)."""
        with self._lock:
            self._throttle_left = count
            self._throttle_action = action
            self._throttle_region = region

    def rewrite(self, action: str, fn: Callable[[bytes], bytes]) -> None:
        """Pass moto's answers to ``action`` through ``fn`` (to shape older AWS answers)."""
        with self._lock:
            self._rewrites[action] = fn

    def refuse(self, action: str, code: str, message: str, **params: str) -> None:
        """Answer every ``action`` request whose form parameters include ``params``
        with the Query protocol's error ``code`` (HTTP 400), not forwarding it."""
        with self._lock:
            self._refusals.append((action, params, code, message))

    def actions(self, action: str, region: str | None = None) -> list[ProxiedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.action == action and (region is None or r.region == region)
            ]

    def _serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        params: dict[str, str] = {}
        ctype = h.headers.get("Content-Type", "")
        if "x-www-form-urlencoded" in ctype:
            params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        target = h.headers.get("X-Amz-Target")
        action = params.get("Action") or (target.rsplit(".", 1)[-1] if target else None)
        scope = _SCOPE.search(h.headers.get("Authorization", ""))
        with self._lock:
            throttled = (
                self._throttle_left > 0
                and self._throttle_action in (None, action)
                and self._throttle_region in (None, scope.group(2) if scope else None)
            )
            rewrite = self._rewrites.get(action or "")
            refusal = next(
                ((code, msg) for a, want, code, msg in self._refusals
                 if a == action and all(params.get(k) == v for k, v in want.items())),
                None,
            )
            if throttled:
                self._throttle_left -= 1
            self.requests.append(
                ProxiedRequest(
                    action=action,
                    region=scope.group(2) if scope else None,
                    service=scope.group(3) if scope else None,
                    access_key=scope.group(1) if scope else None,
                    params=params,
                    throttled=throttled,
                )
            )
        if throttled or refusal is not None:
            code, msg = refusal if refusal is not None and not throttled else (
                "Throttling", "Rate exceeded")
            payload = (
                b'<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
                b"<Error><Type>Sender</Type><Code>" + _xml(code) + b"</Code>"
                b"<Message>" + _xml(msg) + b"</Message></Error>"
                b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            )
            h.send_response(400)
            h.send_header("Content-Type", "text/xml")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() != "host"}
            headers["Host"] = f"{self._upstream[0]}:{self._upstream[1]}"
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if rewrite is not None and resp.status == 200:
                data = rewrite(data)
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        finally:
            conn.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _xml(text: str) -> bytes:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()


@pytest.fixture
def aws_proxy(moto_server: MotoServer) -> Iterator[AwsRecordingProxy]:
    proxy = AwsRecordingProxy(moto_server.url)
    try:
        yield proxy
    finally:
        proxy.stop()


# ------------------------------------------------------------------ Price List stub


def rds_product(
    sku: str,
    usd_per_hour: str,
    *,
    region: str = "us-east-1",
    instance_type: str = "db.t3.micro",
    engine: str = "PostgreSQL",
    deployment: str = "Single-AZ",
    usagetype: str | None = None,
    extra_attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Price List product document for one RDS database instance (aws_v1 format)."""
    term = f"{sku}.JRTCKXETXF"
    attributes = {
        "servicecode": "AmazonRDS",
        "regionCode": region,
        "locationType": "AWS Region",
        "instanceType": instance_type,
        "databaseEngine": engine,
        "deploymentOption": deployment,
        "usagetype": usagetype or f"InstanceUsage:{instance_type}",
        "operation": "CreateDBInstance:0014",
        **(extra_attributes or {}),
    }
    return {
        "product": {"productFamily": "Database Instance", "attributes": attributes, "sku": sku},
        "serviceCode": "AmazonRDS",
        "terms": {
            "OnDemand": {
                term: {
                    "priceDimensions": {
                        f"{term}.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"USD {usd_per_hour} per {instance_type} instance hour",
                            "appliesTo": [],
                            "rateCode": f"{term}.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": usd_per_hour},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2024-01-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": "20240101000000",
        "publicationDate": "2024-01-01T00:00:00Z",
    }


@dataclass
class PriceListStub:
    """A stub of GetProducts over ``products``; records each request body and its key id."""

    products: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    access_keys: list[str] = field(default_factory=list)
    url: str = ""
    _fail: list[tuple[str, int]] = field(default_factory=list)

    def fail_next(self, count: int, code: str, status: int = 400) -> None:
        self._fail.extend([(code, status)] * count)

    def handle(self, target: str | None, auth: str, body: bytes) -> tuple[int, dict[str, Any]]:
        scope = _SCOPE.search(auth)
        if not scope or scope.group(3) != "pricing":
            return 400, {
                "__type": "MissingAuthenticationTokenException",
                "message": "Missing Authentication Token",
            }
        if target != "AWSPriceListService.GetProducts":
            return 400, {"__type": "UnknownOperationException", "message": str(target)}
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return 400, {"__type": "SerializationException", "message": "bad JSON"}
        self.requests.append(req)
        self.access_keys.append(scope.group(1))
        if self._fail:
            code, status = self._fail.pop(0)
            return status, {"__type": code, "Message": f"stubbed {code}"}
        if req.get("FormatVersion", "aws_v1") != "aws_v1":
            return 400, {"__type": "InvalidParameterException", "Message": "Invalid FormatVersion"}
        service = req.get("ServiceCode")
        if not service:
            return 400, {"__type": "InvalidParameterException", "Message": "ServiceCode"}
        matched = [p for p in self.products if p.get("serviceCode") == service]
        for f in req.get("Filters") or []:
            if f.get("Type") != "TERM_MATCH":
                return 400, {
                    "__type": "InvalidParameterException",
                    "Message": f"unsupported filter type {f.get('Type')}",
                }
            matched = [p for p in matched if _field(p, f["Field"]) == f["Value"]]
        size = int(req.get("MaxResults") or 100)
        if not 1 <= size <= 100:
            return 400, {"__type": "InvalidParameterException", "Message": "MaxResults"}
        start = int(req.get("NextToken") or 0)
        page = matched[start : start + size]
        out: dict[str, Any] = {
            "FormatVersion": "aws_v1",
            "PriceList": [json.dumps(p) for p in page],
        }
        if start + size < len(matched):
            out["NextToken"] = str(start + size)
        return 200, out


def _field(product: dict[str, Any], name: str) -> Any:
    if name == "ServiceCode":
        return product.get("serviceCode")
    body = product.get("product", {})
    if name in ("productFamily", "sku"):
        return body.get(name)
    return body.get("attributes", {}).get(name)


@pytest.fixture
def aws_pricing_stub() -> Iterator[PriceListStub]:
    stub = PriceListStub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = stub.handle(
                self.headers.get("X-Amz-Target"),
                self.headers.get("Authorization", ""),
                self.rfile.read(length),
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server, thread, stub.url = _start(Handler)
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
