"""A commit that breaks an nginx site fragment is stopped three times over, by the real
nginx: `plan --check` in the merge request, `audit` on the node, and the node's own
`<check run="nginx -t -q"/>` before the reload (the live files put back byte for byte).

The site file is a fragment: no per-file `validate=` can test it alone, only `nginx -t`
of the whole configuration can. The proxy node is built as in daemon_node.py; nginx runs
on it in its namespaces the whole time, and is never reloaded.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import pytest
from configrepo import git_env
from daemon_node import (
    NodeNamespace,
    build_node,
    init_example,
    run_checked,
    skip_unless_runnable,
)

pytestmark = skip_unless_runnable()

PROXY, PROXY_ADDRESS = "proxy-01.tickets.chi1.sa", "10.10.11.1"
SITE = "/etc/nginx/sites-available/sa.conf"
TEMPLATE = "templates/proxy/site.conf.j2"
GOOD = "keepalive {{ upstream_keepalive }};"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """The example fleet with a branch `broken`: one `;` missing in the site template."""
    repo = init_example(tmp_path_factory, tmp_path_factory.mktemp("example") / "fleet", home)
    template = repo / TEMPLATE
    text = template.read_text()
    assert GOOD in text
    env = git_env(home)
    run_checked(["git", "-C", str(repo), "checkout", "-q", "-b", "broken"], env=env)
    template.write_text(text.replace(GOOD, GOOD.rstrip(";")))
    run_checked(["git", "-C", str(repo), "commit", "-q", "-am", "proxy: tidy the upstream block"],
                env=env)
    run_checked(["git", "-C", str(repo), "checkout", "-q", "main"], env=env)
    return repo


@pytest.fixture(scope="module")
def proxy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxy") / "root"
    build_node(tmp_path_factory, PROXY, root)
    return root


@pytest.fixture(scope="module")
def nginx(proxy_root: Path) -> Iterator[NodeNamespace]:
    """nginx serving the proxy node's good configuration, every worker started."""
    conf = (proxy_root / "etc/nginx/nginx.conf").read_text()
    match = re.search(r"^worker_processes (\d+);", conf, re.M)
    assert match is not None, "the example sets a number of workers for tickets"
    with NodeNamespace(proxy_root, [PROXY_ADDRESS]) as ns:
        done = ns.run("/usr/sbin/nginx", "-g", "daemon on; master_process on;")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 60
        while len(nginx_processes(ns)) != 1 + int(match.group(1)):
            assert time.monotonic() < deadline, "nginx's workers did not all start"
            threading.Event().wait(0.05)  # pacing of a bounded poll, not a wait for a result
        yield ns


def reconciler(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGV` in this process: nginx, not the process, is what is under test."""
    return clirun.reconciler(argv, env=git_env(home))


def on_node(example: Path, root: Path, home: Path, verb: str) -> tuple[int, dict[str, Any]]:
    """`reconciler audit|apply` of the broken commit on the proxy node, as JSON."""
    ceiling = ["--max-severity", "reboot"] if verb == "apply" else []
    done = reconciler(home, verb, "--repo", str(example), "--rev", "broken", "--node", PROXY,
                      "--root", str(root), *ceiling, "--format", "json",
                      "--identity", str(example / "keys" / "demo-identities" / f"{PROXY}.key"))
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def action(report: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(a for a in report["actions"] if a["id"] == action_id)


def nginx_processes(ns: NodeNamespace) -> set[str]:
    """The pids of nginx's master and workers inside the node (a reload replaces the
    workers; the cache manager and loader come and go on their own). A child the master
    has just forked still bears the master's title until it sets its own: the master is
    the one whose parent is not a master."""
    done = ns.run("ps", "-eo", "pid=,ppid=,args=")
    assert done.returncode == 0, done.stderr
    rows = [line.split(None, 2) for line in done.stdout.splitlines()]
    masters = {pid: ppid for pid, ppid, args in rows if args.startswith("nginx: master process")}
    return ({pid for pid, ppid in masters.items() if ppid not in masters}
            | {pid for pid, _, args in rows if args.startswith("nginx: worker process")})


def test_plan_check_fails_the_merge_request_naming_nodes_file_and_message(
        example: Path, home: Path) -> None:
    done = reconciler(home, "plan", "--repo", str(example), "--base", "main", "--head",
                      "broken", "--check", "--format", "json")
    assert done.returncode == 1, done.stderr
    checks = json.loads(done.stdout)["checks"]
    failed = [run for run in checks["runs"] if run["status"] == "failed"]
    tickets = next(run for run in failed if PROXY in run["nodes"])
    assert tickets["run"] == "nginx -t -q" and tickets["action"] == "service:nginx"
    assert tickets["patterns"] == ["proxy-[01-40].tickets.chi1.sa"], "one run for 40 proxies"
    assert tickets["files"][0] == SITE
    assert 'unexpected "}"' in tickets["detail"]
    assert f"check failed: `nginx -t -q` of service:nginx on proxy-[01-40].tickets.chi1.sa: " \
           f"{SITE}" in done.stderr


def test_audit_reports_the_pending_site_as_failing_its_check(
        example: Path, proxy_root: Path, home: Path) -> None:
    site = (proxy_root / SITE.lstrip("/")).read_bytes()
    code, report = on_node(example, proxy_root, home, "audit")
    assert code & 2
    change = action(report, f"file:{SITE}")["changes"][0]
    assert (change["status"], change["detail"]) == (
        "pending", "would fail service:nginx's check `nginx -t -q`")
    check = action(report, "service:nginx")["checks"][0]
    assert check["status"] == "would-fail" and 'unexpected "}"' in check["detail"]
    assert (proxy_root / SITE.lstrip("/")).read_bytes() == site


def test_apply_puts_the_site_back_byte_for_byte_and_nginx_is_not_reloaded(
        example: Path, proxy_root: Path, home: Path, nginx: NodeNamespace) -> None:
    live = proxy_root / SITE.lstrip("/")
    before, stat_before = live.read_bytes(), live.stat()
    serving = nginx_processes(nginx)
    code, report = on_node(example, proxy_root, home, "apply")
    assert code & 4, "a failed check fails the run"
    change = action(report, f"file:{SITE}")["changes"][0]
    assert (change["status"], change["detail"]) == (
        "failed", "put back: service:nginx's check `nginx -t -q` failed")
    service = action(report, "service:nginx")
    assert service["status"] == "failed"
    assert [(c["status"], c["restored"]) for c in service["checks"]] == [("failed", [SITE])]
    reload = next(c for c in service["changes"] if c["op"] == "notify-reload")
    assert (reload["status"], reload["detail"]) == (
        "skipped", "not fired: check `nginx -t -q` failed")
    assert live.read_bytes() == before
    after = live.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == \
        (stat_before.st_mode, stat_before.st_uid, stat_before.st_gid)
    assert nginx.run("/usr/sbin/nginx", "-t", "-q").returncode == 0
    assert nginx_processes(nginx) == serving, "nginx was not reloaded"
