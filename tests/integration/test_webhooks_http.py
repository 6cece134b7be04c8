"""Forge webhooks over real HTTP on 127.0.0.1.

The GitHub bodies are the real push and ping examples of the ``@octokit/webhooks-examples``
npm package, fetched with ``npm pack`` into pytest's cache (nothing from it is kept in the
repository); the test signs them. Gitea, Forgejo and GitLab bodies are written here with the
fields those forges send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from daemon.summit.webhooks.http import MemoryDeliveries, webhook_routes
from daemon.summit.webhooks.verify import (
    GITEA_PATH,
    GITHUB_PATH,
    GITLAB_PATH,
    WebhookRepo,
)
from events.errors import CairnError

EXAMPLES_PACKAGE = "@octokit/webhooks-examples@7"
GITHUB_SECRET = "github-hook-secret"
GITEA_SECRET = "gitea-hook-secret"
GITLAB_TOKEN = "gitlab-hook-token"
MAX_BODY = 256 * 1024


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the npm registry is required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(f"cannot fetch {EXAMPLES_PACKAGE} with npm: {reason}")


@pytest.fixture(scope="session")
def octokit_examples(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """Every ``push`` and ``ping`` example of every GitHub flavour in the package, by event."""
    cache = getattr(request.config, "cache", None)
    where = (
        cache.mkdir("octokit-webhooks-examples")
        if cache is not None
        else tmp_path_factory.mktemp("octokit")
    )
    tarballs = sorted(Path(where).glob("octokit-webhooks-examples-*.tgz"))
    if not tarballs:
        if shutil.which("npm") is None:
            _unavailable("npm is not installed")
        try:
            done = subprocess.run(
                ["npm", "pack", EXAMPLES_PACKAGE, "--pack-destination", str(where)],
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable("npm pack took more than 90 s (registry unreachable?)")
        if done.returncode != 0:
            _unavailable(f"npm pack failed: {done.stderr.strip()[-500:]}")
        tarballs = sorted(Path(where).glob("octokit-webhooks-examples-*.tgz"))
        assert tarballs, f"npm pack wrote no tarball into {where}: {done.stdout}"
    found: dict[str, list[dict[str, Any]]] = {"push": [], "ping": []}
    seen: set[str] = set()
    with tarfile.open(tarballs[-1]) as tar:
        for member in tar.getmembers():
            if not member.name.endswith("/index.json"):
                continue
            extracted = tar.extractfile(member)
            assert extracted is not None
            for event in json.load(extracted):
                for example in event["examples"] if event["name"] in found else ():
                    key = json.dumps(example, sort_keys=True)
                    if key not in seen:
                        seen.add(key)
                        found[event["name"]].append(example)
    assert found["push"] and found["ping"], "the package no longer has push/ping examples"
    return found


@dataclass
class Summit:
    """What the routes talk to: a recorded on_push and an in-memory delivery log."""

    url: str
    pushes: list[tuple[str, str, str]] = field(default_factory=list)
    deliveries: MemoryDeliveries = field(default_factory=MemoryDeliveries)

    async def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url + path, data=body, headers={"Content-Type": "application/json", **headers}
            ) as response,
        ):
            return response.status, await response.json()


@asynccontextmanager
async def serve(repos: list[WebhookRepo]) -> AsyncIterator[Summit]:
    summit = Summit("")

    async def on_push(repo: str, commit: str, delivery: str) -> None:
        summit.pushes.append((repo, commit, delivery))

    app = web.Application()
    app.add_routes(webhook_routes(repos, on_push, summit.deliveries, max_body=MAX_BODY))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    summit.url = f"http://127.0.0.1:{port}"
    try:
        yield summit
    finally:
        await runner.cleanup()


def github_headers(body: bytes, secret: str, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/abc",
    }


def _watched_branch(example: dict[str, Any]) -> str:
    ref = example["ref"]
    if ref.startswith("refs/heads/"):
        return str(ref.removeprefix("refs/heads/"))
    return str(example["repository"].get("default_branch") or "main")


def github_repos(examples: list[dict[str, Any]]) -> list[WebhookRepo]:
    """One watched repository per (URL, branch) the examples name, from their own fields."""
    repos: dict[tuple[str, str], WebhookRepo] = {}
    for example in examples:
        repository = example["repository"]
        key = (repository["clone_url"], _watched_branch(example))
        repos.setdefault(
            key,
            WebhookRepo(
                f"{repository['full_name']}@{key[1]}#{len(repos)}",
                (repository["clone_url"],),
                key[1],
                github_secret=GITHUB_SECRET,
            ),
        )
    return list(repos.values())


async def test_octokit_push_examples_signed_are_accepted_and_wrong_signature_refused(
    octokit_examples: dict[str, list[dict[str, Any]]],
) -> None:
    examples = octokit_examples["push"]
    repos = github_repos(examples)
    by_key = {(r.urls[0], r.branch): r for r in repos}
    branch_pushes = 0
    async with serve(repos) as summit:
        for example in examples:
            body = json.dumps(example).encode()
            wrong = github_headers(body, "not-the-secret")
            assert await summit.post(GITHUB_PATH, body, wrong) == (
                401,
                {"error": "bad or missing signature"},
            )
            unsigned = {k: v for k, v in wrong.items() if k != "X-Hub-Signature-256"}
            assert (await summit.post(GITHUB_PATH, body, unsigned))[0] == 401
            assert summit.pushes == []

        for example in examples:
            body = json.dumps(example).encode()
            headers = github_headers(body, GITHUB_SECRET)
            status, answer = await summit.post(GITHUB_PATH, body, headers)
            repo = by_key[(example["repository"]["clone_url"], _watched_branch(example))]
            if example["ref"].startswith("refs/heads/") and not example["deleted"]:
                branch_pushes += 1
                assert (status, answer) == (202, {"status": "accepted"})
                assert summit.pushes[-1] == (
                    repo.name,
                    example["after"],
                    headers["X-GitHub-Delivery"],
                )
            else:  # authenticated, but a tag or a deletion asks summit for nothing
                assert status == 202 and answer["status"] == "ignored", answer
                assert "not a branch" in answer["reason"] or "deleted" in answer["reason"]
        assert branch_pushes >= 1, "the package has no branch push example any more"
        assert len(summit.pushes) == branch_pushes


async def test_octokit_ping_examples_answer_200_when_signed(
    octokit_examples: dict[str, list[dict[str, Any]]],
) -> None:
    pings = octokit_examples["ping"]
    with_repo = [p for p in pings if "repository" in p]
    repos = [
        WebhookRepo(f"r{i}", (p["repository"]["html_url"],), "main", github_secret=GITHUB_SECRET)
        for i, p in enumerate(with_repo)
    ]
    async with serve(repos) as summit:
        for ping in pings:
            body = json.dumps(ping).encode()
            status, answer = await summit.post(
                GITHUB_PATH, body, github_headers(body, GITHUB_SECRET, "ping")
            )
            if "repository" in ping:
                assert (status, answer) == (200, {"status": "pong"})
                bad = github_headers(body, "wrong", "ping")
                assert (await summit.post(GITHUB_PATH, body, bad))[0] == 401
            else:  # an organisation hook names no repository, so no secret to check it with
                assert (status, answer) == (202, {"status": "ignored"})
        assert summit.pushes == []


def gitea_push(branch: str = "main", after: str = "5" * 40) -> dict[str, Any]:
    owner = {
        "id": 2,
        "login": "distro",
        "full_name": "",
        "email": "distro@noreply.gitea.example",
        "avatar_url": "https://gitea.example/avatars/2",
        "username": "distro",
    }
    commit = {
        "id": after,
        "message": "nano: update to 8.2\n",
        "url": f"https://gitea.example/distro/recipes/commit/{after}",
        "author": {"name": "Ann", "email": "ann@example.org", "username": "ann"},
        "committer": {"name": "Ann", "email": "ann@example.org", "username": "ann"},
        "verification": None,
        "timestamp": "2024-05-01T10:00:00Z",
        "added": [],
        "removed": [],
        "modified": ["n/nano/stone.yaml"],
    }
    return {
        "ref": f"refs/heads/{branch}",
        "before": "4" * 40,
        "after": after,
        "compare_url": f"https://gitea.example/distro/recipes/compare/{'4' * 40}...{after}",
        "commits": [commit],
        "total_commits": 1,
        "head_commit": commit,
        "repository": {
            "id": 7,
            "owner": owner,
            "name": "recipes",
            "full_name": "distro/recipes",
            "description": "",
            "private": False,
            "fork": False,
            "html_url": "https://gitea.example/distro/recipes",
            "ssh_url": "git@gitea.example:distro/recipes.git",
            "clone_url": "https://gitea.example/distro/recipes.git",
            "default_branch": "main",
            "created_at": "2024-01-01T00:00:00Z",
        },
        "pusher": owner,
        "sender": owner,
    }


def gitlab_push(branch: str = "main", after: str = "9" * 40) -> dict[str, Any]:
    project = {
        "id": 15,
        "name": "recipes",
        "description": "",
        "namespace": "distro",
        "web_url": "https://gitlab.example/distro/recipes",
        "git_ssh_url": "git@gitlab.example:distro/recipes.git",
        "git_http_url": "https://gitlab.example/distro/recipes.git",
        "path_with_namespace": "distro/recipes",
        "default_branch": "main",
        "visibility_level": 20,
        "homepage": "https://gitlab.example/distro/recipes",
        "url": "git@gitlab.example:distro/recipes.git",
        "ssh_url": "git@gitlab.example:distro/recipes.git",
        "http_url": "https://gitlab.example/distro/recipes.git",
    }
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "8" * 40,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": after,
        "user_id": 4,
        "user_name": "Ann",
        "user_username": "ann",
        "user_email": "",
        "project_id": 15,
        "project": project,
        "commits": [
            {
                "id": after,
                "message": "nano: update to 8.2",
                "title": "nano: update to 8.2",
                "timestamp": "2024-05-01T10:00:00+00:00",
                "url": f"https://gitlab.example/distro/recipes/-/commit/{after}",
                "author": {"name": "Ann", "email": "[REDACTED]"},
                "added": [],
                "modified": ["n/nano/stone.yaml"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "repository": {
            "name": "recipes",
            "url": "git@gitlab.example:distro/recipes.git",
            "description": "",
            "homepage": "https://gitlab.example/distro/recipes",
            "git_http_url": "https://gitlab.example/distro/recipes.git",
            "git_ssh_url": "git@gitlab.example:distro/recipes.git",
            "visibility_level": 20,
        },
    }


def gitea_headers(body: bytes, secret: str, *, forgejo: bool = False) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    delivery = str(uuid.uuid4())
    headers = {
        "X-Gitea-Event": "push",
        "X-Gitea-Event-Type": "push",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": signature,
        "X-GitHub-Event": "push",
        "X-Gogs-Event": "push",
    }
    if forgejo:
        headers = {
            "X-Forgejo-Event": "push",
            "X-Forgejo-Delivery": delivery,
            "X-Forgejo-Signature": signature,
            **headers,
        }
    return headers


def gitlab_headers(token: str | None) -> dict[str, str]:
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example",
        "User-Agent": "GitLab/17.0.0",
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return headers


REPOS = [
    # each spelled differently from what the forge sends: matching is by host and path
    WebhookRepo(
        "gitea-recipes",
        ("https://gitea.example/distro/recipes",),
        "main",
        gitea_secret=GITEA_SECRET,
    ),
    WebhookRepo(
        "gitlab-recipes",
        ("ssh://git@gitlab.example/distro/recipes.git",),
        "main",
        gitlab_token=GITLAB_TOKEN,
    ),
    WebhookRepo(
        "github-recipes", ("git@github.com:distro/recipes",), "main", github_secret=GITHUB_SECRET
    ),
]


@pytest.fixture
async def summit() -> AsyncIterator[Summit]:
    async with serve(REPOS) as running:
        yield running


async def test_gitea_and_forgejo_pushes_accepted_and_refused(summit: Summit) -> None:
    body = json.dumps(gitea_push()).encode()
    for forgejo in (False, True):
        wrong = gitea_headers(body, "wrong", forgejo=forgejo)
        assert (await summit.post(GITEA_PATH, body, wrong))[0] == 401
        # the right secret under GitHub's header name is not Gitea's authentication
        github_style = {
            k: v for k, v in gitea_headers(body, GITEA_SECRET).items() if "Signature" not in k
        }
        github_style["X-Hub-Signature-256"] = (
            "sha256=" + gitea_headers(body, GITEA_SECRET)["X-Gitea-Signature"]
        )
        assert (await summit.post(GITEA_PATH, body, github_style))[0] == 401
        assert summit.pushes == [] or forgejo
        good = gitea_headers(body, GITEA_SECRET, forgejo=forgejo)
        assert await summit.post(GITEA_PATH, body, good) == (202, {"status": "accepted"})
        delivery = good["X-Gitea-Delivery"]
        assert summit.pushes[-1] == ("gitea-recipes", "5" * 40, delivery)
    assert len(summit.pushes) == 2


async def test_gitlab_pushes_accepted_and_refused(summit: Summit) -> None:
    body = json.dumps(gitlab_push()).encode()
    for token in (None, "", "wrong", GITLAB_TOKEN + "x"):
        assert (await summit.post(GITLAB_PATH, body, gitlab_headers(token)))[0] == 401
    assert summit.pushes == []
    headers = gitlab_headers(GITLAB_TOKEN)
    assert await summit.post(GITLAB_PATH, body, headers) == (202, {"status": "accepted"})
    assert summit.pushes == [("gitlab-recipes", "9" * 40, headers["X-Gitlab-Event-UUID"])]
    # a tag push is authenticated and ignored
    tag = gitlab_push() | {"object_kind": "tag_push", "ref": "refs/tags/v1"}
    tag_body = json.dumps(tag).encode()
    status, answer = await summit.post(GITLAB_PATH, tag_body, gitlab_headers(GITLAB_TOKEN))
    assert (status, answer["status"]) == (202, "ignored")
    assert len(summit.pushes) == 1


async def test_a_forge_cannot_use_another_forges_secret(summit: Summit) -> None:
    body = json.dumps(gitea_push()).encode()  # names the Gitea-watched repository
    forged = github_headers(body, GITEA_SECRET)
    assert (await summit.post(GITHUB_PATH, body, forged))[0] == 401
    assert summit.pushes == []


async def test_duplicate_delivery_runs_on_push_once(summit: Summit) -> None:
    body = json.dumps(gitea_push()).encode()
    headers = gitea_headers(body, GITEA_SECRET)
    assert (await summit.post(GITEA_PATH, body, headers))[1] == {"status": "accepted"}
    assert await summit.post(GITEA_PATH, body, headers) == (200, {"status": "duplicate"})
    assert len(summit.pushes) == 1
    # without a delivery header the body's hash is the id: a resend is still a duplicate
    plain = {k: v for k, v in gitlab_headers(GITLAB_TOKEN).items() if "UUID" not in k}
    gl_body = json.dumps(gitlab_push(after="7" * 40)).encode()
    assert (await summit.post(GITLAB_PATH, gl_body, plain))[1] == {"status": "accepted"}
    assert (await summit.post(GITLAB_PATH, gl_body, plain))[1] == {"status": "duplicate"}
    assert [p[1] for p in summit.pushes] == ["5" * 40, "7" * 40]


async def test_push_to_another_branch_is_202_and_does_nothing(summit: Summit) -> None:
    body = json.dumps(gitea_push(branch="feature")).encode()
    status, answer = await summit.post(GITEA_PATH, body, gitea_headers(body, GITEA_SECRET))
    assert (status, answer["status"]) == (202, "ignored")
    assert "feature" in answer["reason"]
    # not even authenticated: 401 first, the branch is not disclosed
    assert (await summit.post(GITEA_PATH, body, gitea_headers(body, "x")))[0] == 401
    assert summit.pushes == [] and summit.deliveries.seen == set()


async def test_unknown_repository_is_202_signed_or_not(summit: Summit) -> None:
    push = gitea_push()
    push["repository"] |= {
        "full_name": "someone/else",
        "clone_url": "https://gitea.example/someone/else.git",
        "ssh_url": "git@gitea.example:someone/else.git",
        "html_url": "https://gitea.example/someone/else",
    }
    body = json.dumps(push).encode()
    for headers in (gitea_headers(body, GITEA_SECRET), {}):
        assert await summit.post(GITEA_PATH, body, headers) == (202, {"status": "ignored"})
    assert summit.pushes == []


async def test_malformed_json_is_400_and_oversized_bodies_413(summit: Summit) -> None:
    for bad in (b'{"ref": ', b"[]", b"\xff"):
        status, answer = await summit.post(GITEA_PATH, bad, gitea_headers(bad, GITEA_SECRET))
        assert status == 400 and "JSON" in answer["error"]
    huge = json.dumps(gitea_push() | {"padding": "x" * MAX_BODY}).encode()
    assert (await summit.post(GITEA_PATH, huge, gitea_headers(huge, GITEA_SECRET)))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(8):
            yield b" " * (MAX_BODY // 4)

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            summit.url + GITLAB_PATH,
            data=chunks(),
            headers=gitlab_headers(GITLAB_TOKEN),
        ) as response,
    ):
        assert response.status == 413
    assert summit.pushes == []


async def test_ping_answers_200_only_when_authenticated(summit: Summit) -> None:
    ping = {
        "zen": "Keep it logically awesome.",
        "hook_id": 1,
        "repository": {
            "full_name": "distro/recipes",
            "clone_url": "https://github.com/distro/recipes.git",
        },
    }
    body = json.dumps(ping).encode()
    good = github_headers(body, GITHUB_SECRET, event="ping")
    assert await summit.post(GITHUB_PATH, body, good) == (200, {"status": "pong"})
    assert (await summit.post(GITHUB_PATH, body, github_headers(body, "x", "ping")))[0] == 401
    # Gitea tests a hook with a body that is not a push
    gitea_ping = {"repository": gitea_push()["repository"]}
    gbody = json.dumps(gitea_ping).encode()
    headers = {k: v for k, v in gitea_headers(gbody, GITEA_SECRET).items() if "Event" not in k}
    assert await summit.post(GITEA_PATH, gbody, headers) == (200, {"status": "pong"})
    assert summit.pushes == [] and summit.deliveries.seen == set()


async def test_form_encoded_github_delivery(summit: Summit) -> None:
    payload = {
        "ref": "refs/heads/main",
        "after": "3" * 40,
        "repository": {"clone_url": "https://github.com/distro/recipes.git"},
    }
    body = b"payload=" + quote(json.dumps(payload), safe="").encode()
    headers = github_headers(body, GITHUB_SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert await summit.post(GITHUB_PATH, body, headers) == (202, {"status": "accepted"})
    assert summit.pushes == [("github-recipes", "3" * 40, headers["X-GitHub-Delivery"])]


async def test_a_push_summit_cannot_record_answers_503() -> None:
    async def failing(repo: str, commit: str, delivery: str) -> None:
        raise CairnError("the database is read-only")

    app = web.Application()
    app.add_routes(webhook_routes(REPOS, failing, MemoryDeliveries()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        body = json.dumps(gitlab_push()).encode()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{GITLAB_PATH}"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=gitlab_headers(GITLAB_TOKEN)) as response,
        ):
            assert response.status == 503
            assert "read-only" in (await response.json())["error"]
    finally:
        await runner.cleanup()
