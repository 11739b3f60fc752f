"""One module per dashboard page (routers use :class:`snoozeql.web.core.WebRoute`)."""
