"""The web view: a Starlette application over one repository, read-only.

Pages (HTML, rendered by Jinja2 with autoescape on) and their data under ``/api`` (JSON equal to
the command line's ``--json``):

=========================================  ==============================================
``/versions``                              ``/api/versions`` (``vault log --json``)
``/versions/{rev}``                        ``/api/versions/{rev}`` (``vault show REV --json``)
``/versions/{rev}/files/{path}``           the file's bytes, streamed and verified
``/compare?v=A&v=B``                       ``/api/compare?a=A&b=B`` (``vault diff A B --json``)
``/pins``                                  ``/api/pins`` (``vault backup list --json``)
``/storage``                               ``/api/stats`` (``vault stats --json``)
``/runs``                                  ``/api/runs`` (``vault runs --json``)
=========================================  ==============================================

Every error is an HTML page, or under ``/api`` the JSON ``{"error": {"code", "kind",
"message"}}`` with the command line's exit code and kind: never a traceback.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..cli.common import INTERNAL_ERROR, json_value
from ..errors import (
    EXIT_CODES,
    BadValue,
    UnsafePath,
    VaultError,
)
from ..meta import flatten
from ..ops.history import VersionInfo
from ..ops.runs import best_pin_name
from ..progress import human_bytes
from ..refs import version_number
from ..repo import Repository
from . import charts
from .data import SORT_KEYS, Site, loss_series, run_of

HERE = Path(__file__).parent
COOKIE = "vault_token"
"""The cookie a token given as ``?token=`` is kept in, so that the pages' links work."""

LIMIT_MAX = 1000
"""The largest page of the versions table."""

_STATUS = {"usage": 400, "not_found": 404, "refused": 403, "damaged": 500, "io": 503, "check": 500}

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        b" frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # a token in the address must not leak in a Referer
    (b"x-frame-options", b"DENY"),
]

log = logging.getLogger("vault")

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def error_kind(exc: VaultError) -> str:
    """The kind of ``exc`` (``not_found``, ``usage``, ...), as the command line reports it."""
    return exc.kind


