"""Small HTTP helpers of the web chat: JSON in and out, the same-origin check.

Request JSON is bounded: at most `MAX_JSON_BYTES` (declared or sent), nested at most
`MAX_JSON_DEPTH` deep, numbers finite (no `Infinity`, `NaN` or `1e999`). Anything else is
a 400 (413 when too big) with one line, before a handler sees it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

MAX_JSON_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415/413/400 for anything else."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    raw = await read_at_most(request, MAX_JSON_BYTES)
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise web.HTTPBadRequest(text="malformed JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    if _depth(body) > MAX_JSON_DEPTH:
        raise web.HTTPBadRequest(text="JSON nested too deep")
    return body


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is declared or found longer than `limit`."""
    declared = request.content_length or 0
    if declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _depth(value: object, level: int = 1) -> int:
    """How deeply `value` nests (a flat object is 1); stops counting past the limit."""
    if level > MAX_JSON_DEPTH:
        return level
    children: list[object] = []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    return max([level, *(_depth(c, level + 1) for c in children if isinstance(c, dict | list))])


def same_origin(request: web.Request) -> bool:
    """True without an `Origin` header or when it names this host; `null` is refused."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host
