"""MongoDB: ``mongod`` where installed (there is no Debian package), started with
``--auth``; its first user is created once the server runs (the "localhost exception").
On Docker the official ``mongo`` image takes user and password from its environment.

Its client, pymongo, is the optional extra ``snoozeql[mongodb]``: only MongoDB needs it,
to set the first user's password, to probe and to count connections. Without it,
asking for MongoDB gets a clear refusal that names the extra (:class:`MissingExtra`),
never a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
import shutil
import time
from pathlib import Path
from types import ModuleType

from snoozeql.domain.engines import Engine
from snoozeql.domain.errors import ActionRefused, ProviderError
from snoozeql.providers.local.base import (
    EngineDefaults,
    InstanceLayout,
    NativeSetup,
    ProbeResult,
    ServerBinaries,
)
from snoozeql.providers.local.ports import HOST, port_open
from snoozeql.providers.local.process import version_of

MONGODB_EXTRA = "snoozeql[mongodb]"


class MissingExtra(ActionRefused):
    """An optional dependency is not installed (409, exit code 1); says how to add it."""


def mongodb_missing_message(what: str = "MongoDB support") -> str:
    return (f"{what} needs the Python package pymongo, which is not installed: "
            f"install the optional extra with  pip install '{MONGODB_EXTRA}'")


def require_pymongo(what: str = "MongoDB support") -> ModuleType:
    """The ``pymongo`` module, or :class:`MissingExtra` naming the extra to install."""
    try:
        module = importlib.import_module("pymongo")
        importlib.import_module("pymongo.errors")
    except ImportError:
        raise MissingExtra(mongodb_missing_message(what)) from None
    return module


def pymongo_available() -> bool:
    try:
        require_pymongo()
    except MissingExtra:
        return False
    return True


class MongoDB(EngineDefaults):
    engine = Engine.MONGODB
    looked_for = "looked for mongod"
    client_modules = ("pymongo",)

    def require_client(self) -> None:
        require_pymongo("a MongoDB database")

    def installed(self) -> list[ServerBinaries]:
        path = shutil.which("mongod")
        if path is None:
            return []
        version = version_of([path, "--version"], r"db version v(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, Path(path), {})]

    def initialise(self, setup: NativeSetup) -> None:
        # The data directory is made empty; the password is set after the first start.
        require_pymongo("a native MongoDB (to set its password)")

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [
            str(bins.server), "--dbpath", str(layout.data), "--port", str(port),
            "--bind_ip", HOST, "--auth", "--nounixsocket",
        ]

    def after_first_start(self, port: int, password: str, timeout: float) -> None:
        """Create the first user: the "localhost exception" lets the first connection
        from 127.0.0.1 do it on a server started with --auth and no users yet."""
        require_pymongo("a native MongoDB (to set its password)")
        import pymongo
        import pymongo.errors

        deadline = time.monotonic() + timeout
        while True:
            client: pymongo.MongoClient = pymongo.MongoClient(
                host=HOST, port=port, directConnection=True, serverSelectionTimeoutMS=2000
            )
            try:
                client.admin.command(
                    "createUser",
                    self.info.default_user,
                    pwd=password,
                    roles=[{"role": "root", "db": "admin"}],
                )
                return
            except pymongo.errors.PyMongoError as exc:
                if time.monotonic() >= deadline:
                    raise ProviderError(
                        f"could not create the MongoDB user: {type(exc).__name__}"
                    ) from None
                time.sleep(0.5)
            finally:
                client.close()

    def docker_command(self, port: int, password: str) -> list[str]:
        return ["--port", str(port), "--bind_ip", HOST]

    def docker_environment(self, password: str) -> dict[str, str]:
        return {**super().docker_environment(password),
                "MONGO_INITDB_ROOT_USERNAME": self.info.default_user}

    def probe(self, host: str, port: int, user: str, password: str, timeout: float
              ) -> ProbeResult:
        """``ping``, then ``listDatabases``: ping needs no login, the second proves the
        password."""
        if not pymongo_available():
            return ProbeResult(
                False, port_open(port, host), mongodb_missing_message("the MongoDB probe")
            )
        import pymongo
        import pymongo.errors

        client: pymongo.MongoClient = pymongo.MongoClient(
            host=host, port=port, username=user, password=password, authSource="admin",
            serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000),
            directConnection=True,
        )
        try:
            client.admin.command("ping")
            client.admin.command("listDatabases", nameOnly=True)
        except pymongo.errors.OperationFailure as exc:
            return ProbeResult(False, True, f"refused: {exc.details.get('errmsg', exc)}")
        except pymongo.errors.PyMongoError as exc:
            return ProbeResult(False, False, f"no answer: {type(exc).__name__}")
        finally:
            client.close()
        return ProbeResult(True, True, "ping answered")

    def connections(self, host: str, port: int, user: str, password: str, timeout: float
                    ) -> float:
        """``serverStatus().connections.current``, minus the asking connection."""
        require_pymongo("counting MongoDB connections")
        import pymongo

        client: pymongo.MongoClient = pymongo.MongoClient(
            host=host, port=port, username=user, password=password, authSource="admin",
            serverSelectionTimeoutMS=int(timeout * 1000), directConnection=True,
        )
        try:
            status = client.admin.command("serverStatus")
        finally:
            client.close()
        return max(0.0, float(status["connections"]["current"]) - 1)


ENGINE = MongoDB()
