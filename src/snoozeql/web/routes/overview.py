"""Overview: the fleet's counts, accounts with their connection status, what it costs
per hour now against everything running, recent actions, top recommendations."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from snoozeql.domain.errors import SnoozeError
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.web.core import Viewer, WebRoute, ctx_of, render

log = logging.getLogger(__name__)
router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/")
def overview(request: Request, _: Viewer) -> Response:
    ctx = ctx_of(request)
    summary = InventoryService(ctx).summary()
    accounts = AccountService(ctx).list()
    names = {a.id: a.name for a in accounts}
    recent = ActionLogService(ctx).list(limit=10)
    listed: list[dict[str, Any]] | None = None
    try:
        # Never an analysis on a page load (it grows with the fleet): the last one this
        # process made, which the analyse-activity job keeps current.
        listed = RecommendationService(ctx).cached()
        recs = [r for r in (listed or []) if r.get("status") == "open"][:5]
        recs_error = None
    except SnoozeError as exc:  # the overview still shows; the panel says why not
        recs, recs_error = [], exc.message
    except Exception:  # noqa: BLE001 - one panel must not take the whole page down
        log.exception("recommendations for the overview failed")
        recs, recs_error = [], "recommendations are unavailable right now; see the server log"
    return render(request, "overview.html", {
        "summary": summary, "accounts": accounts, "names": names, "recent": recent,
        "recs": recs, "recs_error": recs_error,
        "recs_pending": listed is None and recs_error is None,
    })
