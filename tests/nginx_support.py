"""A real nginx serving a directory on 127.0.0.1, as a git server's web side serves the
tip file (source/tip.py): its own ETags and 304s, and an access log the test reads."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitutil_repo import free_port, wait_for_port

from reconciler.review.hooks import render_hook

CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format tip '$status $request_uri';
    access_log {access_log};
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        default_type text/plain;
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    """One running nginx: where it listens, and what it answered so far."""

    port: int
    run: Path
    pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def answers(self) -> list[str]:
        """`<status> <path>` of every request answered so far, in order."""
        log = self.run / "access.log"
        return log.read_text().splitlines() if log.exists() else []


@contextmanager
def serving_tips(bare: Path, run: Path) -> Iterator[Nginx]:
    """nginx serving the directory of bare repository `bare`, which publishes its tip
    file with reconciler's post-receive hook (`reconciler-tip`, at the next push)."""
    hook = bare / "hooks" / "post-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(render_hook("post-receive", None))
    hook.chmod(0o755)
    with nginx_serving(bare.parent, run) as nginx:
        yield nginx


@contextmanager
def nginx_serving(root: Path, run: Path, log: bool = True) -> Iterator[Nginx]:
    """nginx serving the files under `root`, its own files in `run`; without `log`, no
    access log (a benchmark counts what nginx itself spends on an answer)."""
    run.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    config = run / "nginx.conf"
    access_log = f"{run}/access.log tip" if log else "off"
    config.write_text(CONFIG.format(user=user, run=run, port=port, root=root,
                                    access_log=access_log))
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield Nginx(port, run, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
