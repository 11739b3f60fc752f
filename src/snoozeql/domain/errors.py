"""Errors that cross layers.

Every error a user can cause or meet derives from :class:`SnoozeError`. The API maps
them to HTTP status codes and the CLI to exit codes, so neither needs to know where an
error came from:

====================  ======  ==========  =============================================
class                 HTTP    CLI exit    meaning
====================  ======  ==========  =============================================
ValidationError       400     2           the input is malformed (a user mistake)
UnprocessableInput    422     2           a value no field accepts (control characters)
NotFoundError         404     2           the named object does not exist
ConflictError         409     2           the request clashes with existing state
ActionRefused         409     1           the action cannot be carried out (with reason)
PermissionDenied      403     2           the caller's role does not allow it
ProviderError         502     1           an outside system failed or was unreachable
====================  ======  ==========  =============================================
"""

from __future__ import annotations


class SnoozeError(Exception):
    """Base class. ``message`` is safe to show to a user: it never holds a secret."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(SnoozeError):
    http_status = 400
    exit_code = 2


class UnprocessableInput(ValidationError):
    """A value that fails the field's own rules, like a request the schema refuses (422):
    control characters in a filter, which some stores cannot even take in a query."""

    http_status = 422


class NotFoundError(SnoozeError):
    http_status = 404
    exit_code = 2


class ConflictError(SnoozeError):
    http_status = 409
    exit_code = 2


class PermissionDenied(SnoozeError):
    http_status = 403
    exit_code = 2


class ActionRefused(SnoozeError):
    """The provider (or a rule of ours) will not carry the action out; says why."""

    http_status = 409
    exit_code = 1


class ProviderError(SnoozeError):
    """An outside system failed: unreachable, bad credentials, throttled past retries."""

    http_status = 502
    exit_code = 1
