"""Helpers for the fleet-report tests: a config repo for a small fleet, nodes that run
the real run code in this process (each with its own state dir, root and signing key),
a reports repository, a `git daemon` that accepts pushes, and the real CLI.

A node publishes as a run does (the outbox, news and heartbeats: fleet/publish.py), and
its pusher drains the outbox in this process before `run` returns, unless the node is
made `detached`: then the real background pusher process does it, as on a real node
(test_fleet_publish.py proves that pusher; elsewhere a pusher process per run would
only cost an interpreter start and a wait).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clirun import RECONCILER as RECONCILER  # re-exported: tests that start the script
from clirun import reconciler
from gitutil_repo import Origin, free_port, git, wait_for_port

from reconciler.agent.runs import RunOptions, from_settings
from reconciler.agent.settings import AgentConfig
from reconciler.fleet import keys, publish
from reconciler.fleet.chain import Chain
from reconciler.fleet.push import REPO, drain, queued, read_pushed
from reconciler.record.report import RunReport
from reconciler.run import perform

CLUSTERS = ("c1", "c2", "c3", "c4")


def fleet_xml(web: int, cache: int, node_policies: dict[str, str] | None = None) -> str:
    """`web` web nodes and `cache` cache nodes in each of four clusters; `node_policies`
    gives some nodes a `<policy .../>` of their own."""
    ranges = "".join(
        f'  <nodes class="web" product="shop" cluster="{c}" count="{web}"/>\n'
        f'  <nodes class="cache" product="shop" cluster="{c}" count="{cache}"/>\n'
        for c in CLUSTERS
    )
    nodes = "".join(f'  <node name="{name}"><policy {policy}/></node>\n'
                    for name, policy in (node_policies or {}).items())
    return (f'<fleet domain="t">\n  <defaults><policy max-severity="reload"/></defaults>\n'
            f"{ranges}{nodes}</fleet>\n")


CLASSES = {
    "classes/web.xml": '<class name="web">\n'
                       '  <file path="/etc/web.conf" template="web/web.conf.j2"/>\n</class>\n',
    "classes/cache.xml": '<class name="cache">\n'
                         '  <file path="/etc/cache.conf" severity="reload">'
                         "<content>size = 64m\n</content></file>\n</class>\n",
    "templates/web/web.conf.j2": "server_name {{ node.name }};\n",
}


def node_names(web: int, cache: int) -> list[str]:
    return sorted(f"{cls}-{n:02d}.shop.{c}.t" for c in CLUSTERS
                  for cls, count in (("web", web), ("cache", cache))
                  for n in range(1, count + 1))


@contextmanager
def pushing_in_process() -> Iterator[None]:
    """Inside the block, publishing drains the outbox here and now, with the arguments
    the background pusher would get (`python -m reconciler.fleet.pusher`)."""

    def drain_now(target: publish.Target, node: str) -> None:
        drain(target.reports_dir, node, target.key.absolute(), target.urls, target.timeout)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "start_pusher", drain_now)
        yield


class FleetNode:
    """One simulated node: the run code in this process, its own state, root and key;
    `detached`: its reports go out through the background pusher process."""

    def __init__(self, base: Path, name: str, remote: str, reports: str | None,
                 with_key: bool = True, detached: bool = False, **settings: Any) -> None:
        self.name = name
        self.detached = detached
        self.dir = base / name
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.key = self.dir / "signing-key"
        if with_key:
            keys.generate(self.key, name)
        values: dict[str, Any] = {"remote": remote, "node": name, "state-dir": self.state,
                                  "root": self.root, "signing-key": self.key,
                                  "fetch-timeout": 10.0, **settings}
        if reports is not None:
            values["reports"] = reports
        self.cfg = AgentConfig.model_validate({k: v for k, v in values.items()
                                               if v is not None})

    @property
    def public_key(self) -> str:
        return keys.public_key(self.key)

    def run(self, **options: Any) -> RunReport:
        with self._pushing():
            return perform(from_settings(self.cfg, RunOptions(**options)))

    def _pushing(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self.detached else pushing_in_process()

    def reports_dir(self) -> Path:
        return self.state / publish.REPORTS

    def published(self) -> bool:
        """Every queued report is in the chain and the reports URL accepted its tip."""
        if queued(self.reports_dir()):
            return False
        tip = Chain(self.reports_dir() / REPO, self.name, self.key).tip()
        urls = read_pushed(self.reports_dir()).get("urls")
        return (tip is not None and isinstance(urls, dict)
                and urls.get(publish.Target.of(self.cfg).urls[0]) == tip)

    def publish_dated(self, report: RunReport, back: timedelta) -> None:
        """Publish `report` as if its run had happened `back` ago (a node that went
        silent since)."""
        with self._pushing():
            publish.after_run(self.cfg,
                              report.model_copy(update={"started": report.started - back}))


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Bounded polling for something another process does (a background pusher)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not done within {timeout} s")
        time.sleep(0.05)


def wait_published(nodes: Iterable[FleetNode], timeout: float = 120.0) -> None:
    """Until every node's pusher is done; a node seen published is not asked again (each
    asking is a git process, and nothing runs on the nodes meanwhile)."""
    pending = list(nodes)

    def done() -> bool:
        pending[:] = [node for node in pending if not node.published()]
        return not pending

    try:
        wait_until(done, timeout, "background pushers")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {', '.join(n.name for n in pending)[:500]}") from None


def config_origin(base: Path, files: dict[str, str | bytes | None],
                  registered: Sequence[FleetNode] = ()) -> Origin:
    """A bare config repository holding `files` and the public keys of `registered`."""
    origin = Origin(base / "config")
    with_keys = dict(files)
    for node in registered:
        with_keys[keys.registered_path(node.name)] = node.public_key + "\n"
    origin.commit(with_keys, "fleet")
    return origin


def bare(path: Path) -> Path:
    git(path.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(path))
    return path


def install_reports_hook(reports: Path, config: Path | None = None) -> None:
    args = ["hooks", "install", "--server", str(reports), "--reports"]
    if config is not None:
        args += ["--config-repo", str(config)]
    done = cli(*args)
    assert done.returncode == 0, done.stderr


@contextmanager
def push_daemon(base: Path) -> Iterator[int]:
    """`git daemon` serving (and accepting pushes to) every repository under `base`."""
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", f"--base-path={base}",
         "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        process: bool = False) -> subprocess.CompletedProcess[str]:
    """The `reconciler` command line, in this process unless asked for a real one."""
    return reconciler(args, env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd,
                      process=process, timeout=300)


def cli_json(*args: str, env: dict[str, str] | None = None) -> Any:
    done = cli(*args, "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refs(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/reports/")
    return dict(line.split(" ") for line in out.splitlines())
