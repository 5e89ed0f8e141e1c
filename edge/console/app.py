"""The console's Starlette app: server-rendered pages (Jinja2, package data), no CDN; one small script of
its own (static/live.js: the live view's boxes, loops and ROI editor) and every page works without it.

Every request's Host must name the console (:mod:`edge.console.hosts`: DNS rebinding). Every page needs
a session (cookie ``pg_session``: HttpOnly, SameSite=Strict, Secure under TLS, its own
or a trusted proxy's); every
POST carries the session's CSRF token (the login form: a per-form token in a cookie of its own). Gate
actions go through the daemon's control socket, so they are audited (``manual_actions``) exactly like
`parkgate gate open --lane L --reason TEXT`, with the console user as the operator
(``console:USER via`` the console process); list changes go to the store, which the daemon reads before
each decision."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from edge.clock import parse_local_time
from edge.config import Config, ConfigError
from edge.console import passes as P
from edge.console.auth import DEVICE_S, LoginLimit, Session, Sessions, SessionsFull, new_token, same_token
from edge.console.config_file import NotWritable, roi_line, save_roi
from edge.console.hosts import HostCheck, accepted_hosts
from edge.console.users import (
    MAX_PASSWORD,
    User,
    UsersError,
    authenticate,
    load_users,
    password_mark,
    users_path,
)
from edge.daemon import control, liveview
from edge.daemon.retention import evidence_dir
from edge.daemon.status import clock_behind_note, display_reading, read_status, render_status, status_path
from edge.identity import list_entry_key, mask_plate
from edge.store import ListEntry, Store, StoreError
from edge.store.rows import list_time_problem
from edge.store.schema import ACCESS_LISTS, GATE_EVENT_KINDS
from edge.vision.roi import Roi

log = logging.getLogger(__name__)
SESSION_COOKIE = "pg_session"
LOGIN_COOKIE = "pg_login"
DEVICE_COOKIE = "pg_device"  # a browser that logged in before: failures from elsewhere do not lock it
MAX_BODY = 16 * 1024  # bytes of one form
MAX_FIELDS = 16
MAX_NOTE = 200
MAX_LOGINS = 4  # password checks at once (argon2id: 64 MiB each, one at a time); beyond: 429
MAX_SEQ = P.MAX_SEQ  # no pass has a larger number
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadForm(ValueError):
    """A form the console refuses: its message names the field and what is allowed."""


@dataclass
class Console:
    """What every page needs: the config, the sessions, the login limit."""

    cfg: Config
    sessions: Sessions
    limit: LoginLimit
    env: Environment
    user_streams: dict[str, int] = field(default_factory=dict)  # live views being served, by user
    logins: int = 0  # password checks running

    @property
    def streams(self) -> int:
        """Live views being served."""
        return sum(self.user_streams.values())

    def secure(self, request: Request) -> bool:
        """Whether cookies get ``Secure``: the console serves HTTPS, or the request came over HTTPS through
        a trusted proxy (uvicorn sets the scheme from its X-Forwarded-Proto, [console] trusted_proxies)."""
        return self.cfg.console.cert_file is not None or request.url.scheme == "https"

    @property
    def lanes(self) -> tuple[str, ...]:
        return tuple(lane.name for lane in self.cfg.lanes)

    def render(self, name: str, session: Session | None, status_code: int = 200,
               **values: Any) -> HTMLResponse:
        body = self.env.get_template(name).render(session=session, gateway=self.cfg.gateway.id, **values)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    def refuse(self, session: Session | None, status_code: int, message: str) -> HTMLResponse:
        return self.render("error.html", session, status_code, message=message)


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body of at most MAX_BODY bytes and MAX_FIELDS fields."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadForm("the form must be sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadForm(f"the form is larger than {MAX_BODY} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadForm(f"the form is not UTF-8 url-encoded fields (at most {MAX_FIELDS})") from None
    return dict(pairs)


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _show_time(ms: int | None) -> str:
    """Local time; a time the platform cannot show (year 10000, stored by the CLI or an older console) as
    its raw unix ms: one odd row must not turn a whole page into an error."""
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return f"{ms} (unix ms)"


def _still_valid(console: Console, session: Session) -> bool:
    """The session's user is still in the users file with the same role and password (`console user
    remove`, a new role or a new password ends the user's sessions at their next request)."""
    try:
        user = load_users(users_path(console.cfg.gateway.state_dir)).get(session.user)
    except UsersError:
        return False
    return (user is not None and user.role == session.role
            and password_mark(user) == session.password_mark)


Page = Callable[[Request, Console, Session], Awaitable[Response]]


def page(handler: Page, *, act: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A handler behind the session check; POSTs also behind the CSRF check, and (``act``) the role."""
    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        token = request.cookies.get(SESSION_COOKIE)
        session = console.sessions.get(token)
        if session is not None and not await run_in_threadpool(_still_valid, console, session):
            console.sessions.logout(token)
            session = None
        if session is None:
            if request.method == "GET":
                return RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
            return console.refuse(None, 401, "not logged in (or the session expired): log in again")
        if request.method == "POST":
            try:
                form = await read_form(request)
            except BadForm as exc:
                return console.refuse(session, 400, str(exc))
            if not same_token(form.get("csrf"), session.csrf):
                return console.refuse(session, 403, "missing or wrong CSRF token: reload the page and retry")
            if act and not session.can_act:
                return console.refuse(session, 403, f"{session.user} is a viewer (read-only): actions need "
                                      "the operator role")
            request.state.form = form
        return await handler(request, console, session)
    return endpoint


# -- login ----------------------------------------------------------------------------------------------

async def login_form(request: Request) -> Response:
    console: Console = request.app.state.console
    return _login_page(request, console, "", 200)


def _login_page(request: Request, console: Console, message: str, status_code: int,
                headers: dict[str, str] | None = None) -> Response:
    token = new_token()
    response = console.render("login.html", None, status_code, message=message, login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, max_age=600, httponly=True, samesite="strict",
                        secure=console.secure(request), path="/login")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    try:
        form = await read_form(request)
    except BadForm as exc:
        return console.refuse(None, 400, str(exc))
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE) or ""):
        return console.refuse(None, 403, "missing or wrong CSRF token: reload the login page and retry")
    user, password = form.get("user", "")[:64], form.get("password", "")[:MAX_PASSWORD + 1]
    address, device = _address(request), request.cookies.get(DEVICE_COOKIE)
    # From here to the password check nothing awaits: the checks and the counts are one step.
    if console.logins >= MAX_LOGINS:
        return _login_page(request, console, f"{MAX_LOGINS} logins are being checked already: try again in a "
                           "second", 429, {"Retry-After": "1"})
    wait = console.limit.begin(address, user, device)
    if wait > 0:
        return _login_page(request, console, f"too many failed logins: try again in {wait:.0f} s", 429,
                           {"Retry-After": str(int(wait) + 1)})
    try:
        found = await _check_password(console, user, password)
    except UsersError as exc:
        console.limit.take_back(address, user, device)
        return console.refuse(None, 500, str(exc))
    if found is None:
        log.warning("console login refused for user %r from %s", user, address)
        return _login_page(request, console, "wrong user name or password", 401)
    console.limit.take_back(address, user, device)
    try:
        token, _ = console.sessions.login(found.name, found.role, password_mark(found))
    except SessionsFull as exc:
        log.warning("console login of %s from %s refused: %s", found.name, address, exc)
        return _login_page(request, console, str(exc), 503, {"Retry-After": "60"})
    log.info("console login: %s (%s) from %s", found.name, found.role, address)
    response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
    response.set_cookie(SESSION_COOKIE, token, max_age=console.cfg.console.session_minutes * 60,
                        httponly=True, samesite="strict", secure=console.secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.set_cookie(DEVICE_COOKIE, console.limit.remember(found.name), max_age=DEVICE_S, httponly=True,
                        samesite="strict", secure=console.secure(request), path="/login")
    return response


async def _check_password(console: Console, user: str, password: str) -> User | None:
    """``authenticate`` in the thread pool, counted in ``console.logins`` from before its first await
    until it returns."""
    console.logins += 1
    try:
        return await run_in_threadpool(authenticate, users_path(console.cfg.gateway.state_dir), user,
                                       password)
    finally:
        console.logins -= 1


async def logout(request: Request, console: Console, session: Session) -> Response:
    console.sessions.logout(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- health ---------------------------------------------------------------------------------------------

async def health(request: Request, console: Console, session: Session) -> Response:
    try:
        snapshot = read_status(status_path(console.cfg.gateway.state_dir))
    except ValueError as exc:
        return console.render("health.html", session, snapshot=None, lines=[str(exc)])
    return console.render("health.html", session, snapshot=snapshot, lines=render_status(snapshot))


# -- passes ---------------------------------------------------------------------------------------------

def _open_store(cfg: Config) -> Store:
    """The daemon's store; never a new one where the daemon has not made it yet."""
    if not cfg.store_path.is_file():
        raise StoreError(f"no store at {cfg.store_path} (gateway.state_dir); has parkgate run yet?")
    return Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms)


def _read_passes(cfg: Config, flt: P.PassFilter) -> tuple[list[dict[str, Any]], bool]:
    """A page of passes with their delivery states, and whether older passes match too."""
    sql, params = P.passes_query(replace(flt, limit=flt.limit + 1))  # one more: is there another page?
    with _open_store(cfg) as store:
        rows = [dict(zip(P.COLUMNS, row, strict=True)) for row in store.conn.execute(sql, params)]
        more, rows = len(rows) > flt.limit, rows[:flt.limit]
        states = _delivery_states(store, [row["event_id"] for row in rows])
    for row in rows:
        row["when"] = _show_time(row["occurred_at_ms"])
        row["delivery"] = states.get(row["event_id"], [])
    return rows, more


def _delivery_states(store: Store, ids: list[str]) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for event_id, destination, status, error, ack in store.conn.execute(
                "SELECT event_id, destination, status, last_error, ack_ref FROM outbox "
                f"WHERE event_id IN ({marks}) ORDER BY destination", ids):
            states.setdefault(event_id, []).append(f"{destination}: {P.delivery_state(status, error, ack)}")
    return states


PLATE_IN_URL = ("a plate is never taken from the address (browser history, proxy logs and the Referer would "
                "keep it): type it in the search form")


async def passes_page(request: Request, console: Console, session: Session) -> Response:
    """The newest passes, filtered by what a link may carry (lane, decision, times; never a plate)."""
    query = {k: v for k, v in request.query_params.items() if k in P.URL_FIELDS}
    if request.query_params.get("plate", "").strip():  # an old bookmark's empty plate= holds no plate
        return _passes(console, session, query, [], False, PLATE_IN_URL)
    return await _search(console, session, query)


async def passes_search(request: Request, console: Console, session: Session) -> Response:
    """The search form and each page's buttons, posted: the plate stays out of every URL."""
    form: dict[str, str] = request.state.form
    return await _search(console, session, {k: v for k, v in form.items() if k in (*P.FORM_FIELDS, "before")})


async def _search(console: Console, session: Session, query: dict[str, str]) -> Response:
    try:
        flt = P.parse_filter(query, console.lanes, GATE_EVENT_KINDS)
    except ValueError as exc:
        return _passes(console, session, query, [], False, str(exc))
    try:
        rows, more = await run_in_threadpool(_read_passes, console.cfg, flt)
    except (StoreError, sqlite3.Error) as exc:
        return console.refuse(session, 503, f"cannot read the store: {exc}")
    return _passes(console, session, query, rows, more, "")


def _passes(console: Console, session: Session, query: dict[str, str], rows: list[dict[str, Any]],
            more: bool, error: str) -> Response:
    """The passes page; ``older``: the ``before`` of the next page when there is one."""
    kept = {name: query[name] for name in P.FORM_FIELDS if query.get(name)}
    return console.render("passes.html", session, 400 if error else 200, rows=rows, query=query, kept=kept,
                          older=rows[-1]["seq"] if more and rows else None, paged=bool(query.get("before")),
                          error=error, lanes=console.lanes, kinds=GATE_EVENT_KINDS)


def _evidence_file(cfg: Config, seq: int) -> Path | None:
    with _open_store(cfg) as store:
        row = store.conn.execute("SELECT evidence_path FROM gate_events WHERE seq = ?", (seq,)).fetchone()
    if row is None or not row[0]:
        return None
    root = evidence_dir(cfg.gateway.state_dir).resolve()
    path = Path(row[0]).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


async def evidence(request: Request, console: Console, session: Session) -> Response:
    seq = request.path_params["seq"]
    try:
        path = None if seq > MAX_SEQ else await run_in_threadpool(_evidence_file, console.cfg, seq)
    except (StoreError, sqlite3.Error) as exc:
        return console.refuse(session, 503, f"cannot read the store: {exc}")
    if path is None:
        return console.refuse(session, 404, f"no evidence image for pass #{seq} (none taken, or retention "
                              "removed it)")
    return FileResponse(path, media_type="image/jpeg", headers=SECURITY_HEADERS)


# -- actions --------------------------------------------------------------------------------------------

def _recent_actions(cfg: Config) -> list[dict[str, Any]]:
    with _open_store(cfg) as store:
        cursor = store.conn.execute("SELECT id, at_ms, lane, action, operator, reason, result, plate_masked "
                                    "FROM manual_actions ORDER BY id DESC LIMIT 20")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
    for row in rows:
        row["when"] = _show_time(row["at_ms"])
    return rows


async def actions_page(request: Request, console: Console, session: Session) -> Response:
    return await _actions(console, session, "", "", 200)


async def _actions(console: Console, session: Session, message: str, error: str, code: int) -> Response:
    try:
        recent = await run_in_threadpool(_recent_actions, console.cfg)
    except (StoreError, sqlite3.Error) as exc:
        recent, error = [], error or f"cannot read the audit log: {exc}"
    return console.render("actions.html", session, code, lanes=console.lanes, actions=control.GATE_ACTIONS,
                          recent=recent, message=message, error=error)


def gate_request(form: dict[str, str], lanes: tuple[str, ...], user: str) -> dict[str, str]:
    """The control-socket request for an action form (pure); BadForm naming the bad field."""
    action, lane, reason = form.get("action", ""), form.get("lane", ""), form.get("reason", "").strip()
    if action not in control.GATE_ACTIONS:
        raise BadForm(f"action {action!r} unknown; allowed: {', '.join(control.GATE_ACTIONS)}")
    if lane not in lanes:
        raise BadForm(f"lane {lane!r} unknown; lanes: {', '.join(lanes)}")
    if not reason:
        raise BadForm(f"{action} needs a reason (it is audited)")
    if len(reason) > control.MAX_REASON or not reason.isprintable():
        raise BadForm(f"reason must be printable text of at most {control.MAX_REASON} characters")
    return {"action": action, "lane": lane, "reason": reason, "operator": f"console:{user}"}


async def act(request: Request, console: Console, session: Session) -> Response:
    try:
        payload = gate_request(request.state.form, console.lanes, session.user)
    except BadForm as exc:
        return await _actions(console, session, "", str(exc), 400)
    path = control.socket_path(console.cfg.gateway.state_dir)
    try:
        answer = await run_in_threadpool(control.request, path, payload)
    except (OSError, ValueError) as exc:
        return await _actions(console, session, "", f"the daemon did not take it: {exc}", 503)
    if not answer.get("ok"):
        return await _actions(console, session, "", f"refused: {answer.get('error')}", 409)
    done = answer.get("result") or answer.get("message") or "done"
    return await _actions(console, session, f"{payload['lane']}: {payload['action']}: {done}", "", 200)


# -- lists ----------------------------------------------------------------------------------------------

def _list_rows(cfg: Config) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of both lists, each entry's state judged with the daemon's best time (what the gate does),
    and what the page says while that is not the wall clock's (None: the clock is trusted)."""
    with _open_store(cfg) as store:
        stored = store.list_entries()
        floor = store.clock_floor()
    reading = display_reading(cfg, floor)
    rows = [{"list": name, "entry": entry, "source": "config (edit the file)", "from": "-", "until": "-",
             "note": "", "state": "active", "removable": False}
            for name, entries in (("allow", cfg.policy.allow_list), ("deny", cfg.policy.deny_list))
            for entry in entries]
    rows += [{"list": e.list_name, "entry": e.entry, "source": e.source, "from": _show_time(e.valid_from_ms),
              "until": _show_time(e.valid_until_ms), "note": e.note, "state": e.state_at(reading.best_ms),
              "removable": True} for e in stored]
    return rows, clock_behind_note(reading)


def list_entry(form: dict[str, str], user: str) -> ListEntry:
    """The store entry for an add form (pure); BadForm naming the bad field and what is allowed."""
    name = form.get("list", "")
    if name not in ACCESS_LISTS:
        raise BadForm(f"list {name!r} unknown; allowed: {', '.join(ACCESS_LISTS)}")
    try:
        entry = list_entry_key(form.get("entry", ""))
    except ValueError as exc:
        raise BadForm(f"entry: {exc}") from None
    note = form.get("note", "").strip()
    if len(note) > MAX_NOTE or not note.isprintable():
        raise BadForm(f"note must be printable text of at most {MAX_NOTE} characters")
    start, end = _validity(form)
    try:
        return ListEntry(name, entry, start, end, note, f"console:{user}")
    except ValueError as exc:
        raise BadForm(str(exc)) from None


def _validity(form: dict[str, str]) -> tuple[int | None, int | None]:
    """The add form's "valid from" and "valid until" as unix ms (None: no bound); BadForm naming the field,
    the time as typed and what is allowed."""
    start = _list_time(form.get("from", ""), "valid from")
    end = _list_time(form.get("until", ""), "valid until")
    if start is not None and end is not None and end <= start:
        raise BadForm(f"valid until {form['until'].strip()!r} is not after valid from "
                      f"{form['from'].strip()!r}; allowed: a time after valid from, or empty (no end)")
    return start, end


def _list_time(text: str, name: str) -> int | None:
    """A list entry's bound, refused outside the store's LIST_TIMES (``list_time_problem``)."""
    try:
        ms = parse_local_time(text.strip() or None, name)  # an empty field: no bound
    except ValueError as exc:
        raise BadForm(str(exc)) from None
    if problem := list_time_problem(ms):
        raise BadForm(f"{name} {text.strip()!r} {problem}, or empty")
    return ms


def _change_list(cfg: Config, add: ListEntry | None, remove: tuple[str, str] | None) -> bool:
    with _open_store(cfg) as store:
        if add is not None:
            store.put_list_entry(add)
            return True
        assert remove is not None
        return store.remove_list_entry(*remove)


async def lists_page(request: Request, console: Console, session: Session) -> Response:
    return await _lists(console, session, "", "", 200)


async def _lists(console: Console, session: Session, message: str, error: str, code: int) -> Response:
    try:
        rows, clock_note = await run_in_threadpool(_list_rows, console.cfg)
    except (StoreError, sqlite3.Error) as exc:
        rows, clock_note, error = [], None, error or f"cannot read the lists: {exc}"
    if not session.can_act:  # a viewer sees plates masked, as on the passes page; operators edit them
        rows = [{**row, "entry": _masked_entry(row["entry"])} for row in rows]
    return console.render("lists.html", session, code, rows=rows, lists=ACCESS_LISTS, message=message,
                          error=error, clock_note=clock_note)


def _masked_entry(entry: str) -> str:
    """A list entry as a viewer sees it: a plate masked (``AB***D``), a commitment (no plate) as is."""
    return entry if entry.startswith("0x") else mask_plate(entry)


async def list_add(request: Request, console: Console, session: Session) -> Response:
    try:
        entry = list_entry(request.state.form, session.user)
    except BadForm as exc:
        return await _lists(console, session, "", str(exc), 400)
    try:
        await run_in_threadpool(_change_list, console.cfg, entry, None)
    except (StoreError, sqlite3.Error) as exc:
        return await _lists(console, session, "", f"cannot write the store: {exc}", 503)
    return await _lists(console, session, f"{entry.list_name} list: {entry.entry} added; applies from the "
                        "next vehicle", "", 200)


async def list_remove(request: Request, console: Console, session: Session) -> Response:
    form = request.state.form
    name = form.get("list", "")
    try:
        entry = list_entry_key(form.get("entry", ""))
        if name not in ACCESS_LISTS:
            raise ValueError(f"list {name!r} unknown; allowed: {', '.join(ACCESS_LISTS)}")
        removed = await run_in_threadpool(_change_list, console.cfg, None, (name, entry))
    except ValueError as exc:
        return await _lists(console, session, "", str(exc), 400)
    except (StoreError, sqlite3.Error) as exc:
        return await _lists(console, session, "", f"cannot write the store: {exc}", 503)
    if not removed:
        return await _lists(console, session, "", f"{name} list: no stored entry {entry}", 404)
    return await _lists(console, session, f"{name} list: {entry} removed; applies from the next vehicle",
                        "", 200)


# -- live view ----------------------------------------------------------------------------------------

MAX_STREAMS = 4  # live streams served at once (a Pi's console, a few operators)
MAX_USER_STREAMS = 2  # of them, one user's: no one takes them all
STREAM_S = 600.0  # a stream ends after this; the page's reload starts a new one
BOUNDARY = "parkgate-frame"
RECHECK_TICKS = 20  # the users file is read again every this many frames (10 s) of a stream


def mjpeg_part(jpeg: bytes) -> bytes:
    """One frame of a multipart/x-mixed-replace stream (browsers show it in a plain <img>)."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def _watch(cfg: Config, lane: str) -> Path:
    """Ask the daemon for the lane's frames (edge.daemon.liveview) and say where they land."""
    watch = liveview.watch_path(cfg.gateway.state_dir, lane)
    if watch.parent.is_dir():
        fd = os.open(watch, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.utime(watch)
    return liveview.frame_path(cfg.gateway.state_dir, lane)


FrameStamp = tuple[int, int, int]  # a frame file's inode, mtime (ns) and size: which frame it is


def _fresh_frame(path: Path, seen: FrameStamp | None) -> tuple[FrameStamp, bytes] | None:
    """The frame file with its stamp when it is not the frame ``seen``, else None. Any other stamp is a new
    frame, not only a later mtime: the kernel dates each frame with the wall clock, so after a step back
    every new frame is older than the one sent last (the stream froze until it ended)."""
    try:
        with path.open("rb") as frame:  # the stamp and the bytes of the same file, however it is replaced
            st = os.fstat(frame.fileno())
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            return None if stamp == seen else (stamp, frame.read())
    except OSError:
        return None


MAX_ROI_TEXT = 1024  # characters of a typed or dragged ROI ("x,y;x,y;..."), up to Roi's 64 points


def _roi_points(cfg: Config, lane: str) -> tuple[str, bool, str]:
    """The lane's region of interest as SVG polygon points, whether they are fractions of the frame
    (drawn over a 0..1 view box) rather than pixels (listed), and as the text the ROI form takes;
    empty: the whole frame."""
    roi = next(x.camera.roi for x in cfg.lanes if x.name == lane)
    if not roi:
        return "", True, ""
    points = [(x, y) for x, y, *_ in roi]
    return (" ".join(f"{x:g},{y:g}" for x, y in points), Roi.parse(roi).fractional,
            ";".join(f"{x:g},{y:g}" for x, y in points))


def roi_proposal(lane: str, text: str, lanes: tuple[str, ...]) -> dict[str, Any]:
    """A region of interest typed or dragged on the live page, checked as `config check` checks one
    (Roi.parse): its SVG points and the config line for the lane's [lanes.camera]; BadForm naming what is
    wrong and what is allowed."""
    if lane not in lanes:
        raise BadForm(f"lane {lane!r} unknown; lanes: {', '.join(lanes)}")
    if len(text) > MAX_ROI_TEXT:
        raise BadForm(f"roi is longer than {MAX_ROI_TEXT} characters")
    try:
        roi = Roi.parse(text.strip(), f"lanes[{lanes.index(lane)}].camera.roi")
    except ValueError as exc:
        raise BadForm(str(exc)) from None
    points = [(float(x), float(y)) for x, y in roi.points]
    return {"lane": lane, "svg": " ".join(f"{x:g},{y:g}" for x, y in points), "fractional": roi.fractional,
            "toml": roi_line(points), "points": points, "text": ";".join(f"{x:g},{y:g}" for x, y in points)}


def lane_state_text(state: dict[str, Any] | None) -> str:
    """One line for a lane's live view: phase, gate position, the two loops, link, camera (pure)."""
    if not state:
        return "no daemon status"
    if not state.get("serving", True):
        return f"phase {state.get('phase')}, NOT SERVING: {state.get('error', '')}"

    def loop(value: Any) -> str:
        return "-" if value is None else "occupied" if value else "clear"

    return (f"phase {state.get('phase')}, gate {state.get('gate_position') or '-'}, presence loop "
            f"{loop(state.get('presence'))}, safety loop {loop(state.get('safety'))}, link "
            f"{'up' if state.get('link_up') else 'DOWN'}{', HELD OPEN' if state.get('held') else ''}, camera "
            f"{(state.get('camera') or {}).get('state', '-')}"
            + (" (STALE: the daemon is not refreshing its status)" if state.get("stale") else ""))


def plate_lines(info: dict[str, Any] | None, now: float) -> list[dict[str, Any]]:
    """What the live view says about each plate the daemon's detector boxed on the lane's latest frame:
    its width against the recommended minimum (pure); a line saying why when there is none."""
    if not info or not liveview.fresh(float(info.get("at", 0)), now):
        return [{"text": "no recent frame from the daemon (is parkgate running?)"}]
    least = int(info.get("min_width_px", 0))
    lines = []
    for box in info.get("boxes", []):
        width = int(box["width_px"])
        judged = (f"at least the recommended {least} px" if width >= least else
                  f"under the recommended {least} px: zoom in or move the camera closer")
        where = "" if box.get("in_roi", True) else " (outside the region of interest: not read)"
        lines.append({"text": f"plate {width} px wide: {judged}{where}", "width_px": width,
                      "wide": width >= least, "in_roi": bool(box.get("in_roi", True)),
                      "score": box.get("score"), "box": [box["x1"], box["y1"], box["x2"], box["y2"]]})
    return lines or [{"text": info.get("note") or "no plate in view"}]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lane_states(cfg: Config) -> dict[str, dict[str, Any]]:
    try:
        snapshot = read_status(status_path(cfg.gateway.state_dir))
    except ValueError:
        return {}
    stale = bool(snapshot.get("stale"))
    lanes = [lane for lane in snapshot.get("lanes", []) if isinstance(lane, dict)]
    return {lane["name"]: {**lane, "stale": stale} for lane in lanes}


def live_info(cfg: Config, lane: str) -> dict[str, Any]:
    """What the live page shows beside a lane's frame, for its script (``/live/LANE.json``): the lane's
    state line and loops from status.json, the plates on the latest live frame. Asking is watching."""
    _watch(cfg, lane)
    state = _lane_states(cfg).get(lane)
    info = _read_json(liveview.boxes_path(cfg.gateway.state_dir, lane))
    try:
        plates = plate_lines(info, time.time())
    except (KeyError, TypeError, ValueError):
        info, plates = None, [{"text": f"unreadable {liveview.boxes_path(cfg.gateway.state_dir, lane)}"}]
    return {"lane": lane, "state": lane_state_text(state),
            "loops": {"presence": (state or {}).get("presence"), "safety": (state or {}).get("safety")},
            "gate": (state or {}).get("gate_position"), "phase": (state or {}).get("phase"),
            "frame": (info or {}).get("frame"), "min_width_px": (info or {}).get("min_width_px"),
            "plates": plates}


async def live_page(request: Request, console: Console, session: Session) -> Response:
    query = request.query_params
    proposal, error = None, ""
    if query.get("roi"):
        try:
            proposal = roi_proposal(query.get("lane", ""), query["roi"], console.lanes)
        except BadForm as exc:
            error = str(exc)
    return await _live(console, session, query, 400 if error else 200, error=error, proposal=proposal)


async def _live(console: Console, session: Session, query: Any, code: int, message: str = "", error: str = "",
                proposal: dict[str, Any] | None = None, paste: str = "") -> Response:
    lanes = [{"name": lane, "roi": points, "fractional": fractional, "roi_text": text}
             for lane in console.lanes for points, fractional, text in [_roi_points(console.cfg, lane)]]
    states = await run_in_threadpool(_lane_states, console.cfg)
    for lane in lanes:
        lane["state"] = lane_state_text(states.get(str(lane["name"])))
    return console.render("live.html", session, code, lanes=lanes, fps=liveview.LIVE_FPS, proposal=proposal,
                          error=error, message=message, paste=paste, query=query)


async def live_json(request: Request, console: Console, session: Session) -> Response:
    lane = request.path_params["lane"]
    if lane not in console.lanes:
        return JSONResponse({"error": f"lane {lane!r} unknown; lanes: {', '.join(console.lanes)}"}, 404,
                            headers=SECURITY_HEADERS)
    return JSONResponse(await run_in_threadpool(live_info, console.cfg, lane), headers=SECURITY_HEADERS)


async def roi_save(request: Request, console: Console, session: Session) -> Response:
    """Save a lane's ROI (typed, or dragged by static/live.js) into the config file, validated as
    `parkgate config check` validates it; the line to paste when the console cannot write the file."""
    form = request.state.form
    query = {"lane": form.get("lane", ""), "roi": form.get("roi", "")}
    try:
        proposal = roi_proposal(form.get("lane", ""), form.get("roi", ""), console.lanes)
    except BadForm as exc:
        return await _live(console, session, query, 400, error=f"not saved: {exc}")
    lane, path = proposal["lane"], Path(console.cfg.source)
    if not path.is_file():
        return await _live(console, session, query, 409, proposal=proposal, paste=proposal["toml"],
                           error=f"not saved: the console runs without a config file ({console.cfg.source})")
    try:
        cfg = await run_in_threadpool(save_roi, path, lane, proposal["points"])
    except ConfigError as exc:
        return await _live(console, session, query, 400,
                           error=f"not saved: {path} would fail `parkgate config check` with it: {exc}")
    except NotWritable as exc:
        log.warning("console: %s could not save lane %s's ROI: %s", session.user, lane, exc)
        return await _live(console, session, query, 503, proposal=proposal, paste=proposal["toml"],
                           error=f"not saved: {exc}. Put this line in lane {lane}'s [lanes.camera] of {path} "
                           "by hand, run `parkgate config check`, then restart the daemon")
    console.cfg = cfg
    log.warning("console: %s saved lane %s's ROI to %s: %s", session.user, lane, path, proposal["toml"])
    return await _live(console, session, {}, 200, message=f"saved to {path}: lane {lane} {proposal['toml']}. "
                       "The daemon applies it at its next start (sudo systemctl restart parkgate)")


class StreamSlot:
    """One of the MAX_STREAMS live streams (MAX_USER_STREAMS of a user): taken in the endpoint, in the
    same step as the check (nothing awaits between), and given back once however the stream ends."""

    def __init__(self, console: Console, user: str) -> None:
        self.console, self.user, self.held = console, user, True
        console.user_streams[user] = console.user_streams.get(user, 0) + 1

    def release(self) -> None:
        if self.held:
            self.held = False
            left = self.console.user_streams.pop(self.user) - 1
            if left:
                self.console.user_streams[self.user] = left


class SlotStream(StreamingResponse):
    """A StreamingResponse that gives its slot back when it is done, also when its frames were never
    iterated (the client left before the response started): then their ``finally`` never runs."""

    def __init__(self, content: AsyncIterator[bytes], slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


async def live_stream(request: Request, console: Console, session: Session) -> Response:
    lane = request.path_params["lane"]
    if lane not in console.lanes:
        return console.refuse(session, 404, f"lane {lane!r} unknown; lanes: {', '.join(console.lanes)}")
    if console.user_streams.get(session.user, 0) >= MAX_USER_STREAMS:
        return console.refuse(session, 429, f"you have {MAX_USER_STREAMS} live views open already (the most "
                              "one user may): close one")
    if console.streams >= MAX_STREAMS:
        return console.refuse(session, 503, f"{MAX_STREAMS} live views already open; close one")
    slot = StreamSlot(console, session.user)
    return SlotStream(_frames(request, console, session, lane, slot), slot,
                      media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=SECURITY_HEADERS)


async def _frames(request: Request, console: Console, session: Session, lane: str, slot: StreamSlot
                  ) -> AsyncIterator[bytes]:
    """The lane's new frames as MJPEG parts until the client leaves, STREAM_S pass or the session ends."""
    try:
        seen: FrameStamp | None = None
        deadline = time.monotonic() + STREAM_S
        token, ticks = request.cookies.get(SESSION_COOKIE), 0
        while time.monotonic() < deadline and not await request.is_disconnected():
            ticks += 1
            recheck = ticks % RECHECK_TICKS == 0
            if console.sessions.get(token) is not session or (
                    recheck and not await run_in_threadpool(_still_valid, console, session)):
                return  # logged out, expired, removed, role or password changed: no more frames
            path = await run_in_threadpool(_watch, console.cfg, lane)
            fresh = await run_in_threadpool(_fresh_frame, path, seen)
            if fresh is not None:
                seen = fresh[0]
                yield mjpeg_part(fresh[1])
            await asyncio.sleep(1.0 / liveview.LIVE_FPS)
    finally:
        slot.release()


# -- the app --------------------------------------------------------------------------------------------

async def not_found(request: Request, exc: Exception) -> Response:
    return HTMLResponse(f"<p>not found: {html.escape(request.url.path)}</p>", 404, headers=SECURITY_HEADERS)


def build_app(cfg: Config, clock: Callable[[], float] = time.monotonic) -> Starlette:
    env = Environment(loader=PackageLoader("edge.console", "templates"), autoescape=select_autoescape(),
                      auto_reload=False)
    console = Console(cfg, Sessions(cfg.console.session_minutes * 60.0, clock),
                      LoginLimit(cfg.console.login_attempts, cfg.console.login_window_s, clock), env)
    static = Path(__file__).with_name("static")
    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(logout), methods=["POST"]),
        Route("/", page(health), methods=["GET"]),
        Route("/passes", page(passes_page), methods=["GET"]),
        Route("/passes", page(passes_search), methods=["POST"]),
        Route("/evidence/{seq:int}", page(evidence), methods=["GET"]),
        Route("/actions", page(actions_page), methods=["GET"]),
        Route("/actions", page(act, act=True), methods=["POST"]),
        Route("/lists", page(lists_page), methods=["GET"]),
        Route("/live", page(live_page), methods=["GET"]),
        Route("/live/{lane}.mjpg", page(live_stream), methods=["GET"]),
        Route("/live/{lane}.json", page(live_json), methods=["GET"]),
        Route("/live/roi", page(roi_save, act=True), methods=["POST"]),
        Route("/lists/add", page(list_add, act=True), methods=["POST"]),
        Route("/lists/remove", page(list_remove, act=True), methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found},
                    middleware=[Middleware(HostCheck, hosts=accepted_hosts(cfg.console))])
    app.state.console = console
    return app
