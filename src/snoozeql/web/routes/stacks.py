"""Stacks: the list (state measured now, create, soft delete with a preview, restore any
deleted one), a stack's page (instances with their live state, add from the template
catalogue, duplicate, rename, enable/disable, delete with a preview, plan, apply and
down with progress, export), and the instance editor (one form per override kind,
the effective configuration with each entry's origin beside it).

Everything goes through :class:`StackService`, the same calls the API and CLI make, so
the validation and the outcomes are theirs. Secret env values never reach a page's
HTML: operators fetch one on demand (``.../secret?key=``), viewers never.
"""

from __future__ import annotations

import io
import json
import queue
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from snoozeql.api.schemas.stacks import (
    InstanceDeletePreviewOut,
    PlanItemOut,
    StackDeletePreviewOut,
    StackInstanceOut,
    StepOut,
)
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.stacks import OverrideKind, parse_override
from snoozeql.domain.stacks.merge import EffectiveService
from snoozeql.domain.types import Role
from snoozeql.services.stacks import (
    UP_STATES,
    LiveState,
    PlanItem,
    StackService,
    StepResult,
)
from snoozeql.services.templates import TemplateService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    flash,
    flashed,
    render,
    see_other,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

KINDS: list[tuple[str, str]] = [
    ("ports", "Ports"), ("env_vars", "Environment"), ("volumes", "Volumes"),
    ("labels", "Labels"), ("domains", "Domains"), ("healthcheck", "Healthcheck"),
    ("config_files", "Config files"),
]
# the fields of one row of each list kind, in form order
ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "ports": ("host_ip", "host_port", "container_port", "protocol"),
    "env_vars": ("key", "value", "secret", "stored"),
    "volumes": ("type", "source", "target", "read_only"),
    "labels": ("key", "value"),
    "domains": ("name",),
    "config_files": ("target", "mode", "content"),
}
HEALTH_FIELDS = ("test", "interval", "timeout", "start_period", "retries", "disable")
_ROW = re.compile(r"^row-(\d{1,4})-([a-z_]+)$")


def _svc(request: Request) -> StackService:
    return StackService(ctx_of(request))


def _admin(request: Request) -> bool:
    """Publishing a port beyond 127.0.0.1 needs the admin role, as over the API."""
    session = getattr(request.state, "session", None)
    return bool(session and session.role.allows(Role.ADMIN))


# ------------------------------------------------------------------------ stacks list


def _list_page(request: Request, *, error: str | None = None, notice: str | None = None,
               form: Mapping[str, str] | None = None, status_code: int = 200) -> Response:
    svc = _svc(request)
    rows = []
    for s in svc.list_stacks():
        try:
            overall, states = svc.stack_states(s.name)
        except SnoozeError as exc:
            overall, states = "unknown", {"": LiveState("unknown", exc.message)}
        enabled = [x for x in states.values() if x.status != "disabled"]
        up = sum(1 for x in enabled if x.status in UP_STATES)
        rows.append({"stack": s, "state": overall, "up": up, "enabled": len(enabled),
                     "failed": sum(1 for x in enabled if x.status == "failed")})
    return render(request, "stacks/list.html", {
        "rows": rows, "deleted": svc.list_deleted()[:50], "error": error,
        "notice": notice, "form": form or {},
    }, status_code=status_code)


@router.get("/stacks")
def stacks_page(request: Request, _: Viewer) -> Response:
    return flashed(request, _list_page(request, notice=flash(request)))


@router.post("/stacks", dependencies=[Depends(csrf_protect)])
def create_stack(request: Request, session: Operator, name: Annotated[str, Form()] = "",
                 description: Annotated[str, Form()] = "") -> Response:
    try:
        s = _svc(request).create_stack(name.strip(), description.strip(),
                                       actor=session.key_name)
    except SnoozeError as exc:
        return _list_page(request, error=exc.message, status_code=exc.http_status,
                          form={"name": name, "description": description})
    return see_other(f"/stacks/{s.name}")


