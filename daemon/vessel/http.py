"""Serve the repository read-only over HTTP: indexes, signatures, the public key, the pool.

Why a hand-written route instead of ``add_static``: the tree has symlinks (``current``)
that must be followed while nothing outside the repository root may ever be reached, and
dot-entries (``.tmp-…`` directories being written) must stay invisible. Files are sent with
:class:`aiohttp.web.FileResponse`, which answers ``Range`` (206), ``If-None-Match`` /
``If-Modified-Since`` (304) and ``If-Range`` from a strong-enough ``ETag`` (mtime and size;
every served file is immutable once named, except ``minisign.pub`` which is replaced
atomically). Generation and pool files are marked immutable for caches; ``current/`` and the
key are ``no-cache`` so clients revalidate and see a new generation at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from daemon.formats import layout

_TYPES = {
    ".json": "application/json",
    ".zst": "application/zstd",
    ".minisig": "text/plain; charset=utf-8",
    ".pub": "text/plain; charset=utf-8",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
ROOT_KEY = web.AppKey("vessel_root", Path)


def make_app(root: Path, mounts: Sequence[Callable[[web.Application], None]] = ()
             ) -> web.Application:
    """An application serving ``root`` (vessel's ``STATE/repo``) read-only; ``mounts`` add
    routes (``/metrics``, ``/healthz``) before the repository's catch-all."""
    app = web.Application()
    app[ROOT_KEY] = root.resolve()
    for mount in mounts:
        mount(app)
    app.router.add_get("/{path:.*}", _serve)  # GET also answers HEAD
    return app


async def _serve(request: web.Request) -> web.StreamResponse:
    root = request.app[ROOT_KEY]
    relative = request.match_info["path"]
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or "\x00" in p for p in parts):
        raise web.HTTPNotFound()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise web.HTTPNotFound()
    headers = {
        "Content-Type": _TYPES.get(target.suffix, "application/octet-stream"),
        "Cache-Control": "no-cache" if _mutable(parts) else _IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(target, headers=headers)


def _mutable(parts: list[str]) -> bool:
    """Whether the URL can name different bytes over time (so caches must revalidate)."""
    return (layout.CURRENT in parts or parts == [layout.PUBLIC_KEY]
            or parts in (["environments", "index.json"], ["environments", "index.json.minisig"]))
