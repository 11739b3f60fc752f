"""What the OpenAPI document declares beyond the routes' own models.

Every ``/api/v1`` operation can answer with the error body (:class:`ErrorOut`) for the
statuses of :mod:`snoozeql.domain.errors` and of the request checks; they are declared
on every operation, so a client generated from the document knows each answer it may
get. Answers of a method a path does not have (405) carry ``Allow`` with the methods
it does have.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from snoozeql.api.schemas.common import ErrorOut

if TYPE_CHECKING:  # the CLI's --json uses the bodies (api/schemas) without FastAPI
    from fastapi import Request

ERROR_STATUSES: dict[int, str] = {
    400: "Malformed input: a value the service refuses, with the reason.",
    401: "No API key, or an invalid or revoked one.",
    403: "The key's role does not allow this operation.",
    404: "A named object (in the path, the query or the body) does not exist.",
    409: "The request clashes with existing state, or the action was refused.",
    413: "The request body is over the limit (SNOOZEQL_MAX_BODY_BYTES, default 1 MiB).",
    422: "The request does not match this document (types, lengths, required fields, "
         "control characters in the path or query).",
    502: "An outside system (cloud API, Docker, a database server) failed.",
}


def error_responses() -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut, "description": text}
            for status, text in ERROR_STATUSES.items()}


def allowed_methods(request: Request) -> list[str]:
    """Every method the document declares at this request's path (for ``Allow``).

    Read from the OpenAPI document rather than the router: it is the public list of
    what each path serves, and it sees every route whatever way it was included."""
    table = request.app.state.__dict__.get("_allow_table")
    if table is None:
        table = []
        for template, item in request.app.openapi()["paths"].items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            methods = {m.upper() for m in item if m in _METHODS}
            table.append((re.compile(f"^{pattern}$"), methods, "{" not in template))
        request.app.state._allow_table = table
    path = request.scope["path"]
    found: set[str] = set()
    for regex, methods, literal in table:
        if regex.match(path):
            if literal:  # /instances/bulk is that resource, not an {instance}
                return sorted(methods)
            found |= methods
    return sorted(found)


_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def exactly_one_of(*fields: str, also_required: dict[str, list[str]] | None = None
                   ) -> dict[str, Any]:
    """A JSON Schema ``oneOf`` saying exactly one of ``fields`` is given (not null).

    For a model's ``json_schema_extra``: the rule the service enforces (400 otherwise)
    is then in the document, for clients and for generated tests. ``also_required``
    names fields that must come with a given one (a Custodian tag needs a name)."""
    branches = []
    for f in fields:
        props: dict[str, Any] = {f: {"not": {"type": "null"}}}
        props.update({g: {"type": "null"} for g in fields if g != f})
        extra = (also_required or {}).get(f, [])
        props.update({g: {"not": {"type": "null"}} for g in extra})
        branches.append({"required": [f, *extra], "properties": props})
    return {"oneOf": branches}


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from each create (``POST`` answering 201) to the operations on what
    it made: ``POST /stacks`` -> ``GET /stacks/{stack}`` with ``stack`` taken from the
    response's ``name``; the other path parameters come from the request's path.

    Clients (and stateful test generators) follow them to the object just created."""
    ops = [(path, method, op) for path, item in doc["paths"].items()
           for method, op in item.items() if method in _METHODS]
    for path, method, op in ops:
        created = op.get("responses", {}).get("201")
        if method != "post" or not created:
            continue
        links: dict[str, Any] = {}
        for target, _, top in ops:
            if not target.startswith(path + "/{"):
                continue
            param = target[len(path) + 2:target.index("}", len(path))]
            params = {param: "$response.body#/name"}
            params.update({p: f"$request.path.{p}" for p in re.findall(r"{(\w+)}", path)})
            links[top["operationId"]] = {"operationId": top["operationId"],
                                         "parameters": params}
        if links:
            created["links"] = links
    return doc
