"""`reconciler fleet serve`: the fleet page, read-only, from the same data as the CLI.

Starlette routes and Jinja2 templates (autoescaped: whatever a node reports is shown
as text), served by uvicorn. A background thread looks at the reports every
`refresh` seconds (fetching a remote URL first) and re-reads only repositories whose
refs moved; the page's script asks `/api/generation` and reloads when it changed.
Assets ship in the package; the Content-Security-Policy allows nothing but this
server's own files, so the page works without internet access and a script smuggled
into a report could not run even if it were not escaped.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reconciler.errors import UsageError
from reconciler.fleet import read, summary, text
from reconciler.fleet.model import FleetReport
from reconciler.fleet.summary import FleetStatus, NodeRow

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FILTERS = ("state", "class", "product", "cluster", "commit")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class Snapshot:
    """The fleet as last read: the reading, its summary, and rows by node."""

    reading: read.Reading
    status: FleetStatus
    rows: dict[str, NodeRow]

    @property
    def generation(self) -> str:
        return f"{self.reading.generation}-{self.status.by_state.get('silent', 0)}"


class FleetData:
    """The reports of `specs`, kept fresh by a background thread."""

    def __init__(self, specs: Sequence[str], stale: timedelta, refresh: float,
                 timeout: float, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.specs = list(specs)
        self.stale = stale
        self.refresh_every = refresh
        self.timeout = timeout
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current = self._load(None)

    def _load(self, previous: read.Reading | None) -> Snapshot:
        reading = read.read(self.specs, timeout=self.timeout, previous=previous)
        now = self.clock()
        status = summary.summarize(reading.entries, now, self.stale, reading.warnings)
        rows = {e.node: summary.row(e, now, self.stale) for e in reading.entries}
        return Snapshot(reading, status, rows)

    def refresh(self) -> None:
        self.current = self._load(self.current.reading)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fleet-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_every):
            self.refresh()


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("reconciler.fleet", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(ago=text.ago, when=text.when, short=text.short)
    env.globals.update(states=summary.STATES, query=lambda **kw: urlencode(
        {k: v for k, v in kw.items() if v}))
    return env


def create_app(data: FleetData, background: bool = True) -> Starlette:
    """The page's application over `data` (refreshed in the background when asked)."""
    env = _templates()

    def page(name: str, **context: Any) -> HTMLResponse:
        snap = data.current
        html = env.get_template(name).render(status=snap.status, specs=data.specs,
                                             generation=snap.generation, **context)
        return HTMLResponse(html, headers=HEADERS)

    async def index(request: Request) -> Response:
        return page("index.html")

    async def nodes(request: Request) -> Response:
        wanted = {k: request.query_params.get(k) or None for k in _FILTERS}
        rows = summary.select(data.current.rows.values(), wanted["state"], wanted["class"],
                              wanted["product"], wanted["cluster"], wanted["commit"])
        if request.url.path.startswith("/api/"):
            return JSONResponse([r.model_dump(mode="json") for r in rows], headers=HEADERS)
        return page("nodes.html", rows=rows, filters={k: v for k, v in wanted.items() if v})

    async def node(request: Request) -> Response:
        name = request.path_params["name"]
        snap = data.current
        row = snap.rows.get(name)
        entry = next((e for e in snap.reading.entries if e.node == name), None)
        if row is None or entry is None:
            return page_missing(name)
        commit = request.path_params.get("commit")
        report: FleetReport | None = entry.report
        if commit is not None and not _COMMIT_RE.fullmatch(commit):
            return page_missing(f"{name} at {commit}")
        if commit is not None:
            report = read.report_at(entry.git_dir, commit)
            if report is None or report.node != name:
                return page_missing(f"{name} at {commit}")
        history = read.history(entry.git_dir, name)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"node": row.model_dump(mode="json"),
                                 "report": report.model_dump(mode="json") if report else None,
                                 "history": [{"commit": h.commit, "time": h.time.isoformat(),
                                              "result": h.result, "summary": h.summary,
                                              "config_commit": h.config_commit}
                                             for h in history]}, headers=HEADERS)
        return page("node.html", row=row, report=report, history=history, at=commit,
                    latest=entry.commit)

    def page_missing(what: str) -> HTMLResponse:
        response = page("missing.html", what=what)
        response.status_code = 404
        return response

    async def api_status(request: Request) -> Response:
        return JSONResponse(data.current.status.model_dump(mode="json"), headers=HEADERS)

    async def generation(request: Request) -> Response:
        return JSONResponse({"generation": data.current.generation}, headers=HEADERS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            data.start()
        try:
            yield
        finally:
            data.stop()

    static = StaticFiles(directory=str(resources.files("reconciler.fleet") / "static"))
    return Starlette(routes=[
        Route("/", index), Route("/nodes", nodes),
        Route("/node/{name:path}/report/{commit}", node), Route("/node/{name:path}", node),
        Route("/api/status", api_status), Route("/api/nodes", nodes),
        Route("/api/node/{name:path}", node),
        Route("/api/generation", generation), Mount("/static", static, name="static"),
    ], lifespan=lifespan)  # fmt: skip


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8080` for IPv6) as a host and a port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError.because(f"bad --listen {listen!r} (expected HOST:PORT, e.g. "
                                 "127.0.0.1:8080)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(specs: Sequence[str], host: str, port: int, stale: timedelta, refresh: float,
          timeout: float) -> None:
    """Serve the page until interrupted."""
    import uvicorn

    data = FleetData(specs, stale, refresh, timeout)
    uvicorn.run(create_app(data), host=host, port=port, log_level="warning",
                access_log=False, server_header=False)