class WebError(Exception):
    """An HTTP-level failure of a request (no such page, no token): shown as a page or JSON."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def create_app(repo: Repository, token: str | None = None) -> Starlette:
    """The web view of ``repo`` as an ASGI application.

    The repository is opened again read-only (:class:`~vault.web.readonly.ReadOnlyBackend`):
    nothing the application does can write to it.

    Args:
        repo: the repository to serve (local, or on a remote backend).
        token: when given, every request must carry it: as ``?token=`` (then kept in a cookie),
            the cookie, or ``Authorization: Bearer``; otherwise it gets 401.
    """
    site = Site(repo)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = lambda n: "-" if n is None else human_bytes(int(n))
    env.filters["seg"] = lambda s: quote(str(s), safe="")
    env.filters["filepath"] = lambda s: quote(str(s), safe="/")
    env.filters["loss"] = lambda v: "-" if v is None else f"{v:.4g}"
    env.filters["date"] = lambda s: s.replace("T", " ")[:16] if s else "-"
    env.filters["first_line"] = lambda s: (s or "").splitlines()[0] if s else ""
    env.globals["run_of"] = run_of
    env.globals["best_pin_name"] = best_pin_name
    env.globals["repo_name"] = site.describe()

    def page(request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = env.get_template(template).render(request=request, **values)
        return HTMLResponse(html, status_code=code)

    def api(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(json_value(value), indent=2, ensure_ascii=False, allow_nan=False)
        return Response(body, status, headers, media_type="application/json")

    def error_response(request: Request, status: int, kind: str, message: str) -> Response:
        code = EXIT_CODES.get(kind, INTERNAL_ERROR)
        if request.url.path.startswith("/api/") or request.url.path == "/api":
            return api({"error": {"code": code, "kind": kind, "message": message}}, status)
        return page(request, "error.html", status, status=status, kind=kind, message=message)

    # -- pages -------------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        return RedirectResponse("/versions", 302)

    def versions_args(request: Request) -> dict[str, Any]:
        q = request.query_params
        sort = q.get("sort", "version")
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadValue("order", order, "expected asc or desc")
        return {
            "all": q.get("all", "") in ("1", "true", "on"),
            "text": q.get("q", ""),
            "tag": q.get("tag", ""),
            "run": q.get("run", ""),
            "sort": sort,
            "descending": order == "desc",
            "page": _int(q, "page", 1),
            "limit": min(_int(q, "limit", 50), LIMIT_MAX),
        }

    async def versions(request: Request) -> Response:
        args = versions_args(request)
        found = await run_in_threadpool(lambda: site.versions_page(**args))
        new = await run_in_threadpool(lambda: {e.id: site.new_bytes(e.id) for e in found.rows})

        def link(**changes: Any) -> str:
            params = {k: v for k, v in request.query_params.items() if k != "token"}
            params.update({k: str(v) for k, v in changes.items()})
            return "/versions?" + urlencode(params)

        return page(
            request,
            "versions.html",
            found=found,
            new=new,
            args=args,
            q=request.query_params,
            link=link,
            sort_keys=SORT_KEYS,
        )

    async def version(request: Request) -> Response:
        rev = request.path_params["rev"]

        def load() -> dict[str, Any]:
            info = site.show(rev)
            return {
                "info": info,
                "tensors": site.tensors(info),
                "lineage": site.lineage(info),
                "new_bytes": site.new_bytes(info.id),
                "meta": flatten(info.meta),
                "chart": charts.line_chart(loss_series(info), "step", "loss"),
            }

        return page(request, "version.html", rev=rev, **await run_in_threadpool(load))

    async def download(request: Request) -> Response:
        rev, path = request.path_params["rev"], request.path_params["path"]
        check_path(path)
        size, chunks = await run_in_threadpool(site.open_file, rev, path)
        name = path.rsplit("/", 1)[-1]
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "file"
        headers = {
            "content-length": str(size),
            "content-disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''"
            + quote(name, safe=""),
        }
        body = (memoryview(c) for c in chunks)  # a bytearray chunk is sent without a copy
        return StreamingResponse(body, media_type="application/octet-stream", headers=headers)

    def compare_revs(request: Request) -> list[str]:
        q = request.query_params
        revs = [r for r in q.getlist("v") if r.strip()]
        revs += [q[k] for k in ("a", "b") if q.get(k, "").strip()]
        return list(dict.fromkeys(revs))

    async def compare(request: Request) -> Response:
        revs = compare_revs(request)

        def load() -> dict[str, Any]:
            if len(revs) < 2:
                return {"infos": [site.show(r) for r in revs], "diffs": [], "chart": None}
            # Oldest first, whatever order they were ticked in: each diff reads forward in time.
            shown = sorted(((site.show(r), r) for r in revs), key=lambda x: age(x[0]))
            infos, revs[:] = [i for i, _ in shown], [r for _, r in shown]
            lines = {}
            for rev, info in zip(revs, infos, strict=True):
                for key, pts in loss_series(info).items():
                    lines[f"{info.version or rev} {key}"] = pts
            diffs = [(revs[0], r, site.diff(revs[0], r)) for r in revs[1:]]
            chart = charts.line_chart(lines, "step", "loss")
            return {"infos": infos, "diffs": diffs, "chart": chart}

        return page(request, "compare.html", revs=revs, **await run_in_threadpool(load))

    async def runs(request: Request) -> Response:
        def load() -> dict[str, Any]:
            found = site.run_pages()
            charts_by_run = {r.info.run: charts.line_chart(r.curve, "step", "loss") for r in found}
            overlay = {
                f"{r.info.run} {key}": pts for r in found for key, pts in r.curve.items()
                if key == "loss"
            }  # fmt: skip
            return {
                "runs": found,
                "charts": charts_by_run,
                "overlay": charts.line_chart(overlay, "step", "loss"),
            }

        return page(request, "runs.html", **await run_in_threadpool(load))

    async def pins(request: Request) -> Response:
        def load() -> dict[str, Any]:
            found = site.pins()
            kept = {}
            for p in found:
                kept[p.name] = site.show(p.id)
            return {"pins": found, "kept": kept}

        return page(request, "pins.html", **await run_in_threadpool(load))

    async def storage(request: Request) -> Response:
        stats, per_version = await run_in_threadpool(site.storage)
        chart = charts.bar_chart(
            [(e.version or e.id[:12], n) for e, n in reversed(per_version)], "new bytes"
        )
        return page(request, "storage.html", stats=stats, per_version=per_version, chart=chart)

    # -- the JSON API --------------------------------------------------------------------------

    async def api_versions(request: Request) -> Response:
        q = request.query_params
        rev = q.get("rev") or None
        limit = _int(q, "n", None)
        show_all = q.get("all", "") in ("1", "true", "on")
        paged = any(k in q for k in ("q", "tag", "run", "sort", "order", "page", "limit"))
        if not paged:
            entries = await run_in_threadpool(lambda: site.log(rev, limit=limit, all=show_all))
            return api([e.to_json() for e in entries])
        args = versions_args(request)
        found = await run_in_threadpool(lambda: site.versions_page(**args))
        headers = {"x-total-count": str(found.total), "x-pages": str(found.pages)}
        return api([e.to_json() for e in found.rows], headers=headers)

    async def api_version(request: Request) -> Response:
        info = await run_in_threadpool(site.show, request.path_params["rev"])
        return api(info.to_json())

    async def api_tensors(request: Request) -> Response:
        def load() -> dict[str, Any]:
            return site.tensors(site.show(request.path_params["rev"]))

        return api(await run_in_threadpool(load))

    async def api_compare(request: Request) -> Response:
        q = request.query_params
        if not q.get("a") or not q.get("b"):
            raise BadValue("a, b", "", "give two revisions: /api/compare?a=REV&b=REV")
        return api(await run_in_threadpool(site.diff, q["a"], q["b"]))

    async def api_pins(request: Request) -> Response:
        return api(await run_in_threadpool(site.pins))

    async def api_runs(request: Request) -> Response:
        return api(await run_in_threadpool(site.runs))

    async def api_stats(request: Request) -> Response:
        return api(await run_in_threadpool(site.stats))

    async def api_storage(request: Request) -> Response:
        stats, per_version = await run_in_threadpool(site.storage)
        new = [{"version": e.version, "id": e.id, "new_bytes": n} for e, n in per_version]
        return api({"stats": stats, "new_bytes": new})

    async def not_found(request: Request) -> Response:
        raise WebError(404, "not_found", f"no such page: {request.url.path}")

    # -- errors ----------------------------------------------------------------------------

    async def on_vault_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VaultError)
        kind = error_kind(exc)
        status = 400 if isinstance(exc, UnsafePath) else _STATUS.get(kind, 500)
        return error_response(request, status, kind, exc.message)

    async def on_web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        return error_response(request, exc.status, exc.kind, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "usage"
        return error_response(request, exc.status_code, kind, str(exc.detail))

    async def on_internal_error(request: Request, exc: Exception) -> Response:
        log.warning("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        message = f"internal error: {type(exc).__name__}"
        return error_response(request, 500, "internal", message)

    routes = [
        Route("/", home),
        Route("/versions", versions),
        Route("/versions/{rev}", version),
        Route("/versions/{rev}/files/{path:path}", download),
        Route("/compare", compare),
        Route("/runs", runs),
        Route("/pins", pins),
        Route("/storage", storage),
        Route("/api/versions", api_versions),
        Route("/api/versions/{rev}", api_version),
        Route("/api/versions/{rev}/tensors", api_tensors),
        Route("/api/compare", api_compare),
        Route("/api/pins", api_pins),
        Route("/api/runs", api_runs),
        Route("/api/stats", api_stats),
        Route("/api/storage", api_storage),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{rest:path}", not_found),
    ]

    def warm() -> None:
        """Compile the templates and read the versions, so that the first visitor waits for
        neither (the server does this in the background when it starts)."""
        for name in env.list_templates():
            env.get_template(name)
        site.warm()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=warm, name="vault-web-warm", daemon=True).start()
        yield

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Guard, token=token, refuse=error_response)],
        exception_handlers={
            VaultError: on_vault_error,
            WebError: on_web_error,
            HTTPException: on_http_error,
            Exception: on_internal_error,
        },
    )
    app.state.site = site
    app.state.warm = warm
    return app


def age(info: VersionInfo) -> tuple[datetime, int]:
    """A sort key from oldest to newest: the creation time, then the version number, since
    ``created`` is to the second and a training run commits several versions within one."""
    number = version_number(info.version or "")
    try:
        when = datetime.fromisoformat(info.created)
    except ValueError:  # a manifest not written by vault: last, rather than a failed page
        when = datetime.max
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when, sys.maxsize if number is None else number


def check_path(path: str) -> None:
    """Refuse a file path from a URL that could name anything but a file of the version: an
    absolute path, ``..`` or ``.`` components, empty components, a backslash or a NUL.

    Raises:
        UnsafePath: it is one of those.
    """
    if path.startswith("/"):
        raise UnsafePath(path, "it is absolute")
    if "\\" in path or "\0" in path:
        raise UnsafePath(path, "it holds a backslash or a NUL")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise UnsafePath(path, "it has an empty, '.' or '..' component")


def _int(q: Any, name: str, default: Any) -> Any:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadValue(name, raw, "expected a whole number") from None


class Guard:
    """ASGI middleware: the token check, and the security headers on every response.

    Args:
        app: the application inside.
        token: the token every request must carry, or ``None``.
        refuse: makes the 401 response (a page, or JSON under ``/api``).
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        token: str | None,
        refuse: Callable[[Request, int, str, str], Response],
    ) -> None:
        self.app = app
        self.token = token
        self.refuse = refuse

    def _given(self, request: Request) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the query string."""
        given = request.query_params.get("token")
        if given is not None:
            return given, True
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip(), False
        return request.cookies.get(COOKIE), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the token, then run the application with the headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        extra = list(_SECURITY_HEADERS)
        if self.token is not None:
            given, in_query = self._given(request)
            if given is None or not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), self.token.encode()
            ):
                response = self.refuse(
                    request,
                    401,
                    "refused",
                    "a token is required: open the address vault"
                    " serve printed, or send 'Authorization: Bearer TOKEN'",
                )
                response.headers["www-authenticate"] = "Bearer"
                await response(scope, receive, _adding(send, extra))
                return
            if in_query:
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                extra.append((b"set-cookie", cookie.encode()))
        await self.app(scope, receive, _adding(send, extra))


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return wrapped
