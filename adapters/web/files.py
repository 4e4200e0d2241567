"""The web chat's page, static files, style previews and result images.

Result images are served only to the job's owner; any other user gets 404, whether the
job exists or not.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from adapters.web import page
from adapters.web.guard import UID_KEY
from bot.queue import JobProducer
from bot.styles import StyleCatalog, preview_path

PLATFORM = "web"
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_INDEX = re.compile(r"[0-9]{1,3}", re.ASCII)
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_NO_CACHE = {"Cache-Control": "no-cache"}


class Files:
    """Handlers for everything the web chat serves that is not its JSON API."""

    def __init__(self, queue: JobProducer, catalog: StyleCatalog, max_upload_bytes: int) -> None:
        self.queue = queue
        self.catalog = catalog
        self.max_upload_bytes = max_upload_bytes
        self._static = resources.files("adapters.web").joinpath("static")

    async def index(self, request: web.Request) -> web.StreamResponse:
        body = page.render(self._static, self.max_upload_bytes)  # in the user's language
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_NO_CACHE)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = self._static.joinpath(name).read_bytes()
        return web.Response(
            body=body, content_type=_STATIC[name], charset="utf-8", headers=_NO_CACHE
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        style_id = request.match_info["style_id"]
        if style_id not in self.catalog:
            raise web.HTTPNotFound()
        path = preview_path(style_id)
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A result image, only for its owner (404 for everyone else)."""
        job_id, index_text = request.match_info["job_id"], request.match_info["index"]
        if not _INDEX.fullmatch(index_text):  # not "²", not 5000 digits: a small number
            raise web.HTTPBadRequest(text="bad image index")
        if not _JOB_ID.match(job_id):
            raise web.HTTPNotFound()
        job = await self.queue.get_job(job_id)
        uid = request[UID_KEY]
        if job is None or job.owner.platform != PLATFORM or job.owner.user_id != uid:
            raise web.HTTPNotFound()
        result = await self.queue.get_result(job_id)
        index = int(index_text)
        if result is None or index >= len(result.images):
            raise web.HTTPNotFound()
        image = result.images[index]
        headers = {"Cache-Control": "private, max-age=3600"}
        if request.query.get("download"):
            ext = {"image/png": "png", "image/jpeg": "jpg"}.get(image.mime, "bin")
            filename = f"avatar-{job.style_id}-{job.id}-{index + 1}.{ext}"
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return web.Response(body=image.data, content_type=image.mime, headers=headers)
