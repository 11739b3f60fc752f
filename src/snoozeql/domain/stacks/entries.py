"""The entry types a template and an override are made of, with their validation.

Each type parses the forms a user writes (Compose's short syntax, a YAML mapping, the
JSON the API receives) into one normalised value; its fields are its plain form (what
the store keeps, ``api/schemas/stacks.py`` answers with). Each also exposes the ``key``
the merge rules match entries by, so the merge code never has to know how an entry is
spelled.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from snoozeql.domain.errors import ValidationError

__all__ = [
    "ConfigFile",
    "EnvVar",
    "Healthcheck",
    "Label",
    "PortMapping",
    "VolumeMount",
    "parse_domain",
]

PROTOCOLS = ("tcp", "udp")
VOLUME_TYPES = ("volume", "bind", "tmpfs")
MAX_CONFIG_BYTES = 256 * 1024

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms|us|ns))+$")
_OCTAL_MODE = re.compile(r"^0?[0-7]{3}$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_LABEL_PREFIX = "snoozeql."


def _expect_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _reject_unknown(data: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{what}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )


def _port_number(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a number from 1 to 65535, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        if isinstance(value, str) and "-" in value:
            raise ValidationError(
                f"{what} {value!r} is a range; list each port separately (1-65535)"
            )
        raise ValidationError(f"{what} must be a number from 1 to 65535, got {value!r}")
    if not 1 <= value <= 65535:
        raise ValidationError(f"{what} must be from 1 to 65535, got {value}")
    return value


def _absolute_path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValidationError(f"{what} must be an absolute path (starting with '/'), got {value!r}")
    if "\x00" in value or "\n" in value:
        raise ValidationError(f"{what} {value!r} contains a forbidden character")
    norm = posixpath.normpath(value)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


# ---------------------------------------------------------------------------- ports


def _bind_address(host_ip: str) -> str:
    return ipaddress.ip_address(host_ip).compressed if host_ip else "0.0.0.0"


@dataclass(frozen=True)
class PortMapping:
    """A published port: ``[host_ip:][host_port:]container_port[/protocol]``.

    ``host_port`` ``None`` means Docker picks a free host port; ``host_ip`` "" means all
    interfaces. Merge key (Compose): (host ip, host port, container port, protocol).
    """

    container_port: int
    host_port: int | None = None
    host_ip: str = ""
    protocol: str = "tcp"

    def __post_init__(self) -> None:
        _port_number(self.container_port, "container port")
        if self.host_port is not None:
            _port_number(self.host_port, "host port")
        if self.protocol not in PROTOCOLS:
            raise ValidationError(f"port protocol must be tcp or udp, got {self.protocol!r}")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise ValidationError(
                    f"port host IP {self.host_ip!r} is not an IP address"
                ) from None

    @property
    def key(self) -> tuple[str, int | None, int, str]:
        """The socket this mapping binds, as Compose sees it: no host IP means every
        IPv4 interface, so ``18700:80`` and ``0.0.0.0:18700:80`` are one mapping, and
        IPv6 addresses compare in their compressed form."""
        return (_bind_address(self.host_ip), self.host_port, self.container_port,
                self.protocol)

    def short(self) -> str:
        """Compose short syntax, e.g. ``127.0.0.1:8080:80/tcp``."""
        parts: list[str] = []
        if self.host_ip:
            ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
            parts.append(ip)
            parts.append(str(self.host_port) if self.host_port is not None else "")
        elif self.host_port is not None:
            parts.append(str(self.host_port))
        parts.append(str(self.container_port))
        return ":".join(parts) + f"/{self.protocol}"

    @classmethod
    def parse(cls, value: Any) -> PortMapping:
        if isinstance(value, PortMapping):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(container_port=_port_number(value, "container port"))
        if isinstance(value, str):
            return cls._parse_short(value.strip())
        data = _expect_mapping(value, "a port")
        # Accept both our names and Compose's long syntax names.
        aliases = {"target": "container_port", "published": "host_port"}
        data = {aliases.get(k, k): v for k, v in data.items()}
        _reject_unknown(data, ("host_ip", "host_port", "container_port", "protocol"), "port")
        if "container_port" not in data:
            raise ValidationError("a port needs a container_port")
        host_port = data.get("host_port")
        return cls(
            container_port=_port_number(data["container_port"], "container port"),
            host_port=None if host_port in (None, "") else _port_number(host_port, "host port"),
            host_ip=str(data.get("host_ip") or ""),
            protocol=str(data.get("protocol") or "tcp").lower(),
        )

    @classmethod
    def _parse_short(cls, text: str) -> PortMapping:
        if not text:
            raise ValidationError("a port must not be empty")
        protocol = "tcp"
        if "/" in text:
            text, protocol = text.rsplit("/", 1)
            protocol = protocol.lower()
        host_ip = ""
        if text.startswith("["):
            end = text.find("]")
            if end < 0 or text[end + 1 : end + 2] != ":":
                raise ValidationError(f"port {text!r}: write an IPv6 host IP as [addr]:host:ctr")
            host_ip, text = text[1:end], text[end + 2 :]
            parts = text.split(":")
            if len(parts) != 2:
                raise ValidationError(f"port {text!r} is not [ip]:host:container[/protocol]")
            host, ctr = parts
        else:
            parts = text.split(":")
            if len(parts) == 1:
                host, ctr = "", parts[0]
            elif len(parts) == 2:
                host, ctr = parts
            elif len(parts) == 3:
                host_ip, host, ctr = parts
            else:
                raise ValidationError(
                    f"port {text!r} is not [host_ip:][host_port:]container_port[/protocol]"
                )
        return cls(
            container_port=_port_number(ctr, "container port"),
            host_port=_port_number(host, "host port") if host else None,
            host_ip=host_ip,
            protocol=protocol,
        )


# -------------------------------------------------------------------------- volumes


@dataclass(frozen=True)
class VolumeMount:
    """A mount at ``target``: a named volume, a bind mount or a tmpfs. Merge key: target."""

    target: str
    source: str | None = None
    type: str = "volume"
    read_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _absolute_path(self.target, "volume target"))
        if self.type not in VOLUME_TYPES:
            raise ValidationError(
                f"volume type must be one of {', '.join(VOLUME_TYPES)}, got {self.type!r}"
            )
        if self.type == "volume" and self.source is not None:
            if not _VOLUME_NAME.match(self.source):
                raise ValidationError(
                    f"volume name {self.source!r} must start with a letter or digit and "
                    "contain only letters, digits, '_', '.' and '-'"
                )
        if self.type == "bind":
            if not self.source or not self.source.startswith(("/", "./", "../", "~")):
                raise ValidationError(
                    f"bind mount source {self.source!r} must be a path starting with "
                    "'/', './', '../' or '~'"
                )
        if self.type == "tmpfs" and self.source:
            raise ValidationError("a tmpfs mount has no source")

    @property
    def key(self) -> str:
        return self.target

    @classmethod
    def parse(cls, value: Any) -> VolumeMount:
        if isinstance(value, VolumeMount):
            return value
        if isinstance(value, str):
            return cls._parse_short(value.strip())
        data = _expect_mapping(value, "a volume")
        _reject_unknown(data, ("type", "source", "target", "read_only"), "volume")
        if "target" not in data:
            raise ValidationError("a volume needs a target path")
        source = data.get("source") or None
        vtype = data.get("type")
        if vtype is None:
            vtype = "bind" if source and source.startswith(("/", ".", "~")) else "volume"
        read_only = data.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ValidationError(f"volume read_only must be true or false, got {read_only!r}")
        return cls(target=data["target"], source=source, type=str(vtype), read_only=read_only)

    @classmethod
    def _parse_short(cls, text: str) -> VolumeMount:
        parts = text.split(":")
        if len(parts) == 1:
            return cls(target=parts[0])
        if len(parts) > 3:
            raise ValidationError(f"volume {text!r} is not source:target[:ro|rw]")
        source, target = parts[0], parts[1]
        read_only = False
        if len(parts) == 3:
            if parts[2] not in ("ro", "rw"):
                raise ValidationError(f"volume {text!r}: the access mode must be ro or rw")
            read_only = parts[2] == "ro"
        vtype = "bind" if source.startswith(("/", ".", "~")) else "volume"
        return cls(target=target, source=source, type=vtype, read_only=read_only)


# ------------------------------------------------------------------ env vars, labels


def _scalar_text(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValidationError(f"{what} must be a string, number or boolean, got {type(value).__name__}")


@dataclass(frozen=True)
class EnvVar:
    """An environment variable. ``value`` ``None`` passes the host's value through (Compose).

    ``secret`` values are shown as ``***`` by every redacted view; the store keeps them
    encrypted. Merge key: the variable name.
    """

    key: str
    value: str | None
    secret: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _ENV_KEY.match(self.key):
            raise ValidationError(
                f"environment variable name {self.key!r} is not valid: use letters, digits "
                "and '_', not starting with a digit"
            )
        if self.value is not None and "\x00" in self.value:
            raise ValidationError(f"environment variable {self.key} contains a NUL character")

    def shown_value(self, reveal_secrets: bool = False) -> str | None:
        if self.secret and not reveal_secrets and self.value is not None:
            return "***"
        return self.value

    @classmethod
    def parse(cls, value: Any) -> EnvVar:
        if isinstance(value, EnvVar):
            return value
        if isinstance(value, str):
            key, sep, val = value.partition("=")
            return cls(key=key, value=val if sep else None)
        data = _expect_mapping(value, "an environment variable")
        _reject_unknown(data, ("key", "value", "secret"), "environment variable")
        return cls.from_pair(data.get("key"), data.get("value"), data.get("secret", False))

    @classmethod
    def from_pair(cls, key: Any, value: Any, secret: Any = False) -> EnvVar:
        """From ``KEY: value`` or ``KEY: {value: ..., secret: true}``."""
        if isinstance(value, dict):
            _reject_unknown(value, ("value", "secret"), f"environment variable {key}")
            secret = value.get("secret", secret)
            value = value.get("value")
        if not isinstance(secret, bool):
            raise ValidationError(f"environment variable {key}: secret must be true or false")
        text = None if value is None else _scalar_text(value, f"environment variable {key}")
        return cls(key=str(key) if key is not None else "", value=text, secret=secret)


@dataclass(frozen=True)
class Label:
    """A container label. Keys under ``snoozeql.`` are ours (identity labels). Key: key."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _LABEL_KEY.match(self.key):
            raise ValidationError(
                f"label key {self.key!r} is not valid: use letters, digits, '.', '_', '-' "
                "and '/', starting and ending with a letter or digit"
            )
        if self.key.lower().startswith(RESERVED_LABEL_PREFIX):
            raise ValidationError(
                f"label key {self.key!r} is reserved: SnoozeQL sets the "
                f"'{RESERVED_LABEL_PREFIX}*' labels itself"
            )

    @classmethod
    def parse(cls, value: Any) -> Label:
        if isinstance(value, Label):
            return value
        if isinstance(value, str):
            key, _, val = value.partition("=")
            return cls(key=key, value=val)
        data = _expect_mapping(value, "a label")
        _reject_unknown(data, ("key", "value"), "label")
        return cls.from_pair(data.get("key"), data.get("value", ""))

    @classmethod
    def from_pair(cls, key: Any, value: Any) -> Label:
        text = "" if value is None else _scalar_text(value, f"label {key}")
        return cls(key=str(key) if key is not None else "", value=text)


