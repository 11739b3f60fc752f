"""Request bodies of the templates and stacks API.

Responses are the services' ``to_dict`` views: secret env values appear as ``***``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.domain.validation import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS


class StackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["shop"], max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)


class StackRestore(BaseModel):
    """Which deleted stack to restore when several share the name."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=64,
                           description="the deleted stack's id (GET /stacks?deleted=true)")
    deleted_at: str | None = Field(
        None, max_length=64, examples=["2026-12-02T04:17:05"],
        description="its deletion time (UTC) at the precision written: a minute or a second")


class StackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(max_length=MAX_DESCRIPTION_CHARS)


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["db"], max_length=MAX_NAME_CHARS)
    template: str = Field(examples=["postgres"], max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool = True
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Optional overrides by kind: {kind: {mode, entries}}",
        examples=[{"ports": {"mode": "replace", "entries": ["127.0.0.1:15432:5432"]}}],
    )


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool | None = None


class InstanceDuplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="default: <name>-copy",
                             max_length=MAX_NAME_CHARS)
    enabled: bool | None = Field(None, description="default: the source's")


class InstanceRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=MAX_NAME_CHARS)


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["merge", "replace"] = "merge"
    entries: Any = Field(
        default=None,
        description="A list of entries (ports, volumes, env vars, labels, domains, config "
        "files) or a mapping of healthcheck fields; env vars and labels also as a mapping",
    )
