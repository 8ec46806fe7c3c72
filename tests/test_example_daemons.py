"""The example fleet's database, cache and app nodes run their real daemons.

Each node is built as a Debian node with the real packages and reconciler's files
(daemon_node.py) and its daemons run inside the node's own namespaces, on the node's own
addresses and ports, started the way their systemd units start them.
"""

from __future__ import annotations

import grp
import gzip
import json
import os
import pwd
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_node import NodeNamespace, apply, build_node, init_example, seed, skip_unless_runnable

pytestmark = skip_unless_runnable()

# By the addressing plan in fleet.xml: 10.<cluster>.<product + class>.<number>.
DATABASE, DATABASE_ADDRESS = "database-02.tickets.chi1.sa", "10.10.14.2"
CACHE, CACHE_ADDRESS = "cache-01.events.lax1.sa", "10.30.22.1"
APP, APP_ADDRESS = "app-41.tickets.chi1.sa", "10.10.13.41"
# Sized for production hardware (a 48G buffer pool, a 2G redo log): the test machine runs
# the server with these two scaled down and every other setting as rendered.
SCALED_DOWN = ("--innodb-buffer-pool-size=128M", "--innodb-log-file-size=96M")
DAY = 24 * 3600


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("example")
    return init_example(tmp_path_factory, base / "fleet", base / "home")


def install_mariadb_data(ns: NodeNamespace) -> None:
    """Initialise the data directory as mariadb-server's postinst does on Debian 12."""
    done = ns.run("mysql_install_db", "--rpm", "--cross-bootstrap", "--user=mysql",
                  "--disable-log-bin", "--skip-test-db")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def database(example: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[NodeNamespace, Path]]:
    """The backup replica with MariaDB running: the package installed and its data
    directory initialised first, then reconciler's files, then the server started as
    mariadb.service starts it (as mysql, no options but the scaled-down sizes)."""
    base = tmp_path_factory.mktemp("database")
    root = base / "root"
    seed(tmp_path_factory, root)
    with NodeNamespace(root, [DATABASE_ADDRESS]) as ns:
        install_mariadb_data(ns)
        assert not (root / "var/log/mysql").exists(), "Debian 12 does not create it"
        apply(example, DATABASE, root, base / "home")
        log = base / "mariadbd.log"
        with log.open("wb") as out:
            server = ns.start("/usr/sbin/mariadbd", *SCALED_DOWN, log=out, user="mysql")
        ns.wait_listening(server, DATABASE_ADDRESS, 3306, log)
        yield ns, root


def cron_job(root: Path, path: str) -> tuple[dict[str, str], str]:
    """The environment and command of the one job in a cron.d file, as cron would run it
    (the file's variable lines, and the command after the five times and the user)."""
    env: dict[str, str] = {}
    commands: list[str] = []
    for line in (root / path.lstrip("/")).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if equals and " " not in name:
            env[name.strip()] = value.strip()
            continue
        fields = line.split(None, 6)
        assert fields[5] == "root", line
        commands.append(fields[6])
    assert len(commands) == 1, commands
    # cron ends the command at an unescaped % (the rest is its input) and unescapes \%.
    assert re.search(r"(?<!\\)%", commands[0]) is None, "no job here feeds its command input"
    return env, commands[0].replace("\\%", "%")


def run_backup_job(ns: NodeNamespace, root: Path) -> int:
    env, command = cron_job(root, "/etc/cron.d/sa-db-backup")
    return ns.run(env.get("SHELL", "/bin/sh"), "-c", command, env=env).returncode


def place_dumps(root: Path) -> dict[str, tuple[bytes, float]]:
    """An old dump (30 days), a recent one (2 days) and another product's old one;
    returns each name's content and modification time."""
    backups = root / "var/backups/mysql"
    now = time.time()
    placed = {}
    for name, age in (("tickets-2000-01-01.sql.gz", 30 * DAY),
                      ("tickets-2000-01-28.sql.gz", 2 * DAY),
                      ("events-2000-01-01.sql.gz", 30 * DAY)):
        path = backups / name
        path.write_bytes(gzip.compress(f"-- {name}\n-- Dump completed\n".encode()))
        os.utime(path, (now - age, now - age))
        placed[name] = (path.read_bytes(), path.stat().st_mtime)
    return placed