# -------------------------------------------------------------------------- domains


def parse_domain(value: Any) -> str:
    """A host name this service answers on (a SnoozeQL concept), lower-cased."""
    if not isinstance(value, str):
        raise ValidationError(f"a domain must be a string, got {type(value).__name__}")
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(p) for p in labels):
        raise ValidationError(
            f"domain {value!r} is not a valid host name: dot-separated labels of letters, "
            "digits and hyphens (for example 'app.localhost')"
        )
    return name


# --------------------------------------------------------------------- config files


@dataclass(frozen=True)
class ConfigFile:
    """A file placed in the container at ``target`` with ``content``. Merge key: target.

    ``mode`` is an octal string such as ``"0644"``: a YAML integer would be ambiguous
    (``0644`` unquoted is read as 420), so integers are refused.
    """

    target: str
    content: str
    mode: str = "0644"

    def __post_init__(self) -> None:
        target = _absolute_path(self.target, "config file target")
        if target == "/":
            raise ValidationError("config file target must be a file path, not '/'")
        object.__setattr__(self, "target", target)
        if not isinstance(self.content, str):
            raise ValidationError(f"config file {target}: content must be text")
        if len(self.content.encode("utf-8")) > MAX_CONFIG_BYTES:
            raise ValidationError(
                f"config file {target} is larger than {MAX_CONFIG_BYTES // 1024} KiB"
            )
        if not isinstance(self.mode, str) or not _OCTAL_MODE.match(self.mode):
            raise ValidationError(
                f"config file {target}: mode must be an octal string such as '0644' "
                f"(quote it in YAML), got {self.mode!r}"
            )
        object.__setattr__(self, "mode", self.mode.rjust(4, "0"))

    @property
    def key(self) -> str:
        return self.target

    @property
    def mode_int(self) -> int:
        return int(self.mode, 8)

    @classmethod
    def parse(cls, value: Any) -> ConfigFile:
        if isinstance(value, ConfigFile):
            return value
        data = _expect_mapping(value, "a config file")
        _reject_unknown(data, ("target", "content", "mode"), "config file")
        if "target" not in data:
            raise ValidationError("a config file needs a target path")
        if "content" not in data:
            raise ValidationError(f"config file {data['target']!r} needs content")
        return cls(target=data["target"], content=data["content"], mode=data.get("mode", "0644"))