@router.post("/stacks/restore", dependencies=[Depends(csrf_protect)])
def restore_stack(request: Request, session: Operator, name: Annotated[str, Form()] = "",
                  stack_id: Annotated[str, Form()] = "") -> Response:
    try:
        s = _svc(request).restore_stack(name, stack_id=stack_id or None,
                                        actor=session.key_name)
    except SnoozeError as exc:
        return _list_page(request, error=exc.message, status_code=exc.http_status)
    return see_other(f"/stacks/{s.name}",
                      f"Restored stack {s.name} with {s.instance_count} instance(s).")


@router.get("/stacks/{stack}/delete")
def delete_stack_preview(request: Request, stack: str, _: Viewer) -> Response:
    preview = StackDeletePreviewOut.model_validate(_svc(request).delete_stack_preview(stack))
    return render(request, "stacks/delete_stack.html", {"p": preview, "stack": stack})


@router.post("/stacks/{stack}/delete", dependencies=[Depends(csrf_protect)])
def delete_stack(request: Request, stack: str, session: Operator,
                 down: Annotated[str, Form()] = "") -> Response:
    view = _svc(request).delete_stack(stack, down=bool(down), actor=session.key_name)
    return see_other("/stacks", f"Deleted stack {view.name}; it can be restored from "
                      "the deleted list below.")


# ------------------------------------------------------------------------- stack page


def _templates(request: Request) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.template.description,
             "engine": t.template.engine, "image": t.template.image, "builtin": t.builtin}
            for t in TemplateService(ctx_of(request)).list()]


def _stack_page(request: Request, stack: str, *, error: str | None = None,
                notice: str | None = None, form: Mapping[str, str] | None = None,
                status_code: int = 200) -> Response:
    svc = _svc(request)
    view = svc.get_stack(stack)
    instances = svc.list_instances(stack)
    overall, states = svc.stack_states(stack)
    plan_error = None
    try:
        plan = svc.plan(stack)
    except SnoozeError as exc:
        plan, plan_error = None, exc.message
    return render(request, "stacks/stack.html", {
        "s": view, "instances": instances, "states": states, "overall": overall,
        "plan": plan, "plan_error": plan_error, "templates": _templates(request),
        "error": error, "notice": notice, "form": form or {},
    }, status_code=status_code)


@router.get("/stacks/{stack}")
def stack_page(request: Request, stack: str, _: Viewer) -> Response:
    return flashed(request, _stack_page(request, stack, notice=flash(request)))


@router.post("/stacks/{stack}/instances", dependencies=[Depends(csrf_protect)])
def add_instance(request: Request, stack: str, session: Operator,
                 name: Annotated[str, Form()] = "", template: Annotated[str, Form()] = "",
                 description: Annotated[str, Form()] = "",
                 disabled: Annotated[str, Form()] = "") -> Response:
    form = {"name": name, "template": template, "description": description,
            "disabled": disabled}
    try:
        if not template:
            raise ValidationError("pick a template from the catalogue")
        i = _svc(request).create_instance(
            stack, name.strip() or template, template, description=description.strip(),
            enabled=not disabled, actor=session.key_name, admin=_admin(request))
    except SnoozeError as exc:
        return _stack_page(request, stack, error=exc.message, form=form,
                           status_code=exc.http_status)
    return see_other(f"/stacks/{stack}",
                      f"Added {i.name} from {i.template} ({i.container_name}).")


@router.post("/stacks/{stack}/instances/{name}/duplicate", dependencies=[Depends(csrf_protect)])
def duplicate_instance(request: Request, stack: str, name: str, session: Operator,
                       new_name: Annotated[str, Form()] = "",
                       disabled: Annotated[str, Form()] = "") -> Response:
    try:
        i = _svc(request).duplicate_instance(stack, name, new_name.strip() or None,
                                             enabled=False if disabled else None,
                                             actor=session.key_name)
    except SnoozeError as exc:
        return _stack_page(request, stack, error=exc.message, status_code=exc.http_status)
    return see_other(f"/stacks/{stack}", f"Created {i.name} as a copy of {name}.")


