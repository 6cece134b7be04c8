"""Webhook authentication and parsing as pure functions: every forge's scheme, every way a
header can be missing or wrong, and what a delivery is read as."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote

import pytest
from multidict import CIMultiDict

from daemon.summit.webhooks.http import MemoryDeliveries
from daemon.summit.webhooks.verify import (
    Delivery,
    EventKind,
    Forge,
    RepoIndex,
    WebhookError,
    WebhookRepo,
    normalise_identifier,
    parse_body,
    parse_delivery,
    repo_identifiers,
    verify,
    verify_gitea,
    verify_github,
    verify_gitlab,
)

BODY = b'{"ref": "refs/heads/main", "after": "' + b"a" * 40 + b'"}'
SECRET = "s3cret-\u00e9"


def hexmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature_needs_prefix_right_secret_and_exact_body() -> None:
    good = {"X-Hub-Signature-256": "sha256=" + hexmac(SECRET, BODY)}
    assert verify_github(good, BODY, SECRET)
    assert not verify_github(good, BODY + b" ", SECRET)
    assert not verify_github(good, BODY, "other")
    assert not verify_github({"X-Hub-Signature-256": hexmac(SECRET, BODY)}, BODY, SECRET)
    assert not verify_github({}, BODY, SECRET)
    # the SHA-1 header alone is not enough, and no secret configured authenticates nothing
    sha1 = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert not verify_github({"X-Hub-Signature": sha1}, BODY, SECRET)
    assert not verify_github({"X-Hub-Signature-256": "sha256=" + hexmac("", BODY)}, BODY, "")
    assert not verify_github({"X-Hub-Signature-256": "sha256=\u00ff"}, BODY, SECRET)


def test_gitea_and_forgejo_signatures_are_bare_hex_and_all_present_must_match() -> None:
    sig = hexmac(SECRET, BODY)
    assert verify_gitea({"X-Gitea-Signature": sig}, BODY, SECRET)
    assert verify_gitea({"X-Forgejo-Signature": sig}, BODY, SECRET)
    assert verify_gitea({"X-Forgejo-Signature": sig, "X-Gitea-Signature": sig}, BODY, SECRET)
    assert not verify_gitea(
        {"X-Forgejo-Signature": sig, "X-Gitea-Signature": "0" * 64}, BODY, SECRET
    )
    assert not verify_gitea({"X-Gitea-Signature": "sha256=" + sig}, BODY, SECRET)
    assert not verify_gitea({"X-Hub-Signature-256": "sha256=" + sig}, BODY, SECRET)
    assert not verify_gitea({}, BODY, SECRET)
    assert not verify_gitea({"X-Gitea-Signature": hexmac("", BODY)}, BODY, "")


def test_gitlab_token_is_the_shared_secret() -> None:
    assert verify_gitlab({"X-Gitlab-Token": "tok"}, BODY, "tok")
    assert not verify_gitlab({"X-Gitlab-Token": "tok2"}, BODY, "tok")
    assert not verify_gitlab({"X-Gitlab-Token": ""}, BODY, "tok")
    assert not verify_gitlab({}, BODY, "tok")
    assert not verify_gitlab({"X-Gitlab-Token": ""}, BODY, "")


def test_verify_uses_the_repositorys_secret_for_the_forge() -> None:
    repo = WebhookRepo("r", ("o/r",), "main", github_secret="g", gitea_secret="t", gitlab_token="l")
    assert verify(Forge.GITHUB, repo, {"X-Hub-Signature-256": "sha256=" + hexmac("g", BODY)}, BODY)
    assert not verify(
        Forge.GITHUB, repo, {"X-Hub-Signature-256": "sha256=" + hexmac("t", BODY)}, BODY
    )
    assert verify(Forge.FORGEJO, repo, {"X-Forgejo-Signature": hexmac("t", BODY)}, BODY)
    assert verify(Forge.GITLAB, repo, {"X-Gitlab-Token": "l"}, BODY)
    shown = repr(WebhookRepo("r", ("o/r",), "main", "GH-SECRET", "GT-SECRET", "GL-TOKEN"))
    assert "SECRET" not in shown and "TOKEN" not in shown  # secrets stay out of logs


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("https://github.com/Codertocat/Hello-World.git", "github.com/codertocat/hello-world"),
        ("https://github.com/Codertocat/Hello-World", "github.com/codertocat/hello-world"),
        ("git@github.com:Codertocat/Hello-World.git", "github.com/codertocat/hello-world"),
        ("ssh://git@gitea.example:2222/org/repo.git", "gitea.example/org/repo"),
        ("http://user@gitlab.example/group/sub/proj/", "gitlab.example/group/sub/proj"),
        ("Codertocat/Hello-World", "codertocat/hello-world"),
    ],
)
def test_identifier_spellings_normalise_to_host_and_path(spelling: str, expected: str) -> None:
    assert normalise_identifier(spelling) == expected


def test_parse_body_refuses_what_is_not_a_json_object() -> None:
    assert parse_body(b'{"a": 1}') == {"a": 1}
    for bad in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""):
        with pytest.raises(WebhookError):
            parse_body(bad)
    form = b"payload=" + quote('{"ref": "refs/heads/x"}').encode()
    assert parse_body(form, "application/x-www-form-urlencoded") == {"ref": "refs/heads/x"}
    with pytest.raises(WebhookError, match="payload"):
        parse_body(b"other=1", "application/x-www-form-urlencoded")


def test_github_push_is_read_with_branch_commit_and_all_repository_spellings() -> None:
    payload = {
        "ref": "refs/heads/main",
        "after": "b" * 40,
        "repository": {
            "full_name": "Org/Repo",
            "clone_url": "https://github.com/Org/Repo.git",
            "ssh_url": "git@github.com:Org/Repo.git",
            "html_url": "https://github.com/Org/Repo",
        },
    }
    headers = CIMultiDict({"x-github-event": "push", "x-github-delivery": "d-1"})
    delivery = parse_delivery(Forge.GITHUB, headers, payload, b"{}")
    assert delivery == Delivery(
        Forge.GITHUB,
        "d-1",
        EventKind.PUSH,
        "push",
        ("github.com/org/repo", "org/repo"),
        "refs/heads/main",
        "b" * 40,
        False,
    )
    assert delivery.branch == "main"


def test_tags_deletes_pings_and_other_events() -> None:
    tag = parse_delivery(
        Forge.GITHUB, {"X-GitHub-Event": "push"}, {"ref": "refs/tags/v1", "after": "c" * 40}, b"x"
    )
    assert tag.kind is EventKind.PUSH and tag.branch is None
    deleted = parse_delivery(
        Forge.GITHUB,
        {"X-GitHub-Event": "push"},
        {"ref": "refs/heads/gone", "after": "0" * 40, "deleted": True},
        b"",
    )
    assert deleted.deleted and deleted.branch == "gone"
    ping = parse_delivery(Forge.GITHUB, {"X-GitHub-Event": "ping"}, {"zen": "z"}, b"")
    assert ping.kind is EventKind.PING
    issues = parse_delivery(Forge.GITHUB, {"X-GitHub-Event": "issues"}, {"action": "x"}, b"")
    assert issues.kind is EventKind.OTHER
    # no event header: a body without a ref is how Gitea/GitLab test a hook
    bare = parse_delivery(Forge.GITEA, {}, {"repository": {}}, b"")
    assert bare.kind is EventKind.PING


def test_delivery_id_from_each_forge_or_the_body_hash() -> None:
    body = b'{"ref": "refs/heads/main"}'
    cases = [
        (Forge.GITHUB, {"X-GitHub-Delivery": "gh"}, "gh"),
        (Forge.GITEA, {"X-Gitea-Delivery": "gt"}, "gt"),
        (Forge.GITEA, {"X-Forgejo-Delivery": "fj"}, "fj"),
        (Forge.GITLAB, {"X-Gitlab-Event-UUID": "gl"}, "gl"),
        (Forge.GITLAB, {"Idempotency-Key": "ik"}, "ik"),
        (Forge.GITLAB, {}, "sha256:" + hashlib.sha256(body).hexdigest()),
    ]
    for forge, headers, expected in cases:
        assert parse_delivery(forge, headers, {}, body).delivery_id == expected
    huge = parse_delivery(Forge.GITHUB, {"X-GitHub-Delivery": "x" * 1000}, {}, body)
    assert huge.delivery_id == "sha256:" + hashlib.sha256(b"x" * 1000).hexdigest()


def test_forgejo_headers_on_the_gitea_route_are_recorded_as_forgejo() -> None:
    headers = CIMultiDict({"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f"})
    delivery = parse_delivery(Forge.GITEA, headers, {"ref": "refs/heads/main"}, b"")
    assert (delivery.forge, delivery.kind, delivery.delivery_id) == (
        Forge.FORGEJO,
        EventKind.PUSH,
        "f",
    )


def test_gitlab_project_identifiers_and_system_hooks() -> None:
    payload = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "project": {
            "path_with_namespace": "group/proj",
            "git_http_url": "https://gitlab.example/group/proj.git",
            "git_ssh_url": "git@gitlab.example:group/proj.git",
            "web_url": "https://gitlab.example/group/proj",
        },
    }
    assert repo_identifiers(Forge.GITLAB, payload) == ("gitlab.example/group/proj", "group/proj")
    system = parse_delivery(Forge.GITLAB, {"X-Gitlab-Event": "System Hook"}, payload, b"")
    assert system.kind is EventKind.PUSH
    # lenient reading: fields of the wrong type are ignored, not fatal
    odd = {"repository": "github.com/x/y", "ref": 5, "after": ["a"]}
    lenient = parse_delivery(Forge.GITHUB, {"X-GitHub-Event": "push"}, odd, b"")
    assert (lenient.repo_ids, lenient.ref, lenient.after) == ((), None, None)


def test_repo_index_matches_any_spelling_and_several_watchers() -> None:
    main = WebhookRepo("main", ("https://github.com/o/r.git",), "main")
    dev = WebhookRepo("dev", ("git@github.com:o/r", "o/r"), "dev")
    other = WebhookRepo("other", ("https://github.com/o/other",), "main")
    index = RepoIndex([main, dev, other])
    assert index.match(["github.com/o/r"]) == [main, dev]
    assert index.match(["o/r"]) == [dev]
    assert index.match(["github.com/nobody/r", "x"]) == []


async def test_memory_deliveries_records_and_reports_duplicates() -> None:
    seen = MemoryDeliveries()
    assert await seen("a") is False
    assert await seen("a") is True
    assert await seen("b") is False


def test_dump_is_stable_for_signing() -> None:
    # the signature covers the raw bytes: a re-serialised body is a different body
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    sig = {"X-Hub-Signature-256": "sha256=" + hexmac("k", body)}
    assert verify_github(sig, body, "k")
    assert not verify_github(sig, json.dumps({"ref": "refs/heads/main"}, indent=1).encode(), "k")
