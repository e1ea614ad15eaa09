"""Logging: the service's handler and format, and redaction of secrets from every log record."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .schema import one_of, setting

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False
REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@dataclass(frozen=True)
class LoggingSettings:
    """Logs."""

    level: str = setting("INFO", "Log level.", check=one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    json: bool = setting(False, "Write every log line (gunicorn's too) as a JSON object in ECS field names.")
    requests: bool = setting(True, "Write one line per API request.")


def printable(text: str) -> str:
    """Control characters escaped, so a field cannot forge a line of its own in a log or reach a
    terminal as an escape sequence."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _may_hold_secret(record: logging.LogRecord) -> bool:
    """Whether the formatted message could contain a secret, without formatting it: numbers cannot,
    strings are searched; anything else (an exception, an object) is formatted to be sure."""
    parts = [record.msg] if isinstance(record.msg, str) else [str(record.msg)]
    args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
    for arg in args:
        if isinstance(arg, (int, float)):
            continue
        parts.append(arg if isinstance(arg, str) else str(arg))
    return any(secret in part for part in parts for secret in _secrets)


def install_redaction(secrets: Iterable[str]) -> None:
    """Remove these secrets from every log record made in this process, whatever logger makes it.

    A record factory (not a handler filter) is used so records from any library and any
    handler - gunicorn's, the root logger's, a test's capture - are covered.
    """
    global _installed
    with _lock:
        _secrets.update(secret for secret in secrets if secret)
        if _installed:
            return
        _installed = True
        make_record = logging.getLogRecordFactory()

        def redacting_factory(*args, **kwargs):
            record = make_record(*args, **kwargs)
            if not _secrets:
                return record
            if _may_hold_secret(record):
                try:
                    message = record.getMessage()
                except Exception:  # a malformed call; logging reports it when the record is emitted
                    return record
                cleaned = redact(message)
                if cleaned != message:
                    record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                # Formatters use exc_text when it is set, so the traceback is redacted once, here.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            return record

        logging.setLogRecordFactory(redacting_factory)


# The request line's fields, and gunicorn's access-log atoms, in Elastic Common Schema names.
_ECS = {
    "path": ("url", "path"),
    "client_ip": ("client", "ip"),
    "request_id": ("http", "request", "id"),
    "status": ("http", "response", "status_code"),
    "op": ("messenger", "op"),
    "result": ("messenger", "result"),
    "error": ("messenger", "error"),
    "detail": ("messenger", "detail"),
}
_ACCESS_ATOMS = {
    "h": ("client", "ip"),
    "m": ("http", "request", "method"),
    "U": ("url", "path"),
    "s": ("http", "response", "status_code"),
    "B": ("http", "response", "body", "bytes"),
    "a": ("user_agent", "original"),
}


def _put(entry: dict, path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        entry = entry.setdefault(part, {})
    entry[path[-1]] = value


class JsonFormatter(logging.Formatter):
    """One JSON object per line, in Elastic Common Schema (ECS) field names: the service's lines,
    gunicorn's own and its access log alike (deploy/gunicorn.conf.py uses it for them)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "log": {"level": record.levelname.lower(), "logger": record.name},
            "message": record.getMessage(),
            "process": {"pid": record.process},
            "ecs": {"version": "8.11.0"},
        }
        for key, value in vars(record).items():
            if key in _STANDARD:
                continue
            if key == "duration_ms":
                _put(entry, ("event", "duration"), int(float(value) * 1e6))  # ECS: nanoseconds
            else:
                _put(entry, _ECS.get(key, ("labels", key)), value)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            for atom, path in _ACCESS_ATOMS.items():
                value = record.args.get(atom, "-")
                if value != "-":
                    _put(entry, path, int(value) if atom in "sB" and str(value).isdigit() else value)
        if record.exc_info:
            _put(entry, ("error", "stack_trace"), record.exc_text or redact(self.formatException(record.exc_info)))
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    _messenger = True

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(level: str, as_json: bool) -> None:
    """Give the service's loggers one stderr handler (gunicorn captures stderr), once per process."""
    # No log line here uses the caller's file and line, or the process name: skip looking them up
    # (the logging documentation's own advice for speed).
    logging._srcfile = None
    logging.logMultiprocessing = False
    logger = logging.getLogger("app")
    logger.setLevel(level)
    text_format = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    formatter: logging.Formatter = JsonFormatter() if as_json else logging.Formatter(text_format)
    for handler in logger.handlers:
        if getattr(handler, "_messenger", False):
            handler.setFormatter(formatter)
            return
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False


def wants_json(environ: Mapping[str, str]) -> bool:
    """Whether the operator asked for JSON logs (``logging.json``), read without the rest of the
    configuration - for the one line a start that failed on the configuration writes."""
    raw = environ.get("MESSENGER_LOGGING_JSON")
    if raw is not None:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    path = environ.get("MESSENGER_CONFIG")
    if not path:
        return False
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle).get("logging")
    except (OSError, ValueError):
        return False
    return isinstance(table, dict) and table.get("json") is True


def failure_line(message: str, environ: Mapping[str, str]) -> str:
    """The one line a failed start writes: a CRITICAL record as JsonFormatter makes it when JSON logs
    were asked for (a log pipeline reads every line as JSON), else the message itself."""
    if not wants_json(environ):
        return message
    record = logging.LogRecord("app", logging.CRITICAL, __file__, 0, message, None, None)
    return JsonFormatter().format(record)
