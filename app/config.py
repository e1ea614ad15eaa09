"""Configuration: defaults, then a TOML file, then environment variables, then (for tests and embedding)
overrides by dotted name; then the start-up gate (``app.startup``) decides whether the service may start.

Every key has a dotted name (``section.key``) that is its place in the TOML file, and can be set
from the environment as ``MESSENGER_<SECTION>_<KEY>`` in upper case (``otp.digits`` ->
``MESSENGER_OTP_DIGITS``); a few well-known keys also have a short name (``MESIBO_APP_TOKEN``,
``MESIBO_API_URL``, ``DATABASE_URL``, ``OTP_SECRET``). Secret keys can instead be read from a file
named by ``<ENV NAME>_FILE``. An unknown section, key or ``MESSENGER_*`` variable is an error that
names it and the nearest known one.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from . import plugins
from .schema import ConfigError, Key, coerce, keys_of, nearest
from .senders.router import check_channels, routed_names
from .settings import SECTIONS, Settings
from .startup import gate

# Variables with the MESSENGER_ prefix that are not keys.
OTHER_VARIABLES = frozenset({"MESSENGER_CONFIG", "MESSENGER_INSTANCE_PATH"})


class _Schema:
    """The known sections and their keys: the service's own, the built-in plug-ins' (read on first
    need, so an unused plug-in is never imported) and the chosen plug-ins'."""

    def __init__(self, chosen: list[type]):
        self.classes: dict[str, type] = dict(SECTIONS)
        self._lazy = dict(plugins.BUILT_IN_SECTIONS)
        for cls in chosen:
            declared = plugins.section_of(cls)
            if declared:
                self.classes[declared[0]] = declared[1]
                self._lazy.pop(declared[0], None)
        self._keys: dict[str, dict[str, Key]] = {}

    def names(self) -> list[str]:
        return [*self.classes, *self._lazy]

    def keys(self, section: str) -> dict[str, Key]:
        if section not in self._keys:
            if section in self._lazy:
                declared = plugins.section_of(plugins.load_object(self._lazy.pop(section), section))
                assert declared is not None, section
                self.classes[section] = declared[1]
            self._keys[section] = {key.name: key for key in keys_of(section, self.classes[section])}
        return self._keys[section]

    def all_keys(self) -> list[Key]:
        return [key for section in self.names() for key in self.keys(section).values()]

    def find(self, dotted: str) -> Key:
        """The key named ``section.key`` (a plug-in's section has a dot of its own)."""
        section, _, name = dotted.rpartition(".")
        if section not in self.names():
            top = dotted.split(".")[0]
            if top in SECTIONS and "." in section:
                problem = f"unknown section [{section}]"
            elif top in SECTIONS:
                known = self.keys(top)
                problem = f"unknown key in [{top}]{nearest(name, known)}; known: {', '.join(known)}"
            else:
                problem = f"unknown section [{top}]{nearest(top, SECTIONS)}"
            raise ConfigError(dotted, problem)
        known = self.keys(section)
        if name not in known:
            raise ConfigError(dotted, f"unknown key in [{section}]{nearest(name, known)}; known: {', '.join(known)}")
        return known[name]

    def by_variable(self, variable: str) -> tuple[Key, bool] | None:
        """The key a variable sets, and whether it names a file to read the value from."""
        for section in list(self._lazy):
            if variable.startswith("MESSENGER_" + section.replace(".", "_").upper() + "_"):
                self.keys(section)
        for key in (key for section in list(self.classes) for key in self.keys(section).values()):
            if variable in key.env_names:
                return key, False
            if key.secret and variable.removesuffix("_FILE") in key.env_names and variable.endswith("_FILE"):
                return key, True
        return None


