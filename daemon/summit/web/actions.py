"""The dashboard's actions: sign in with the admin token, then retry, cancel, set a priority,
pause and resume dispatch, drain and enable a builder — plain HTML forms, so they work
without JavaScript.

Signing in sets the session cookie (:mod:`daemon.summit.web.guard`); every page then knows
the session's CSRF token and puts it in each action's form, and shows the buttons only
then. Every action checks the session and the form's CSRF token, does what the API's call of
the same name does (:class:`daemon.summit.operations.Operations`), and sends the browser
back (303) to the page it came from — a path of this site, never another host.
"""

from __future__ import annotations

from aiohttp import web

from daemon.summit.operations import Operations
from daemon.summit.web.api import SUMMIT_KEY, TOKEN_KEY
from daemon.summit.web.apisteer import MAX_PRIORITY
from daemon.summit.web.dashboard import render
from daemon.summit.web.guard import (
    CSRF_FIELD,
    admitted,
    clear_session,
    set_session,
    token_ok,
)
from events.errors import CairnError

#: The largest form summit reads (a token, a CSRF token, a path, a number).
MAX_FORM = 4096


def back_to(target: str | None) -> str:
    """Where to send the browser after an action: a path of this site, else the overview."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM,
                                            actual_size=request.content_length)
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def signin_page(request: web.Request) -> web.Response:
    return render(request, "signin.html", page="signin", failed=False,
                  next=back_to(request.query.get("next")))


async def signin(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    token = request.app[TOKEN_KEY]
    if not token_ok(form.get("token", ""), token):
        return render(request, "signin.html", status=401, page="signin", failed=True,
                      next=back_to(form.get("next")))
    response = web.HTTPSeeOther(back_to(form.get("next")))
    set_session(response, token)
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    if not admitted(request, request.app[TOKEN_KEY], form.get(CSRF_FIELD)):
        return _refused(request)
    response = web.HTTPSeeOther("/")
    clear_session(response)
    return response


def _refused(request: web.Request) -> web.Response:
    return render(request, "error.html", status=403, page="signin",
                  message="This needs you to be signed in (and the page you came from to be "
                          "one of this dashboard's).")


async def act(request: web.Request) -> web.StreamResponse:
    """``POST /actions/{what}/{name}/{verb}``: one operator action, from a form."""
    form = await _form(request)
    if not admitted(request, request.app[TOKEN_KEY], form.get(CSRF_FIELD)):
        return _refused(request)
    what, name, verb = (request.match_info[k] for k in ("what", "name", "verb"))
    try:
        landing = await _do(request.app[SUMMIT_KEY].operations, what, name, verb, form)
    except (CairnError, ValueError) as exc:
        return render(request, "error.html", status=409, page="signin", message=str(exc))
    return web.HTTPSeeOther(landing or back_to(form.get("next")))


async def _do(operations: Operations, what: str, name: str, verb: str,
              form: dict[str, str]) -> str | None:
    """Carry out one action; returns where to go next when that is not back (a retry goes
    to the new task's page)."""
    if what == "tasks" and verb in ("cancel", "retry", "priority") and name.isdigit():
        task_id = int(name)
        if verb == "cancel":
            await operations.cancel(task_id)
        elif verb == "retry":
            return f"/tasks/{(await operations.retry(task_id)).task_id}"
        else:
            priority = int(form.get("priority", ""))
            if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
                raise ValueError(f"a priority is between {-MAX_PRIORITY} and {MAX_PRIORITY}")
            await operations.prioritise(task_id, priority)
    elif what == "dispatch" and verb in ("pause", "resume"):
        repository = None if name == "farm" else name
        await (operations.pause(repository) if verb == "pause"
               else operations.resume(repository))
    elif what == "builders" and verb in ("drain", "enable"):
        await (operations.drain(name) if verb == "drain" else operations.enable(name))
    else:
        raise web.HTTPNotFound()
    return None


def add_actions(app: web.Application) -> None:
    """Mount sign-in and the actions (after the dashboard and the API)."""
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_post("/actions/{what}/{name}/{verb}", act)


