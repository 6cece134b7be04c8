"""Dashboard sessions: a cookie only the token's holder could have made, that expires, and a
CSRF token bound to it; a bearer token works without either."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from daemon.summit.web.guard import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    admitted,
    csrf_token,
    new_session,
    session_id,
)

TOKEN = "s3cret"


def request(cookie: str | None = None, **headers: str):  # type: ignore[no-untyped-def]
    if cookie is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    return make_mocked_request("POST", "/api/v1/dispatch/pause", headers=headers)


def test_a_session_made_with_the_token_is_valid_until_it_expires() -> None:
    cookie = new_session(TOKEN, now=1000.0)
    sid = session_id(request(cookie), TOKEN, now=1000.0 + SESSION_MAX_AGE)
    assert sid is not None and cookie.startswith(sid)
    assert session_id(request(cookie), TOKEN, now=1001.0 + SESSION_MAX_AGE) is None
    assert session_id(request(cookie), "another token", now=1000.0) is None
    forged = cookie.replace(cookie.split("-", 1)[0], "999", 1)
    assert session_id(request(forged), TOKEN, now=1000.0) is None


def test_a_session_needs_its_csrf_token_a_bearer_does_not() -> None:
    cookie = new_session(TOKEN)
    sid = session_id(request(cookie), TOKEN)
    assert sid is not None
    assert not admitted(request(cookie), TOKEN)
    assert admitted(request(cookie, **{CSRF_HEADER: csrf_token(TOKEN, sid)}), TOKEN)
    assert admitted(request(cookie), TOKEN, form_csrf=csrf_token(TOKEN, sid))
    other = session_id(request(new_session(TOKEN)), TOKEN)
    assert other is not None
    assert not admitted(request(cookie, **{CSRF_HEADER: csrf_token(TOKEN, other)}), TOKEN)
    assert admitted(request(Authorization=f"Bearer {TOKEN}"), TOKEN)
    assert not admitted(request(Authorization="Bearer nope"), TOKEN)
    assert not admitted(request(Authorization=f"Bearer {TOKEN}"), "")
