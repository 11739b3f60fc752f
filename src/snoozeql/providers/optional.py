"""Python packages some engines need that a plain install does not bring.

MongoDB's client, pymongo, is the ``mongodb`` extra (``pip install 'snoozeql[mongodb]'``):
only MongoDB instances need it, to set the first user's password, to probe and to
count connections. Without it, asking for MongoDB gets a clear refusal that names the
extra, never a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from snoozeql.domain.errors import ActionRefused

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
