"""What every dashboard page shares: templates, the signed-in session, CSRF, errors.

Pages are server-rendered (Jinja2). A page handler asks for the session it needs
(:data:`Viewer`, :data:`Operator`, :data:`Admin`); every POST handler also depends on
:func:`csrf_protect`. Errors never leave as JSON: :class:`WebRoute` turns them into the
page's error view (full page, or a toast for an htmx request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from snoozeql import __version__
from snoozeql.domain.errors import PermissionDenied, SnoozeError
from snoozeql.domain.types import Role
from snoozeql.services.context import Context
from snoozeql.services.web_sessions import WebSession, WebSessionService, csrf_matches

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
SESSION_COOKIE = "snoozeql_session"
LOGIN_COOKIE = "snoozeql_login"
TRANSITIONAL = ("starting", "stopping", "pending")


def money(cents: Decimal | float | int | None) -> str:
    if cents is None:
        return "–"
    return f"${Decimal(cents) / 100:,.2f}"


# A notice shown once by the page a post redirects to.
FLASH_COOKIE = "snoozeql_flash"


def see_other(url: str, notice: str | None = None) -> Response:
    """Redirect after a post; ``notice`` is shown once by the next page (a short-lived
    cookie, so no page shows text taken from its URL)."""
    resp = RedirectResponse(url, status_code=303)
    if notice:
        resp.set_cookie(FLASH_COOKIE, quote(notice[:300], safe=""), max_age=60,
                        httponly=True, samesite="strict", path="/",
                        secure=url.startswith("https:"))
    return resp


def flash(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    return unquote(raw) if raw else None


def flashed(request: Request, resp: Response) -> Response:
    if request.cookies.get(FLASH_COOKIE):
        resp.delete_cookie(FLASH_COOKIE, path="/")
    return resp


def heat_level(value: float | None, top: float) -> int:
    """A heatmap cell's shade: 0-5 by its share of the busiest cell ``top``, -1 for an
    hour without data (the instance page's and the activity dialog's heatmaps)."""
    if value is None:
        return -1
    if top <= 0:
        return 0
    return min(5, int(value / top * 5.999))


def when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    secs = int((datetime.now(UTC) - value).total_seconds())
    if secs < 60:
        return "just now" if secs >= 0 else when(value)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if secs >= size:
            return f"{secs // size} {unit} ago"
    return when(value)


def setting(value: object) -> str:
    """An account config value in words: lists joined by commas, booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set):
        return ",".join(setting(v) for v in value)
    return str(value)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["money"] = money
templates.env.filters["when"] = when
templates.env.filters["ago"] = ago
templates.env.filters["setting"] = setting
templates.env.globals["version"] = __version__
templates.env.globals["TRANSITIONAL"] = TRANSITIONAL


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


class LoginRequired(Exception):
    """No live session: the browser goes to the sign-in page."""


class CsrfRefused(SnoozeError):
    http_status = 403
    exit_code = 2


def signed_in(request: Request) -> WebSession:
    session = WebSessionService(ctx_of(request)).resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    request.state.session = session
    return session


def role_at_least(role: Role) -> Callable[[WebSession], WebSession]:
    def check(session: Annotated[WebSession, Depends(signed_in)]) -> WebSession:
        if not session.role.allows(role):
            raise PermissionDenied(
                f"this needs the {role.value} role; you are signed in as "
                f"{session.key_name} ({session.role.value})"
            )
        return session

    return check


Viewer = Annotated[WebSession, Depends(role_at_least(Role.VIEWER))]
Operator = Annotated[WebSession, Depends(role_at_least(Role.OPERATOR))]
Admin = Annotated[WebSession, Depends(role_at_least(Role.ADMIN))]


async def csrf_protect(request: Request) -> None:
    """Refuse (403) a POST whose csrf_token (form field or X-CSRF-Token header) is not
    the one of the browser's session. Cross-site forms cannot read it."""
    token = request.cookies.get(SESSION_COOKIE)
    given = request.headers.get("X-CSRF-Token")
    if not given:
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if not token or not csrf_matches(token, given):
        raise CsrfRefused("the form's security token is missing or stale; reload the page "
                          "and try again")


def render(request: Request, template: str, data: Mapping[str, Any] | None = None,
           status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    ctx = ctx_of(request)
    session: WebSession | None = getattr(request.state, "session", None)
    page = {
        "request": request,
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "demo": bool(getattr(ctx.settings, "demo", False)),
        "path": request.url.path,
        "can_operate": bool(session and session.role.allows(Role.OPERATOR)),
        "is_admin": bool(session and session.role.allows(Role.ADMIN)),
        **(data or {}),
    }
    return templates.TemplateResponse(request, template, page, status_code=status_code,
                                      headers=dict(headers or {}))


def query_url(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """``path`` with ``params`` (lists repeat) updated by ``changes`` (None drops a key)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for k, val in merged.items():
        if val is None or val == "" or val == []:
            continue
        for item in val if isinstance(val, list) else [val]:
            pairs.append((k, str(item)))
    return f"{path}?{urlencode(pairs)}" if pairs else path


templates.env.globals["query_url"] = query_url


def error_page(request: Request, status: int, message: str) -> Response:
    """The error as a page (or a toast for htmx), signed in or not."""
    if not hasattr(request.state, "session"):
        found = WebSessionService(ctx_of(request)).resolve(request.cookies.get(SESSION_COOKIE))
        if found is not None:
            request.state.session = found
    if status == 404 and message == "Not Found":
        message = "There is no page here. Check the address, or start from the overview."
    return _error_response(request, status, message)


def _error_response(request: Request, status: int, message: str) -> Response:
    if is_htmx(request):
        # Shown as a toast whatever the element that asked (see app.js).
        resp = render(request, "partials/toast.html", {"message": message, "kind": "error"},
                      status_code=status)
        resp.headers["HX-Retarget"] = "#toasts"
        resp.headers["HX-Reswap"] = "beforeend"
        return resp
    return render(request, "error.html", {"status": status, "message": message},
                  status_code=status)


class WebRoute(APIRoute):
    """A route whose failures render as dashboard pages, never as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
                url = "/login?next=" + quote(target, safe="")
                if is_htmx(request):
                    return Response(status_code=204, headers={"HX-Redirect": url})
                return RedirectResponse(url, status_code=303)
            except SnoozeError as exc:
                return _error_response(request, exc.http_status, exc.message)
            except RequestValidationError as exc:
                parts = []
                for err in exc.errors():
                    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",
                                                                                  "query"))
                    parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
                return _error_response(request, 422, "; ".join(parts) or "invalid request")
            except StarletteHTTPException as exc:
                return _error_response(request, exc.status_code, str(exc.detail))
            except Exception as exc:  # an unexpected failure: logged, shown politely
                log.error("unhandled dashboard error on %s", request.url.path, exc_info=exc)
                return _error_response(request, 500, "internal error; see the server log")

        return run
