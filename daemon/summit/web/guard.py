"""Who may change something: the admin token, given either as ``Authorization: Bearer`` (the
CLI, scripts) or through a dashboard session.

A session is made by signing in with the token. Its cookie is ``HttpOnly`` (no script reads
it), ``SameSite=Strict`` (no other site's page sends it) and ``Secure``, and carries only a
random id, when it was issued and a MAC of both under the token: summit keeps no session
table, a session ends after :data:`SESSION_MAX_AGE` or when the token changes, and a forged
or altered cookie fails the MAC. A request made with a session must also carry the
session's CSRF token (the ``X-CSRF-Token`` header, or the ``csrf`` field of a form), which a
page of the dashboard holds and another site cannot read. All comparisons are in constant
time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from aiohttp import web

from daemon.summit.web.numbers import whole

SESSION_COOKIE = "cairn_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
#: How long a sign-in lasts (seconds).
SESSION_MAX_AGE = 12 * 3600


def _mac(token: str, purpose: str, value: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> str:
    """A fresh session cookie value for someone who gave ``token``."""
    sid = f"{int(now if now is not None else time.time())}-{secrets.token_urlsafe(18)}"
    return f"{sid}.{_mac(token, 'session', sid)}"


def session_id(request: web.Request, token: str, now: float | None = None) -> str | None:
    """The id of the request's valid, unexpired session, or ``None``."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    sid, _, mac = cookie.rpartition(".")
    if not token or not sid or not hmac.compare_digest(mac, _mac(token, "session", sid)):
        return None
    issued = sid.split("-", 1)[0]
    when = whole(issued)
    age = (now if now is not None else time.time()) - when if when is not None else -1
    return sid if 0 <= age <= SESSION_MAX_AGE else None


def csrf_token(token: str, sid: str) -> str:
    """The CSRF token of a session (derived, so nothing is stored)."""
    return _mac(token, "csrf", sid)


def signed_in_csrf(request: web.Request, token: str) -> str | None:
    """The CSRF token to put in a page's forms when its viewer is signed in, else ``None``."""
    sid = session_id(request, token)
    return None if sid is None else csrf_token(token, sid)


def bearer_ok(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def token_ok(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def admitted(request: web.Request, token: str, form_csrf: str | None = None) -> bool:
    """Whether the request may change something: the bearer token, or a session with its
    CSRF token (header, or ``form_csrf`` from a submitted form)."""
    if bearer_ok(request, token):
        return True
    sid = session_id(request, token)
    if sid is None:
        return False
    given = request.headers.get(CSRF_HEADER) or form_csrf or ""
    return hmac.compare_digest(given.encode(), csrf_token(token, sid).encode())


def set_session(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, new_session(token), max_age=SESSION_MAX_AGE,
                        path="/", secure=True, httponly=True, samesite="Strict")


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                        samesite="Strict")