def _flatten(table: Mapping[str, Any], known: _Schema, prefix: str = "") -> dict[str, Any]:
    """TOML tables to dotted names; a table inside a section is a plug-in's section."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        section = dotted.rpartition(".")[0]
        is_key = section in known.names() and name in known.keys(section)
        if isinstance(value, dict) and not is_key:
            flat.update(_flatten(value, known, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("MESSENGER_CONFIG", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("MESSENGER_CONFIG", f"{path} is not valid TOML: {exc}") from None


def _read_secret_file(key: Key, variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(key.dotted, f"cannot read {variable}={path}: {exc.strerror}") from None


def _chosen(name: str, table: Mapping[str, Any], environ: Mapping[str, str], overrides: Mapping[str, Any]) -> str:
    """The value of sender.name or auth.method before the rest is read (it decides which sections exist)."""
    section, key = name.split(".")
    value = overrides.get(name) or environ.get("MESSENGER_" + name.replace(".", "_").upper())
    if value is None:
        value = (table.get(section) or {}).get(key) if isinstance(table.get(section), dict) else None
    default = getattr(SECTIONS[section](), key)
    return str(value).strip() if isinstance(value, str) and value.strip() else default


def load(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    instance_path: str = "instance",
) -> Settings:
    """Read, check and decide: the Settings the service starts with, or ConfigError naming the key."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    path = environ.get("MESSENGER_CONFIG", "")
    table = _read_file(path) if path else {}
    sender_cls = plugins.sender_class(_chosen("sender.name", table, environ, overrides))
    method_cls = plugins.method_class(_chosen("auth.method", table, environ, overrides))
    raw_routes = overrides.get("sender.routes") or environ.get("MESSENGER_SENDER_ROUTES")
    if raw_routes is None and isinstance(table.get("sender"), dict):
        raw_routes = table["sender"].get("routes")
    routed = {name: plugins.sender_class(name) for name in routed_names(raw_routes)}  # their sections count
    known = _Schema([sender_cls, *routed.values(), method_cls])

    values: dict[str, dict[str, Any]] = {}
    for dotted, value in _flatten(table, known).items():
        key = known.find(dotted)
        values.setdefault(key.section, {})[key.attr] = coerce(key, value, f"the configuration file {path}")
    from_env: dict[str, tuple[int, Key, str, Any]] = {}
    for variable, raw in environ.items():
        found = known.by_variable(variable)
        if found is None:
            if variable.startswith("MESSENGER_") and variable not in OTHER_VARIABLES:
                names = [name for key in known.all_keys() for name in key.env_names]
                raise ConfigError(variable, f"unknown environment variable{nearest(variable, names)}")
            continue
        key, is_file = found
        rank = key.env_names.index(variable.removesuffix("_FILE") if is_file else variable)
        if key.dotted not in from_env or rank < from_env[key.dotted][0]:  # a short name wins over the long one
            from_env[key.dotted] = (rank, key, variable, _read_secret_file(key, variable, raw) if is_file else raw)
    for _, key, variable, raw in from_env.values():
        values.setdefault(key.section, {})[key.attr] = coerce(key, raw, f"environment variable {variable}")
    for dotted, value in overrides.items():
        key = known.find(dotted)
        values.setdefault(key.section, {})[key.attr] = coerce(key, value, "the overrides")

    def build(section: str) -> Any:
        given = values.get(section, {})
        for key in known.keys(section).values():
            problem = key.check(given.get(key.attr, key.default)) if key.check else None
            if problem:
                raise ConfigError(key.dotted, problem)
        return known.classes[section](**given)

    core = {name: build(name) for name in SECTIONS}
    sections = {name: build(name) for name in known.names() if name not in SECTIONS and name in values}
    for cls in (sender_cls, *routed.values(), method_cls):
        declared = plugins.section_of(cls)
        if declared:
            options = sections.setdefault(declared[0], build(declared[0]))
            if hasattr(options, "validate"):
                options.validate()
    if getattr(method_cls, "channel", "") == "sms":  # the phone logins: the apps choose a channel
        check_channels(core["sender"], sender_cls, routed)
    settings = gate(core, sections, environ, instance_path, sender_cls, method_cls)
    return dataclasses.replace(settings, route_classes=routed) if routed else settings


def all_keys() -> list[Key]:
    """Every key the service knows: its own sections and the built-in plug-ins' sections."""
    known = _Schema([])
    return [key for section in [*SECTIONS, *sorted(plugins.BUILT_IN_SECTIONS)] for key in known.keys(section).values()]