# ---------------------------------------------------------------------- healthcheck

HEALTHCHECK_FIELDS = ("test", "interval", "timeout", "start_period", "retries", "disable")
_DURATION_FIELDS = ("interval", "timeout", "start_period")


@dataclass(frozen=True)
class Healthcheck:
    """A Compose healthcheck in which every field is optional.

    A template's healthcheck and an override's patch have the same shape: a patch sets
    only the fields it changes. ``test`` is always a list (``["CMD-SHELL", "..."]`` for
    the string form) and is replaced whole by a merge, never merged element-wise.
    """

    test: tuple[str, ...] | None = None
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    retries: int | None = None
    disable: bool | None = None

    def __post_init__(self) -> None:
        if self.test is not None:
            test = self.test
            if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise ValidationError(
                    "healthcheck test must be a string or a list starting with "
                    "CMD, CMD-SHELL or NONE"
                )
            if test[0] != "NONE" and len(test) < 2:
                raise ValidationError(f"healthcheck test {list(test)!r} has no command")
            if not all(isinstance(t, str) for t in test):
                raise ValidationError("healthcheck test items must be strings")
        for name in _DURATION_FIELDS:
            val = getattr(self, name)
            if val is not None and (not isinstance(val, str) or not _DURATION.match(val)):
                raise ValidationError(
                    f"healthcheck {name} must be a duration such as '10s' or '1m30s', got {val!r}"
                )
        if self.retries is not None and (
            isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0
        ):
            raise ValidationError(
                f"healthcheck retries must be a whole number >= 0, got {self.retries!r}"
            )
        if self.disable is not None and not isinstance(self.disable, bool):
            raise ValidationError("healthcheck disable must be true or false")

    def fields_set(self) -> list[str]:
        return [f for f in HEALTHCHECK_FIELDS if getattr(self, f) is not None]

    def set_values(self) -> dict[str, Any]:
        """The fields this healthcheck (or patch) sets, by name; ``test`` as a list."""
        out: dict[str, Any] = {}
        for f in self.fields_set():
            val = getattr(self, f)
            out[f] = list(val) if f == "test" else val
        return out

    @classmethod
    def parse(cls, value: Any) -> Healthcheck:
        if isinstance(value, Healthcheck):
            return value
        data = _expect_mapping(value, "a healthcheck")
        _reject_unknown(data, HEALTHCHECK_FIELDS, "healthcheck")
        test = data.get("test")
        if isinstance(test, str):
            test_t: tuple[str, ...] | None = ("CMD-SHELL", test)
        elif isinstance(test, list | tuple):
            test_t = tuple(test)
        elif test is None:
            test_t = None
        else:
            raise ValidationError("healthcheck test must be a string or a list of strings")
        return cls(
            test=test_t,
            interval=data.get("interval"),
            timeout=data.get("timeout"),
            start_period=data.get("start_period"),
            retries=data.get("retries"),
            disable=data.get("disable"),
        )


# ------------------------------------------------------------------------ uniqueness


def unique_entries(items: list[Any], what: str) -> tuple[Any, ...]:
    """Refuse two entries with the same merge key in one list: which one wins is unclear."""
    seen: set[Any] = set()
    for item in items:
        if item.key in seen:
            shown = item.short() if isinstance(item, PortMapping) else item.key
            raise ValidationError(f"{what} {shown} is listed twice")
        seen.add(item.key)
    return tuple(items)


def unique_domains(values: list[Any]) -> tuple[str, ...]:
    """Parse host names, refusing two that name the same host: names compare
    lower-cased without a trailing dot, so ``App.localhost`` and ``app.localhost.``
    are one domain listed twice."""
    seen: dict[str, Any] = {}
    for value in values:
        name = parse_domain(value)
        if name in seen:
            first, again = seen[name], value
            same = f"{first!r} and {again!r} are" if first != again else f"{again!r} is"
            raise ValidationError(f"domain {name} is listed twice: {same} the same host name")
        seen[name] = value
    return tuple(seen)
