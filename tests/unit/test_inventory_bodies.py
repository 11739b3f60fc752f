"""The inventory's bodies (api/schemas): what the API answers and what `--json` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from snoozeql.api.schemas.audit import AuditEntryOut
from snoozeql.api.schemas.info import InfoOut
from snoozeql.api.schemas.instances import InstanceDetail, InstanceOut
from snoozeql.cli.output import _default
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.datadir import Info
from snoozeql.store.actions import ActionRecord

T0 = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
ID = UUID("12345678-1234-5678-1234-567812345678")


def _printed(body: object) -> object:
    """What `cli/output.print_json` writes, read back."""
    return json.loads(json.dumps(body, default=_default))


def _instance(name: str = "db-1", cost: Decimal | None = Decimal("1.5")) -> Instance:
    return Instance(
        id=ID, account_id=None, provider=ProviderKind.AWS, provider_id=f"arn:{name}",
        kind=InstanceKind.CLUSTER, name=name, engine="aurora-postgresql",
        engine_version="15.4", instance_class="db.r6g.large", region="eu-west-1",
        status=InstanceStatus.RUNNING, raw_status="available", tags={"env": "dev"},
        endpoint_host=None, endpoint_port=5432, multi_az=True, node_count=2,
        cluster_provider_id=None, hourly_cost_cents=cost, first_seen_at=T0,
        last_seen_at=T0, missing_since=None, extra={"never": "shown"},
    )


def test_an_audit_entry_is_the_change_with_its_redacted_states() -> None:
    r = ActionRecord(
        id=ID, at=T0, finished_at=T0, actor="ci", action="update", instance_id=None,
        instance_name=None, provider=None, reason="manual", result="ok", error=None,
        details={}, object_kind="account", object_id="a1", object_name="dev",
        before={"regions": ["us-east-1"]}, after={"regions": ["eu-west-1"], "key": "***"},
    )
    out = AuditEntryOut.of(r)
    assert json.loads(out.model_dump_json())["at"] == "2026-11-23T08:30:00Z"  # the API
    assert _printed(out.model_dump()) == {  # the CLI, as it always printed it
        "id": str(ID), "at": "2026-11-23T08:30:00+00:00", "actor": "ci", "action": "update",
        "object_kind": "account", "object_id": "a1", "object_name": "dev", "reason": "manual",
        "before": {"regions": ["us-east-1"]}, "after": {"regions": ["eu-west-1"], "key": "***"},
    }


def test_info_names_the_local_databases_directory_and_its_owner() -> None:
    info = Info(
        version="1.0", data_dir=Path("/d"), data_dir_source="default", store_url="sqlite:///x",
        store_id="s1", store_error=None, key_file="/d/secret.key", docker_host="unix:///s",
        jobs=True, local_dir=Path("/d/local"), local_dir_owner=None,
    )
    assert _printed(InfoOut.of(info).model_dump()) == {
        "version": "1.0", "data_dir": "/d", "data_dir_source": "default",
        "store_url": "sqlite:///x", "store_id": "s1", "store_error": None,
        "key_file": "/d/secret.key", "docker_host": "unix:///s", "jobs": True,
        "local_databases_dir": "/d/local", "local_databases_owner": None,
    }


def test_the_cli_keeps_its_times() -> None:
    printed = _printed(InstanceOut.of(_instance()).model_dump())
    assert isinstance(printed, dict)
    assert printed["id"] == str(ID) and printed["hourly_cost_cents"] == 1.5
    assert printed["first_seen_at"] == "2026-11-23T08:30:00+00:00"
    assert "extra" not in printed


def test_a_cluster_detail_lists_its_members_after_its_own_fields() -> None:
    detail = InstanceDetail.with_members(_instance("c"), [_instance("m1"), _instance("m2")])
    dumped = detail.model_dump()
    assert list(dumped)[-1] == "members" and list(dumped)[:-1] == list(InstanceOut.model_fields)
    assert [m["name"] for m in dumped["members"]] == ["m1", "m2"]
