"""Forge webhooks, the pure half: reading deliveries and checking their authentication.

A push to a watched branch makes summit look at the repository at once.

Polling finds every commit eventually; a webhook only makes it immediate. So a webhook may
refuse or ignore anything doubtful without losing work, and it must never let an
unauthenticated caller start anything. Each forge authenticates its own way, always over the
raw body and in constant time, and a missing header is a failure (never "checked if present"):

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``;
* Gitea / Forgejo: ``X-Gitea-Signature`` / ``X-Forgejo-Signature``: bare hex HMAC-SHA256;
* GitLab: ``X-Gitlab-Token``: the shared secret itself.

The secret belongs to a repository, and which repository a delivery is about is only known
from its body, so the body is parsed (leniently) before the signature can be checked. The
order of the checks is chosen so that an unauthenticated caller learns no more than whether
a repository is watched (an unknown repository answers 202, a known one with a bad signature
401): size (413), JSON (400), repository (202), signature (401); only then is anything
else about the delivery looked at (ping 200, other event/branch/tag 202, duplicate 200,
push 202 after ``on_push`` returned).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from events.errors import CairnError

#: GitHub caps webhook payloads at 25 MB; nothing legitimate is larger.
DEFAULT_MAX_BODY = 25 * 1024 * 1024
GITHUB_PATH = "/api/v1/webhooks/github"
GITEA_PATH = "/api/v1/webhooks/gitea"
GITLAB_PATH = "/api/v1/webhooks/gitlab"

_ZERO_COMMIT = re.compile(r"^0+$")
_MAX_DELIVERY_ID = 128

#: Summit's callback: store the commit as seen and fetch at once (repo name, commit, delivery).
OnPush = Callable[[str, str, str], Awaitable[None]]
#: Check-and-record a delivery id: True when it was already seen (a redelivery).
SeenDelivery = Callable[[str], Awaitable[bool]]


class WebhookError(CairnError):
    """A delivery that cannot be read (malformed JSON, not a JSON object)."""


class Forge(StrEnum):
    GITHUB = "github"
    GITEA = "gitea"
    FORGEJO = "forgejo"
    GITLAB = "gitlab"


class EventKind(StrEnum):
    PUSH = "push"
    PING = "ping"
    OTHER = "other"


@dataclass(frozen=True)
class WebhookRepo:
    """One watched repository, from summit's configuration.

    ``urls`` are every spelling that identifies it (clone, ssh and web URLs, ``owner/name``);
    URLs are compared by host and path, so ``https://h/o/r.git`` and ``git@h:o/r`` are one.
    A forge whose secret is empty cannot authenticate deliveries for this repository.
    """

    name: str
    urls: tuple[str, ...]
    branch: str
    github_secret: str = field(default="", repr=False)
    gitea_secret: str = field(default="", repr=False)
    gitlab_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Delivery:
    """What a webhook delivery says, read before (and independently of) authentication."""

    forge: Forge
    delivery_id: str
    kind: EventKind
    event: str
    #: Normalised repository identifiers found in the body (see :func:`normalise_identifier`).
    repo_ids: tuple[str, ...]
    ref: str | None = None
    after: str | None = None
    deleted: bool = False

    @property
    def branch(self) -> str | None:
        """The branch pushed to; None for tags and anything that is not a branch."""
        if self.ref is not None and self.ref.startswith("refs/heads/"):
            return self.ref.removeprefix("refs/heads/") or None
        return None


# -- signatures ------------------------------------------------------------------------


def _hmac_hex(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()


def _same(given: str, expected: bytes) -> bool:
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected)


def verify_github(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex>`` over the raw body; False when absent."""
    given = headers.get("X-Hub-Signature-256")
    if not secret or given is None:
        return False
    return _same(given, b"sha256=" + _hmac_hex(secret, body))