def dumps(root: Path) -> dict[str, tuple[bytes, float]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime)
            for path in (root / "var/backups/mysql").iterdir()}


def test_mariadb_starts_from_a_fresh_data_directory_with_its_logs_in_var_log_mysql(
        database: tuple[NodeNamespace, Path]) -> None:
    ns, root = database
    logs = root / "var/log/mysql"
    info = logs.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (
        0o2750, pwd.getpwnam("mysql").pw_uid, grp.getgrnam("adm").gr_gid)
    done = ns.run("mariadb", "-NBe", "SELECT @@log_bin, @@log_bin_basename, @@relay_log, "
                  "@@slow_query_log_file, @@read_only")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "/var/log/mysql/mariadb-bin", "/var/log/mysql/relay-bin",
                                   "/var/log/mysql/mariadb-slow.log", "1"]
    assert (logs / "mariadb-bin.index").stat().st_uid == pwd.getpwnam("mysql").pw_uid
    assert ns.listeners(3306) == {"127.0.0.1", DATABASE_ADDRESS}


def test_the_nightly_backup_dumps_then_removes_only_old_dumps_of_its_product(
        database: tuple[NodeNamespace, Path]) -> None:
    ns, root = database
    before = place_dumps(root)
    assert run_backup_job(ns, root) == 0, (root / "var/log/sa/db-backup.log").read_text()
    after = dumps(root)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and new[0].startswith("tickets-"), after
    dump = gzip.decompress(after[new[0]][0]).decode()
    assert "CREATE DATABASE" in dump and dump.rstrip().splitlines()[-1].startswith(
        "-- Dump completed")
    assert sorted(set(before) - set(after)) == ["tickets-2000-01-01.sql.gz"]
    assert "ok /var/backups/mysql/" in (root / "var/log/sa/db-backup.log").read_text()


def test_the_nightly_backup_with_the_database_down_fails_and_deletes_nothing(
        example: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed(tmp_path_factory, root)
    apply(example, DATABASE, root, tmp_path / "home")
    before = place_dumps(root)
    with NodeNamespace(root) as ns:
        assert run_backup_job(ns, root) != 0
    assert dumps(root) == before, "no dump removed, none added, no partial file left"
    assert "FAILED" in (root / "var/log/sa/db-backup.log").read_text()


def test_memcached_listens_on_loopback_and_its_own_address_only(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_node(tmp_path_factory, CACHE, root)
    port = 11211
    with NodeNamespace(root, [CACHE_ADDRESS, "10.30.22.2"]) as ns:
        log = tmp_path / "memcached.log"
        with log.open("wb") as out:
            # memcached.service's ExecStart: the wrapper reads the file, drops to memcache.
            server = ns.start("/usr/share/memcached/scripts/systemd-memcached-wrapper",
                              "/etc/memcached.conf", log=out)
        ns.wait_listening(server, CACHE_ADDRESS, port, log)
        assert ns.listeners(port) == {"127.0.0.1", CACHE_ADDRESS}
        probe = ns.run("/usr/local/sbin/memcached-health")
        assert probe.returncode == 0 and f" ok port={port} " in probe.stdout, probe


def test_sa_app_answers_health_with_the_rendered_config(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_node(tmp_path_factory, APP, root)
    assert (root / "opt/sa-app/bin/sa-app").is_file(), "installed by the deb= package action"
    with NodeNamespace(root, [APP_ADDRESS]) as ns:
        log = tmp_path / "sa-app.out"
        with log.open("wb") as out:
            # sa-app.service's ExecStart and User=.
            server = ns.start("/opt/sa-app/bin/sa-app", "serve", "--config",
                              "/etc/sa-app/app.ini", log=out, user="www-data")
        ns.wait_listening(server, APP_ADDRESS, 8080, log)
        with ns.connect(APP_ADDRESS, 8080) as conn:
            conn.sendall(b"GET /health HTTP/1.0\r\nHost: app\r\n\r\n")
            reply = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), reply
    assert json.loads(body) == {"status": "ok", "node": APP, "product": "tickets",
                                "primary": "database-01.tickets.chi1.sa:3306"}
    assert "GET /health" in (root / "var/log/sa-app/app.log").read_text(), "logging.ini applied"
