"""Sign in with an API key (exchanged for a session cookie) and sign out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from snoozeql.services.web_sessions import (
    SESSION_TTL,
    WebSessionService,
    csrf_matches,
    csrf_token_for,
)
from snoozeql.web.core import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfRefused,
    WebRoute,
    csrf_protect,
    ctx_of,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect to another host)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


def _login_page(request: Request, next_url: str, error: str | None = None,
                status_code: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {"login_csrf": csrf_token_for(nonce), "next": next_url,
                                          "error": error}, status_code=status_code)
    _cookie(resp, request, LOGIN_COOKIE, nonce, 3600)
    return resp


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if WebSessionService(ctx_of(request)).resolve(request.cookies.get(SESSION_COOKIE)):
        return RedirectResponse(_safe_next(next), status_code=303)  # signed in already
    return _login_page(request, _safe_next(next))


@router.post("/login")
def login(
    request: Request,
    api_key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE) or "", csrf_token):
        raise CsrfRefused("the sign-in form expired or came from another site; try again")
    found = WebSessionService(ctx_of(request)).sign_in(api_key) if api_key.strip() else None
    if found is None:
        return _login_page(request, _safe_next(next),
                           "That API key is not valid (unknown or revoked). Create one with "
                           "`snoozeql apikeys create NAME --role viewer`.", status_code=401)
    token, _ = found
    resp = RedirectResponse(_safe_next(next), status_code=303)
    _cookie(resp, request, SESSION_COOKIE, token, int(SESSION_TTL.total_seconds()))
    resp.delete_cookie(LOGIN_COOKIE, path="/")
    return resp


@router.post("/logout", dependencies=[Depends(csrf_protect)])
def logout(request: Request) -> Response:
    WebSessionService(ctx_of(request)).sign_out(request.cookies.get(SESSION_COOKIE))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