@router.post("/stacks/{stack}/instances/{name}/rename", dependencies=[Depends(csrf_protect)])
def rename_instance(request: Request, stack: str, name: str, session: Operator,
                    new_name: Annotated[str, Form()] = "") -> Response:
    try:
        i = _svc(request).rename_instance(stack, name, new_name.strip(),
                                          actor=session.key_name)
    except SnoozeError as exc:
        return _stack_page(request, stack, error=exc.message, status_code=exc.http_status)
    return see_other(f"/stacks/{stack}",
                      f"Renamed {name} to {i.name} ({i.container_name}).")


@router.post("/stacks/{stack}/instances/{name}/enabled", dependencies=[Depends(csrf_protect)])
def toggle_instance(request: Request, stack: str, name: str, session: Operator,
                    enabled: Annotated[str, Form()] = "") -> Response:
    try:
        i = _svc(request).update_instance(stack, name, enabled=enabled == "true",
                                          actor=session.key_name)
    except SnoozeError as exc:
        return _stack_page(request, stack, error=exc.message, status_code=exc.http_status)
    word = "Enabled" if i.enabled else "Disabled"
    return see_other(f"/stacks/{stack}", f"{word} {i.name}.")


@router.get("/stacks/{stack}/instances/{name}/delete")
def delete_instance_preview(request: Request, stack: str, name: str, _: Viewer) -> Response:
    preview = InstanceDeletePreviewOut.model_validate(_svc(request).delete_preview(stack, name))
    return render(request, "stacks/delete_instance.html", {"p": preview, "stack": stack})


@router.post("/stacks/{stack}/instances/{name}/delete", dependencies=[Depends(csrf_protect)])
def delete_instance(request: Request, stack: str, name: str, session: Operator) -> Response:
    _svc(request).delete_instance(stack, name, actor=session.key_name)
    return see_other(f"/stacks/{stack}",
                      f"Deleted {name}; the next apply removes what it runs (its data is kept).")


# ------------------------------------------------------------------ plan / apply / down


def _event(event: str, data: Any) -> str:
    if isinstance(data, list):
        payload: Any = [PlanItemOut.model_validate(i).model_dump(mode="json") for i in data]
    elif isinstance(data, PlanItem):
        payload = PlanItemOut.model_validate(data).model_dump(mode="json")
    elif isinstance(data, StepResult):
        payload = StepOut.model_validate(data).model_dump(mode="json")
    else:
        payload = data
    return json.dumps({"event": event, "data": payload}) + "\n"


