"""Every file the example fleet renders is accepted by its own daemon's checker.

One node of every class (the database's primary and backup replica render differently) is
built as a Debian node with the real packages (daemon_node.py), and each checker runs
inside the node's namespaces, so it reads the node's files at their real paths, includes
and all, and never the host's. Files no checker reads are listed with the reason, and the
few whose only check is the daemon running are proven by test_example_daemons.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from daemon_node import (
    NodeNamespace,
    build_node,
    init_example,
    rendered_paths,
    skip_unless_runnable,
)

pytestmark = skip_unless_runnable()

NODES = ("proxy-01.tickets.chi1.sa", "cache-01.events.lax1.sa", "app-41.tickets.chi1.sa",
         "database-01.tickets.chi2.sa", "database-02.events.lax2.sa")


@dataclass(frozen=True)
class Check:
    """A checker run inside the node: it must exit 0, and no line of its output may match
    `complaint` (some checkers only warn about what they ignore)."""

    argv: tuple[str, ...]
    complaint: str = r"(?!)"


# Files whose daemon has no checker of its own, and why.
NO_CHECKER = {
    "/etc/resolv.conf": "read by the C library's resolver, which has no checker",
    "/etc/motd": "plain text, shown at login",
    "/etc/reconciler-class": "plain text, read by tools",
    "/etc/sa-app/secrets.ini": "the demo stand-in for sa-app does not read it",
    "/etc/default/prometheus-node-exporter": "an EnvironmentFile of the exporter's unit, "
                                             "which has no checker",
}
# Files whose daemon has no checker but is started on them in test_example_daemons.py.
PROVEN_BY_RUNNING = {
    "/etc/memcached.conf": "test_memcached_listens_on_loopback_and_its_own_address_only",
    "/etc/sa-app/app.ini": "test_sa_app_answers_health_with_the_rendered_config",
    "/etc/sa-app/logging.ini": "test_sa_app_answers_health_with_the_rendered_config",
    "/var/www/html/sa-maintenance.html": "test_the_maintenance_page_answers_when_no_app_node_does",
}


def checker(path: str, root: Path) -> Check | None:
    """The check of the daemon that reads `path` on the node, or None if it has none."""
    if path.startswith("/etc/nginx/"):
        # The whole configuration from nginx.conf: fragments cannot be checked alone.
        return Check(("nginx", "-t"), r"\[(warn|emerg|alert|crit)\]")
    if path == "/etc/ssh/sshd_config":
        return Check(("sshd", "-t", "-f", path), r".")
    if path == "/etc/chrony/chrony.conf":
        return Check(("chronyd", "-p", "-f", path), r"(?i)fatal|warning")
    if path.startswith("/etc/logrotate.d/"):
        # The whole configuration: logrotate refuses a log named by two files.
        return Check(("logrotate", "-d", "-s", "/run/logrotate.status", "/etc/logrotate.conf"),
                     r"^error:")
    if path.startswith("/etc/cron.d/"):
        return Check(("crontab", "-n", path))
    if path.startswith("/etc/mysql/"):
        # Parses every option file as the server does; an unknown option is an error.
        return Check(("mariadbd", "--help", "--verbose"), r"\[ERROR\]")
    if path.startswith("/etc/systemd/system/"):
        unit = path.removeprefix("/etc/systemd/system/").split("/")[0].removesuffix(".d")
        return Check(("systemd-analyze", "verify", "--man=no", unit), r".")
    if path.startswith("/usr/local/sbin/"):
        interpreter = (root / path.lstrip("/")).read_text().splitlines()[0].removeprefix("#!")
        return Check((interpreter, "-n", path), r".")
    return None


SYSCTL = "/etc/sysctl.d/60-reconciler.conf"


def kernel_setting_problems(root: Path) -> list[str]:
    """sysctl has no dry run (`sysctl -p` would change this host's kernel): every key of
    the node's file must at least name a parameter of this kernel."""
    text = (root / SYSCTL.lstrip("/")).read_text()
    keys = [line.split("=")[0].strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")]
    return [f"unknown kernel parameter {key}" for key in keys
            if not Path("/proc/sys", key.replace(".", "/")).exists()]


def failures(root: Path, checks: dict[Check, list[str]]) -> list[str]:
    """Every check that fails on the node at `root`, with the checker's output."""
    found = []
    with NodeNamespace(root) as ns:
        for check, files in checks.items():
            done = ns.run(*check.argv)
            output = done.stdout + done.stderr
            complaints = [line for line in output.splitlines()
                          if re.search(check.complaint, line)]
            if done.returncode != 0 or complaints:
                found.append(f"{' '.join(check.argv)} (for {', '.join(files)}) exited "
                             f"{done.returncode}:\n{output}")
    return found


class Image(NamedTuple):
    """A node of NODES built: its root, the paths of the files rendered for it, and the
    report of the apply that built it."""

    root: Path
    paths: list[str]
    report: dict[str, Any]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    """Each node of NODES built."""
    base = tmp_path_factory.mktemp("example")
    home = base / "home"
    repo = init_example(tmp_path_factory, base / "fleet", home)
    built = {}
    for name in NODES:
        root = base / name / "root"
        report = build_node(tmp_path_factory, name, root)
        built[name] = Image(root, rendered_paths(repo, name, base / name / "rendered", home),
                            report)
    return built


EVERY_NODE = {"chronyd", "sshd", "logrotate"}
DECLARED = {"database-02.events.lax2.sa": EVERY_NODE | {"mariadbd", "systemd-analyze"},
            "app-41.tickets.chi1.sa": EVERY_NODE}


@pytest.mark.parametrize("name", DECLARED)
def test_a_fresh_node_runs_every_declared_check_and_validate_and_passes_them(
        images: dict[str, Image], name: str) -> None:
    """The example's own checkers (sshd, chronyd, logrotate, systemd-analyze, mariadbd,
    crontab, sh -n), declared as <check>s and validate=, all run in the apply that built
    the node, inside its root, and pass (a failed one fails the build)."""
    report = images[name].report
    checks = {(a["id"], c["run"]): c["status"] for a in report["actions"] for c in a["checks"]}
    assert set(checks.values()) == {"passed"}, checks
    ran = {word for _, run in checks for word in run.split()}
    assert DECLARED[name] <= ran, f"{sorted(DECLARED[name] - ran)} did not run"
    notes = [c["detail"] for a in report["actions"] for c in a["changes"]
             if c.get("detail") and "validat" in c["detail"]]
    assert notes == []


@pytest.mark.parametrize("name", NODES)
def test_every_rendered_file_is_checked_by_its_daemon_or_says_why_not(
        images: dict[str, Image], name: str) -> None:
    root, paths, _ = images[name]
    uncovered = [path for path in paths if checker(path, root) is None
                 and path not in NO_CHECKER and path not in PROVEN_BY_RUNNING
                 and path != SYSCTL]
    assert uncovered == [], f"{name}: no checker for {uncovered}"


@pytest.mark.parametrize("name", NODES)
def test_every_rendered_file_passes_its_daemons_checker(
        images: dict[str, Image], name: str) -> None:
    root, paths, _ = images[name]
    checks: dict[Check, list[str]] = {}
    for path in paths:
        check = checker(path, root)
        if check is not None:
            checks.setdefault(check, []).append(path)
    problems = kernel_setting_problems(root) + failures(root, checks)
    assert problems == [], f"{name}:\n" + "\n".join(problems)


# A mistake in one file of each kind, and the node it is made on.
MISTAKES = [
    ("proxy-01.tickets.chi1.sa", "/etc/nginx/snippets/proxy-params.conf",
     "proxy_http_version 1.1;", "proxy_http_version 1.1"),
    ("proxy-01.tickets.chi1.sa", "/etc/nginx/sites-available/sa.conf",
     "server 10.10.13.1:8080", "server app-01.tickets.chi1.sa:8080"),
    ("proxy-01.tickets.chi1.sa", "/etc/ssh/sshd_config",
     "PermitRootLogin prohibit-password", "PermitRootLogin maybe"),
    ("cache-01.events.lax1.sa", "/etc/chrony/chrony.conf", "minsources 2", "minsource 2"),
    ("cache-01.events.lax1.sa", "/etc/cron.d/memcached-health", "*/5 * * * *", "*/5 * * *"),
    ("cache-01.events.lax1.sa", "/etc/logrotate.d/memcached", "    daily", "    dialy"),
    ("cache-01.events.lax1.sa", "/usr/local/sbin/memcached-health", "\nfi\n", "\ndone\n"),
    ("database-02.events.lax2.sa", "/etc/mysql/mariadb.conf.d/60-sa.cnf",
     "long_query_time = 1", "long_query_tme = 1"),
    ("database-02.events.lax2.sa", "/etc/systemd/system/mariadb.service.d/limits.conf",
     "LimitNOFILE=", "LimitNOFILES="),
    ("app-41.tickets.chi1.sa", "/etc/systemd/system/sa-app.service",
     "ExecStart=/opt/sa-app/bin/sa-app", "ExecStart=/opt/sa-app/bin/sa-ap"),
    ("app-41.tickets.chi1.sa", SYSCTL, "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_tw_recycle"),
]


@pytest.mark.parametrize(("name", "path", "old", "new"), MISTAKES,
                         ids=[f"{name.split('.')[0]}:{path}" for name, path, *_ in MISTAKES])
def test_a_mistake_in_a_rendered_file_fails_its_daemons_checker(
        images: dict[str, Image],
        name: str, path: str, old: str, new: str) -> None:
    root = images[name].root
    target = root / path.lstrip("/")
    original = target.read_text()
    assert old in original
    target.write_text(original.replace(old, new, 1))
    try:
        check = checker(path, root)
        problems = (kernel_setting_problems(root) if check is None
                    else failures(root, {check: [path]}))
    finally:
        target.write_text(original)
    assert problems != [], f"{new!r} in {path} passed"
