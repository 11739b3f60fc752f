"""The web dashboard, served by the same app (and port) as the API.

``install(app)`` adds the page routes (``web/routes/<page>.py``) and ``/static``. Pages
call services directly, like the API routers do; they never call the HTTP API.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from snoozeql.web.core import STATIC_DIR


def install(app: FastAPI) -> None:
    from snoozeql.web.routes import (
        accounts,
        activity,
        apikeys,
        instance_detail,
        instances,
        local,
        login,
        overview,
    )

    for module in (login, overview, instances, instance_detail, accounts, local, activity,
                   apikeys):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
