"""Forge webhooks, the HTTP half: the routes, body limits and the order of the checks.

Parsing and authentication are pure functions in :mod:`daemon.summit.webhooks.verify`; this
module reads the request, applies them in the order that tells an unauthenticated caller
nothing, and hands an authenticated push to summit.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiohttp import web

from daemon.summit.webhooks.verify import (
    DEFAULT_MAX_BODY,
    GITEA_PATH,
    GITHUB_PATH,
    GITLAB_PATH,
    Delivery,
    EventKind,
    Forge,
    OnPush,
    RepoIndex,
    SeenDelivery,
    WebhookError,
    WebhookRepo,
    parse_body,
    parse_delivery,
    verify,
)
from events.errors import CairnError

log = structlog.get_logger("cairn.summit.webhooks")

class _TooLarge(Exception):
    pass


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (before reading it) anything announced or found over ``limit``.

    Reads the stream itself, so the limit holds whatever ``client_max_size`` the
    application was given."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)




def _answer(code: int, **body: str) -> web.Response:
    return web.json_response(body, status=code)


class WebhookReceiver:
    """The handlers behind :func:`webhook_routes`; one instance per summit."""

    def __init__(
        self,
        repos: Sequence[WebhookRepo],
        on_push: OnPush,
        seen_delivery: SeenDelivery,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.index = RepoIndex(repos)
        self.on_push = on_push
        self.seen_delivery = seen_delivery
        self.max_body = max_body

    async def github(self, request: web.Request) -> web.Response:
        return await self.receive(request, Forge.GITHUB)

    async def gitea(self, request: web.Request) -> web.Response:
        return await self.receive(request, Forge.GITEA)

    async def gitlab(self, request: web.Request) -> web.Response:
        return await self.receive(request, Forge.GITLAB)

    async def receive(self, request: web.Request, forge: Forge) -> web.Response:
        """Size, JSON, repository, signature; then what the delivery asks for."""
        try:
            body = await read_limited(request, self.max_body)
        except _TooLarge:
            return _answer(413, error=f"the body exceeds the limit of {self.max_body} bytes")
        try:
            payload = parse_body(body, request.headers.get("Content-Type", "application/json"))
        except WebhookError as exc:
            return _answer(400, error=str(exc))
        delivery = parse_delivery(forge, request.headers, payload, body)
        candidates = self.index.match(delivery.repo_ids)
        if not candidates:
            log.info(
                "webhook.unknown_repository",
                forge=delivery.forge,
                delivery=delivery.delivery_id,
                identifiers=delivery.repo_ids[:4],
            )
            return _answer(202, status="ignored")
        trusted = [r for r in candidates if verify(forge, r, request.headers, body)]
        if not trusted:
            log.warning(
                "webhook.refused",
                forge=delivery.forge,
                delivery=delivery.delivery_id,
                repositories=[r.name for r in candidates],
                reason="bad or missing signature, or no secret configured",
            )
            return _answer(401, error="bad or missing signature")
        return await self._authenticated(delivery, trusted)

    async def _authenticated(self, delivery: Delivery, trusted: list[WebhookRepo]) -> web.Response:
        if delivery.kind is EventKind.PING:
            return _answer(200, status="pong")
        reason = _ignore_reason(delivery, trusted)
        if reason is not None:
            log.info(
                "webhook.ignored",
                forge=delivery.forge,
                delivery=delivery.delivery_id,
                reason=reason,
            )
            return _answer(202, status="ignored", reason=reason)
        targets = [r for r in trusted if r.branch == delivery.branch]
        if await self.seen_delivery(delivery.delivery_id):
            return _answer(200, status="duplicate")
        assert delivery.after is not None  # _ignore_reason refused pushes without one
        try:
            for repo in targets:
                await self.on_push(repo.name, delivery.after, delivery.delivery_id)
        except CairnError as exc:  # summit cannot take it now; the poll will find the commit
            log.error("webhook.push_failed", delivery=delivery.delivery_id, error=str(exc))
            return _answer(503, error=f"summit could not record the push: {exc}")
        log.info(
            "webhook.accepted",
            forge=delivery.forge,
            delivery=delivery.delivery_id,
            repositories=[r.name for r in targets],
            commit=delivery.after,
        )
        return _answer(202, status="accepted")


def _ignore_reason(delivery: Delivery, trusted: Sequence[WebhookRepo]) -> str | None:
    """Why an authenticated delivery asks summit for nothing; None when it is a wanted push."""
    if delivery.kind is not EventKind.PUSH:
        return f"event {delivery.event!r} is not a push"
    if delivery.branch is None:
        return f"{delivery.ref!r} is not a branch"
    if delivery.deleted or delivery.after is None:
        return f"branch {delivery.branch!r} was deleted or names no commit"
    if not any(r.branch == delivery.branch for r in trusted):
        watched = sorted({r.branch for r in trusted})
        return f"push to branch {delivery.branch!r}; watched: {', '.join(watched)}"
    return None


def webhook_routes(
    repos: Sequence[WebhookRepo],
    on_push: OnPush,
    seen_delivery: SeenDelivery,
    max_body: int = DEFAULT_MAX_BODY,
) -> list[web.RouteDef]:
    """``POST /api/v1/webhooks/{github,gitea,gitlab}`` for ``app.add_routes(...)``.

    ``on_push(repo_name, commit, delivery_id)`` runs for every watched repository the push
    is for, after the delivery was authenticated and found new; ``seen_delivery(id)``
    records the id and says whether it was already there. If ``on_push`` raises a
    ``CairnError`` the forge gets 503 with the reason (anything else: 500), and the delivery
    stays recorded: the poll finds the commit anyway (or record the id in ``on_push``'s own
    transaction and make ``seen_delivery`` a pure check)."""
    receiver = WebhookReceiver(repos, on_push, seen_delivery, max_body)
    return [
        web.post(GITHUB_PATH, receiver.github),
        web.post(GITEA_PATH, receiver.gitea),
        web.post(GITLAB_PATH, receiver.gitlab),
    ]


class MemoryDeliveries:
    """An in-memory ``seen_delivery`` (tests, and a summit without a database)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def __call__(self, delivery_id: str) -> bool:
        if delivery_id in self.seen:
            return True
        self.seen.add(delivery_id)
        return False