def _run(request: Request, stack: str, what: str, actor: str) -> Response:
    svc = _svc(request)
    svc.get_stack(stack)  # 404 as a page before anything starts
    run = svc.apply if what == "apply" else svc.down
    if "application/x-ndjson" not in request.headers.get("accept", ""):
        steps = run(stack)
        return render(request, "stacks/run.html", {"stack": stack, "what": what,
                                                   "steps": steps})
    events: queue.Queue[str | None] = queue.Queue()

    def work() -> None:
        try:
            steps = run(stack, progress=lambda e, d: events.put(_event(e, d)))
            events.put(_event("done", {"ok": all(s.ok for s in steps), "count": len(steps)}))
        except SnoozeError as exc:
            events.put(_event("error", {"message": exc.message}))
        except Exception:  # noqa: BLE001 - logged by the thread's caller below
            import logging

            logging.getLogger(__name__).exception("stack %s of %s failed", what, stack)
            events.put(_event("error", {"message": "internal error; see the server log"}))
        finally:
            events.put(None)

    threading.Thread(target=work, name=f"stack-{what}-{stack}", daemon=True).start()

    def stream() -> Iterator[str]:
        while True:
            item = events.get()
            if item is None:
                return
            yield item

    return StreamingResponse(stream(), media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/stacks/{stack}/apply", dependencies=[Depends(csrf_protect)])
def apply_stack(request: Request, stack: str, session: Operator) -> Response:
    return _run(request, stack, "apply", session.key_name)


@router.post("/stacks/{stack}/down", dependencies=[Depends(csrf_protect)])
def down_stack(request: Request, stack: str, session: Operator) -> Response:
    return _run(request, stack, "down", session.key_name)


# ------------------------------------------------------------------------------ export


@router.get("/stacks/{stack}/export")
def export_page(request: Request, stack: str, _: Viewer) -> Response:
    svc = _svc(request)
    view = svc.get_stack(stack)
    try:
        ex = svc.compose(stack)
    except SnoozeError as exc:
        return render(request, "stacks/export.html", {"s": view, "error": exc.message},
                      status_code=exc.http_status)
    return render(request, "stacks/export.html", {
        "s": view, "yaml": ex.yaml(), "files": ex.files, "env_names": sorted(ex.env),
        "project": ex.project, "error": None,
    })


@router.get("/stacks/{stack}/compose.yaml")
def export_yaml(request: Request, stack: str, _: Viewer) -> Response:
    ex = _svc(request).compose(stack)
    return PlainTextResponse(ex.yaml(), media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="{ex.project}-compose.yaml"'})


@router.get("/stacks/{stack}/export.zip")
def export_zip(request: Request, stack: str, session: Viewer) -> Response:
    """compose.yaml, the config files with their modes and, for operators, the .env
    holding the secret values (viewers never get secret values)."""
    ex = _svc(request).compose(stack)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def add(path: str, text: str, mode: int) -> None:
            info = zipfile.ZipInfo(f"{ex.project}/{path}")
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)

        add("compose.yaml", ex.yaml(), 0o644)
        for f in ex.files:
            add(f.path, f.content, int(f.mode, 8))
        if ex.env and session.role.allows(Role.OPERATOR):
            add(".env", ex.env_file(), 0o600)
    return Response(buf.getvalue(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{ex.project}.zip"',
        "Cache-Control": "no-store"})


# ------------------------------------------------------------------------ the editor


def _effective_rows(svc: EffectiveService) -> dict[str, list[dict[str, Any]]]:
    """Each kind's effective entries as (label, value, origin) rows; secrets ``***``."""
    prov = {k.value: dict(v) for k, v in svc.entry_provenance.items()}
    kind_prov = {k.value: v for k, v in svc.provenance.items()}

    def origin(kind: str, key: str) -> str:
        return prov.get(kind, {}).get(key) or kind_prov.get(kind, "template")

    out: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in KINDS}
    for p in svc.ports:
        out["ports"].append({"label": p.short(), "value": "", "origin": origin("ports",
                                                                             p.short())})
    for e in svc.environment:
        out["env_vars"].append({"label": e.key, "value": e.shown_value(False) or "",
                                "secret": e.secret, "unset": e.value is None,
                                "origin": origin("env_vars", e.key)})
    for v in svc.volumes:
        src = v.source or ("tmpfs" if v.type == "tmpfs" else "")
        out["volumes"].append({"label": v.target,
                               "value": f"{v.type} {src}{' (read-only)' if v.read_only else ''}",
                               "origin": origin("volumes", v.target)})
    for lab in svc.labels:
        out["labels"].append({"label": lab.key, "value": lab.value,
                              "origin": origin("labels", lab.key)})
    for d in svc.domains:
        out["domains"].append({"label": d, "value": "", "origin": origin("domains", d)})
    if svc.healthcheck is not None:
        for f, val in svc.healthcheck.set_values().items():
            shown = json.dumps(val) if isinstance(val, list | bool) else str(val)
            out["healthcheck"].append({"label": f, "value": shown,
                                       "origin": origin("healthcheck", f)})
    for c in svc.config_files:
        out["config_files"].append({"label": c.target, "value": f"mode {c.mode}",
                                    "content": c.content,
                                    "origin": origin("config_files", c.target)})
    return out


