"""Reading a request's fields: JSON, relaxed JSON, a form or multipart, and query-string fields."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pyjson5
from flask import request
from werkzeug.exceptions import HTTPException

from .errors import ApiError

# The relaxed reading is for people typing curl (the tutorial's body is 65 bytes). pyjson5 is
# compiled (Cython): 3 µs for that body where the pure-Python json5 took 0.7 ms, ~0.3 ms for 11 KiB
# of made-up object, and it refuses deep nesting itself; bodies past this size are not meant for it.
RELAXED_MAX_BYTES = 16384


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object: strict, then relaxed (unquoted keys, single quotes); None when neither."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
        if len(raw) <= RELAXED_MAX_BYTES:
            try:
                value = pyjson5.decode(raw.decode("utf-8"))
            except Exception:  # garbage, bad UTF-8, too deep: any failure means "not JSON"
                value = None
    else:
        if not isinstance(value, dict):
            raise ApiError("BADREQUEST", detail="the body is JSON but not an object")
    return value if isinstance(value, dict) else None


def _form(raw: bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "=" not in text:
        return None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=100)
    except ValueError:
        return None
    return dict(pairs) or None


def read_fields(limit: int) -> dict[str, Any]:
    """The request's fields. Body first; query-string fields fill in what the body lacks."""
    environ = request.environ
    query = request.args.to_dict() if environ.get("QUERY_STRING") else {}
    length = request.content_length
    if length is not None and length > limit:
        _discard_body(length)
        raise ApiError("BADREQUEST", detail="the body is too large")
    multipart = environ.get("CONTENT_TYPE", "")[:10].lower() == "multipart/"
    try:
        if length is not None and not multipart:
            # The common case, read straight from the server: the length is known and within the limit.
            raw = environ["wsgi.input"].read(length)
        else:
            # Cached, so a multipart form can still be parsed from it; MAX_CONTENT_LENGTH bounds a body
            # sent without Content-Length (chunked), and werkzeug's 413 is answered with the envelope.
            raw = request.get_data(cache=True)
    except HTTPException:
        raise
    except Exception as exc:  # a malformed chunked body, a client gone mid-body: the server's own errors
        raise ApiError("BADREQUEST", detail=f"the body could not be read ({type(exc).__name__})") from None
    if len(raw) > limit:
        raise ApiError("BADREQUEST", detail="the body is too large")
    if not raw.strip():
        return query
    body = _json_object(raw)
    if body is None and multipart and request.mimetype == "multipart/form-data":
        body = request.form.to_dict() or None
    if body is None:
        body = _form(raw)
    if body is None:
        raise ApiError("BADREQUEST", detail="the body is neither JSON nor a form")
    return {**query, **body} if query else body


# Reading (and dropping) a moderately large refused body lets a proxy finish sending it and then
# read our answer; closing on a half-sent body makes nginx answer 502 instead.
DISCARD_MAX_BYTES = 1 << 20


def _discard_body(length: int) -> None:
    if length > DISCARD_MAX_BYTES:
        return
    stream = request.environ["wsgi.input"]
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        length -= len(chunk)
