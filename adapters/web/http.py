"""Small HTTP helpers of the web chat: JSON in and out, the same-origin check."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415/400 for anything else."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="malformed JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def same_origin(request: web.Request) -> bool:
    """True without an `Origin` header or when it names this host; `null` is refused."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host
