"""The body of ``snoozeql info --json``: where this installation keeps what.

No route serves it (it describes the local installation, not the API); it lives with
the other bodies so that serialisation stays in one place.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from snoozeql.services.datadir import Info


class InfoOut(BaseModel):
    version: str
    data_dir: str
    data_dir_source: str = Field(description="default, or SNOOZEQL_DATA_DIR")
    store_url: str = Field(description="the password hidden")
    store_id: str | None
    store_error: str | None
    key_file: str
    docker_host: str
    jobs: bool
    local_databases_dir: str
    local_databases_owner: str | None = Field(description="the id of the store that owns "
                                              "the data directory's local databases")

    @classmethod
    def of(cls, i: Info) -> InfoOut:
        return cls(
            version=i.version, data_dir=str(i.data_dir), data_dir_source=i.data_dir_source,
            store_url=i.store_url, store_id=i.store_id, store_error=i.store_error,
            key_file=i.key_file, docker_host=i.docker_host, jobs=i.jobs,
            local_databases_dir=str(i.local_dir), local_databases_owner=i.local_dir_owner,
        )
