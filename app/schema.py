"""The building blocks of the settings: a setting with its documentation, its checks, and how a value
from the TOML file or the environment becomes the setting's type.

A section of the configuration is a frozen dataclass whose fields are made with ``setting()``; the
loader (``app.config``) walks those dataclasses, so one table documents, types, checks and generates
``config.example.toml`` and the README's key table. No other module of the service is imported here.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
import json
import typing
from collections.abc import Callable, Iterable
from typing import Any

Check = Callable[[Any], "str | None"]


class ConfigError(Exception):
    """A configuration value is wrong; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, message: str):
        super().__init__(f"configuration key {key!r}: {message}")
        self.key = key


def setting(
    default: Any,
    doc: str,
    *,
    env: Iterable[str] = (),
    secret: bool = False,
    check: Check | None = None,
    name: str | None = None,
) -> Any:
    """A field of a settings section: its default, a one-line doc, short environment names, a check,
    and the key's name when it cannot be the attribute's (``from`` is a Python keyword)."""
    meta = {"doc": doc, "env": tuple(env), "secret": secret, "check": check, "name": name}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Key:
    """One setting as the loader sees it."""

    section: str
    name: str
    kind: type
    default: Any
    doc: str
    aliases: tuple[str, ...] = ()
    secret: bool = False
    check: Check | None = None
    attr: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return "MESSENGER_" + self.dotted.replace(".", "_").upper()

    @property
    def env_names(self) -> tuple[str, ...]:
        return (*self.aliases, self.env)


_KINDS = {bool: bool, int: int, float: float, str: str, list: list, dict: dict}


def keys_of(section: str, cls: type) -> list[Key]:
    """The keys of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    keys = []
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        kind = _KINDS.get(typing.get_origin(hint) or hint)
        if kind is None:
            raise TypeError(f"{cls.__name__}.{spec.name}: settings are bool, int, float, str, list or dict")
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc,operator]
        meta = spec.metadata
        keys.append(
            Key(
                section,
                meta.get("name") or spec.name,
                kind,
                default,
                meta.get("doc", ""),
                meta.get("env", ()),
                meta.get("secret", False),
                meta.get("check"),
                spec.name,
            )
        )
    return keys


def coerce(key: Key, value: Any, source: str) -> Any:
    """Turn a TOML or environment value into the key's type, or raise ConfigError."""
    kind = key.kind
    from_env = source.startswith("environment")
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower() if from_env else None
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off", ""):
                return False
        elif kind in (int, float) and not isinstance(value, bool):
            if from_env or isinstance(value, int) or (kind is float and isinstance(value, float)):
                return kind(value)
        elif kind is str and isinstance(value, str):
            return value.strip()
        elif kind is str and isinstance(value, bool):  # development = false in TOML: the word it means
            return "true" if value else "false"
        elif kind is list:
            if from_env:
                return [part.strip() for part in str(value).split(",") if part.strip()]
            if isinstance(value, list):
                return [str(item) for item in value]
        elif kind is dict:
            if from_env:
                value = json.loads(value) if str(value).strip() else {}
            if isinstance(value, dict):
                return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(key.dotted, f"expected {_describe(kind)}, got {value!r} from {source}")


def _describe(kind: type) -> str:
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }[kind]


def nearest(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


# -- checks -------------------------------------------------------------------------------------


def between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}, got {value}"

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def optional_url(value: str) -> str | None:
    return url(value) if value else None


def template(value: str) -> str | None:
    """A message template must render with the fields it is given, or every login would fail later."""
    try:
        value.format(code="123456", app_name="App", minutes=5)
    except (KeyError, IndexError, ValueError) as exc:
        return f"is not a valid template ({type(exc).__name__}: {exc}); use {{code}}, {{app_name}}, {{minutes}}"
    return None


def day_end(value: Any) -> float:
    """An end date (``YYYY-MM-DD`` string or TOML date) as Unix seconds at the end of that day (UTC)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp()
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() + 86400


PLACEHOLDERS = frozenset({"", "changeme", "change-me", "your-app-token", "xxx", "secret"})


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS or value.strip().startswith("<")