def verify_gitea(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """``X-Gitea-Signature`` and/or ``X-Forgejo-Signature`` (bare hex): at least one must be
    present and every one present must match."""
    given = [
        v for k in ("X-Gitea-Signature", "X-Forgejo-Signature") if (v := headers.get(k)) is not None
    ]
    if not secret or not given:
        return False
    expected = _hmac_hex(secret, body)
    return all([_same(value, expected) for value in given])


def verify_gitlab(headers: Mapping[str, str], body: bytes, token: str) -> bool:
    """``X-Gitlab-Token`` equals the configured token (GitLab signs nothing)."""
    given = headers.get("X-Gitlab-Token")
    if not token or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def verify(forge: Forge, repo: WebhookRepo, headers: Mapping[str, str], body: bytes) -> bool:
    """Is ``body`` authenticated for ``repo`` by ``forge``'s scheme and the repo's secret?"""
    if forge is Forge.GITHUB:
        return verify_github(headers, body, repo.github_secret)
    if forge is Forge.GITLAB:
        return verify_gitlab(headers, body, repo.gitlab_token)
    return verify_gitea(headers, body, repo.gitea_secret)


# -- parsing ---------------------------------------------------------------------------


def normalise_identifier(identifier: str) -> str:
    """One spelling per repository: ``host/path`` for URLs (scheme, user, port and ``.git``
    dropped; ``git@host:path`` too), ``owner/name`` as is; lower case throughout."""
    text = identifier.strip().lower()
    scp = re.match(r"^[\w.-]+@([\w.-]+):(?!//)(.+)$", text)
    if scp:
        text = f"{scp.group(1)}/{scp.group(2)}"
    elif "://" in text:
        parts = urlsplit(text)
        text = f"{parts.hostname or ''}/{parts.path.lstrip('/')}"
    text = text.rstrip("/")
    return text.removesuffix(".git").rstrip("/")


def parse_body(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """The JSON object of a delivery (GitHub's form-encoded ``payload=`` included)."""
    text: str | bytes = body
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode(), strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookError(f"the form body cannot be decoded: {exc}") from None
        if len(form.get("payload", [])) != 1:
            raise WebhookError("a form-encoded delivery needs exactly one 'payload' field")
        text = form["payload"][0]
    try:
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # 100,000 nested arrays: no forge sends that
        raise WebhookError("the body is JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise WebhookError(f"the body is JSON but not an object ({type(payload).__name__})")
    return payload


def _strings(mapping: object, *keys: str) -> list[str]:
    if not isinstance(mapping, dict):
        return []
    return [v for k in keys if isinstance(v := mapping.get(k), str) and v]


def repo_identifiers(forge: Forge, payload: Mapping[str, Any]) -> tuple[str, ...]:
    """Every repository identifier the body carries, normalised, without duplicates."""
    found = _strings(
        payload.get("repository"),
        "clone_url",
        "ssh_url",
        "html_url",
        "full_name",
        "git_http_url",
        "git_ssh_url",
        "homepage",
        "url",
    )
    if forge is Forge.GITLAB:
        found += _strings(
            payload.get("project"),
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "path_with_namespace",
            "http_url",
            "ssh_url",
        )
    return tuple(dict.fromkeys(normalise_identifier(i) for i in found))


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    return next((v for n in names if (v := headers.get(n))), None)


def _delivery_id(headers: Mapping[str, str], names: Sequence[str], body: bytes) -> str:
    given = _first(headers, *names)
    if given is None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    if len(given) > _MAX_DELIVERY_ID or not given.isprintable():
        return "sha256:" + hashlib.sha256(given.encode("utf-8", "surrogateescape")).hexdigest()
    return given


def _kind(event: str | None, payload: Mapping[str, Any], push_events: set[str]) -> EventKind:
    """An explicit event header decides; without one, a body with a ``ref`` is a push and a
    body without one is a ping (forges test a hook with such bodies)."""
    if event is None:
        return EventKind.PUSH if "ref" in payload else EventKind.PING
    if event.lower() == "ping":
        return EventKind.PING
    return EventKind.PUSH if event.lower() in push_events else EventKind.OTHER


_DELIVERY_HEADERS = {
    Forge.GITHUB: ("X-GitHub-Delivery",),
    Forge.GITEA: ("X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery"),
    Forge.GITLAB: ("X-Gitlab-Event-UUID", "Idempotency-Key"),
}
_EVENT_HEADERS = {
    Forge.GITHUB: ("X-GitHub-Event",),
    Forge.GITEA: ("X-Forgejo-Event", "X-Gitea-Event", "X-Gogs-Event"),
    Forge.GITLAB: ("X-Gitlab-Event",),
}
_PUSH_EVENTS = {
    Forge.GITHUB: {"push"},
    Forge.GITEA: {"push"},
    # A system hook carries pushes too: its body's object_kind says so (see parse_delivery).
    Forge.GITLAB: {"push hook", "tag push hook"},
}


def parse_delivery(
    forge: Forge, headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes
) -> Delivery:
    """Read a delivery's headers and parsed body into a :class:`Delivery` (no auth here).

    ``forge`` is the route's forge; a Gitea route seeing Forgejo headers records Forgejo."""
    family = Forge.GITEA if forge is Forge.FORGEJO else forge
    if family is Forge.GITEA and any(h.lower().startswith("x-forgejo-") for h in headers):
        forge = Forge.FORGEJO
    event = _first(headers, *_EVENT_HEADERS[family])
    kind = _kind(event, payload, _PUSH_EVENTS[family])
    if family is Forge.GITLAB and payload.get("object_kind") in ("push", "tag_push"):
        kind = EventKind.PUSH
    ref = payload.get("ref")
    after = payload.get("after")
    after = after if isinstance(after, str) and after else None
    deleted = payload.get("deleted") is True or (
        after is not None and _ZERO_COMMIT.match(after) is not None
    )
    return Delivery(
        forge=forge,
        delivery_id=_delivery_id(headers, _DELIVERY_HEADERS[family], body),
        kind=kind,
        event=event or kind.value,
        repo_ids=repo_identifiers(family, payload),
        ref=ref if isinstance(ref, str) else None,
        after=after,
        deleted=deleted,
    )

class RepoIndex:
    """Watched repositories by normalised identifier (one identifier may name several
    watched repositories, say two branches of one repository)."""

    def __init__(self, repos: Sequence[WebhookRepo]) -> None:
        self._by_id: dict[str, list[WebhookRepo]] = {}
        for repo in repos:
            for identifier in dict.fromkeys(normalise_identifier(u) for u in repo.urls):
                self._by_id.setdefault(identifier, []).append(repo)

    def match(self, identifiers: Sequence[str]) -> list[WebhookRepo]:
        found: dict[str, WebhookRepo] = {}
        for identifier in identifiers:
            for repo in self._by_id.get(identifier, ()):
                found.setdefault(repo.name, repo)
        return list(found.values())