def _rows_of(kind: str, override: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The editor's rows for the current override (secrets blank, marked stored)."""
    if override is None:
        return []
    entries = override["entries"]
    if kind == "domains":
        return [{"name": d} for d in entries]
    if kind == "env_vars":
        rows = []
        for e in entries:
            stored = bool(e.get("secret")) and e.get("value") == "***"
            rows.append({"key": e["key"], "value": "" if stored else (e.get("value") or ""),
                         "secret": bool(e.get("secret")), "stored": stored,
                         "unset": e.get("value") is None})
        return rows
    if kind == "ports":
        return [{**e, "host_port": "" if e.get("host_port") is None else e["host_port"]}
                for e in entries]
    if kind == "volumes":
        return [{**e, "source": e.get("source") or ""} for e in entries]
    return [dict(e) for e in entries]


def _health_form(override: Mapping[str, Any] | None) -> dict[str, str]:
    data = dict(override["entries"]) if override else {}
    out = {}
    for f in HEALTH_FIELDS:
        val = data.get(f)
        if f == "test" and isinstance(val, list):
            out[f] = val[1] if len(val) == 2 and val[0] == "CMD-SHELL" else json.dumps(val)
        elif f == "disable":
            out[f] = "" if val is None else ("true" if val else "false")
        else:
            out[f] = "" if val is None else str(val)
    return out


def _editor(request: Request, stack: str, name: str, *, tab: str = "ports",
            error: str | None = None, row_errors: Mapping[int, str] | None = None,
            posted: Mapping[str, Any] | None = None, notice: str | None = None,
            status_code: int = 200) -> Response:
    svc = _svc(request)
    view, eff = svc.effective(stack, name)
    live = svc.live_states(stack).get(view.name)
    if tab not in dict(KINDS):
        tab = "ports"
    shown = StackInstanceOut.model_validate(view).model_dump(mode="json")
    current = {o["kind"]: o for o in shown["overrides"]}
    override = current.get(tab)
    if posted is not None:
        rows, mode, health = posted["rows"], posted["mode"], posted.get("health", {})
    else:
        rows = _rows_of(tab, override) if tab != "healthcheck" else []
        mode = override["mode"] if override else "merge"
        health = _health_form(override) if tab == "healthcheck" else {}
    return render(request, "stacks/instance.html", {
        "stack": stack, "i": view, "eff": eff, "effective": _effective_rows(eff), "live": live,
        "kinds": KINDS, "tab": tab, "tab_label": dict(KINDS)[tab], "override": override,
        "overrides": current, "rows": rows, "mode": mode, "health": health,
        "fields": ROW_FIELDS.get(tab, ()), "error": error, "row_errors": row_errors or {},
        "notice": notice,
    }, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/stacks/{stack}/instances/{name}")
def editor_page(request: Request, stack: str, name: str, _: Viewer,
                tab: str = "ports") -> Response:
    return flashed(request, _editor(request, stack, name, tab=tab, notice=flash(request)))


def _form_rows(form: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The posted rows in order (indexes as numbered by the page), blank rows dropped."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        m = _ROW.match(key)
        if m and m.group(2) in ROW_FIELDS[kind]:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = (
                value if isinstance(value, str) else "")
    rows = []
    for idx in sorted(found):
        row = found[idx]
        meaningful = {k: v for k, v in row.items()
                      if k not in ("protocol", "type", "mode", "secret", "read_only", "stored")
                      and v.strip()}
        if meaningful or row.get("stored"):
            rows.append(row)
    return rows


def _entry(kind: str, row: Mapping[str, str], kept: Mapping[str, str | None]) -> Any:
    """One domain entry from a form row (the domain validates it)."""
    if kind == "ports":
        return {"host_ip": row.get("host_ip", "").strip(),
                "host_port": row.get("host_port", "").strip() or None,
                "container_port": row.get("container_port", "").strip(),
                "protocol": row.get("protocol") or "tcp"}
    if kind == "env_vars":
        key = row.get("key", "").strip()
        value: str | None = row.get("value", "")
        if row.get("stored") and not value:
            value = kept.get(key)  # a stored secret left as it was
        return {"key": key, "value": value, "secret": bool(row.get("secret"))}
    if kind == "volumes":
        return {"type": row.get("type") or "volume", "source": row.get("source", "").strip()
                or None, "target": row.get("target", "").strip(),
                "read_only": bool(row.get("read_only"))}
    if kind == "labels":
        return {"key": row.get("key", "").strip(), "value": row.get("value", "")}
    if kind == "domains":
        return row.get("name", "").strip()
    return {"target": row.get("target", "").strip(), "content": row.get("content", "")
            .replace("\r\n", "\n"), "mode": row.get("mode", "").strip() or "0644"}


def _health_entries(form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    raw = {f: str(form.get(f"hc-{f}") or "").strip() for f in HEALTH_FIELDS}
    out: dict[str, Any] = {}
    test = raw["test"]
    if test:
        if test.startswith("["):
            try:
                out["test"] = json.loads(test)
            except json.JSONDecodeError:
                raise ValidationError(
                    "healthcheck test: a list must be JSON, e.g. [\"CMD\", \"pg_isready\"]"
                ) from None
        else:
            out["test"] = test
    for f in ("interval", "timeout", "start_period"):
        if raw[f]:
            out[f] = raw[f]
    if raw["retries"]:
        if not raw["retries"].isdigit():
            raise ValidationError(
                f"healthcheck retries must be a whole number >= 0, got {raw['retries']!r}")
        out["retries"] = int(raw["retries"])
    if raw["disable"] in ("true", "false"):
        out["disable"] = raw["disable"] == "true"
    return out, raw


@router.post("/stacks/{stack}/instances/{name}/overrides/{kind}",
             dependencies=[Depends(csrf_protect)])
async def save_override(request: Request, stack: str, name: str, kind: str,
                        session: Operator) -> Response:
    k = OverrideKind.parse(kind).value
    form = await request.form()
    mode = str(form.get("mode") or "merge")
    svc = _svc(request)
    if form.get("remove"):
        svc.delete_override(stack, name, k, actor=session.key_name)
        return see_other(f"/stacks/{stack}/instances/{name}?tab={k}",
                          f"Removed the {k} override: the template's values apply.")
    row_errors: dict[int, str] = {}
    health: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    entries: Any
    try:
        if k == "healthcheck":
            entries, health = _health_entries(form)
        else:
            rows = _form_rows(form, k)
            kept: dict[str, str | None] = {}
            if k == "env_vars" and any(r.get("stored") for r in rows):
                kept = {e.key: e.value for e in svc.secrets(stack, name).env_vars}
            entries = [_entry(k, r, kept) for r in rows]
            for n, entry in enumerate(entries):  # each row alone: the error at its row
                try:
                    parse_override(k, {"mode": mode, "entries": [entry]})
                except ValidationError as exc:
                    row_errors[n] = exc.message
            if row_errors:
                first = min(row_errors)
                raise ValidationError(f"row {first + 1}: {row_errors[first]}")
        svc.put_override(stack, name, k, {"mode": mode, "entries": entries},
                         actor=session.key_name, admin=_admin(request))
    except SnoozeError as exc:
        # The rows as posted, so nothing typed is lost: a stored secret left blank stays
        # blank ("unchanged"); only what the operator typed in this form comes back.
        shown_rows = [{**r, "secret": bool(r.get("secret")), "stored": bool(r.get("stored")),
                       "value": r.get("value", "")} if k == "env_vars" else r for r in rows]
        return _editor(request, stack, name, tab=k, error=exc.message, row_errors=row_errors,
                       posted={"rows": shown_rows, "mode": mode, "health": health},
                       status_code=exc.http_status)
    return see_other(f"/stacks/{stack}/instances/{name}?tab={k}",
                      f"Saved the {k} override ({mode}); the effective configuration is "
                      "updated.")


@router.get("/stacks/{stack}/instances/{name}/secret")
def reveal_secret(request: Request, stack: str, name: str, _: Operator,
                  key: Annotated[str, Query(max_length=200)]) -> Response:
    """One secret env value in clear, fetched on demand (operators only)."""
    for e in _svc(request).secrets(stack, name).env_vars:
        if e.key == key:
            return PlainTextResponse(e.value or "", headers={"Cache-Control": "no-store"})
    raise ValidationError(f"{stack}/{name} has no secret {key!r}")
