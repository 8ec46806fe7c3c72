"""A tiny HTTP service for the health-check tests, run by a `service backend="command"`.

`python3 health_server.py CONF PIDFILE PORT` reads CONF at start and on `GET /reload`;
`GET /healthz` answers 200 while CONF says "healthy", else 503 with CONF's text;
`GET /reloads` counts the reloads. PIDFILE appears (renamed in) once it listens.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

CONF, PIDFILE, PORT = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
STATE: dict[str, str | int] = {"conf": CONF.read_text(), "reloads": 0}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = 200, b"ok"
        if self.path == "/reload":
            STATE["conf"] = CONF.read_text()
            STATE["reloads"] = int(STATE["reloads"]) + 1
        elif self.path == "/reloads":
            body = str(STATE["reloads"]).encode()
        elif self.path == "/healthz":
            healthy = "healthy" in str(STATE["conf"])
            code, body = (200, b"ok") if healthy else (503, str(STATE["conf"]).encode())
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


server = HTTPServer(("127.0.0.1", PORT), Handler)
temporary = PIDFILE.with_suffix(".tmp")
temporary.write_text(f"{os.getpid()}\n")
os.replace(temporary, PIDFILE)
server.serve_forever()
