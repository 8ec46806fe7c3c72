"""The reports repository's pre-receive: only a fleet node's own, well-signed report of
itself gets in; anything else is refused with a clear message and changes nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fleet_support import (
    CLASSES,
    FleetNode,
    bare,
    cli,
    config_origin,
    fleet_xml,
    install_reports_hook,
    push_daemon,
    refs,
    wait_published,
)
from gitutil_repo import git, ssh_key
from session_build import built_once

from reconciler.fleet.chain import Chain

WEB1, WEB2 = "web-01.shop.c1.t", "web-02.shop.c1.t"
FILES: dict[str, str | bytes | None] = {"fleet.xml": fleet_xml(web=2, cache=1), **CLASSES}


@dataclass
class Server:
    """A config repo, a reports repo with the hook, served over git://, and two nodes
    whose keys are registered; web-01 has published one real report."""

    served: Path
    reports: Path
    url: str
    web1: FleetNode
    web2: FleetNode
    real: str  # web-01's published report commit

    def push(self, source: Path, sha: str, ref: str) -> tuple[int, str]:
        return git_status(source, "push", "--quiet", self.url, f"+{sha}:{ref}")

    def report_of(self, node: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(git(self.reports, "show",
                                                 f"refs/reports/{node}:report.json"))
        return data


def git_status(cwd: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.returncode, done.stderr


def _build_server(base: Path) -> dict[str, str]:
    """Under `base`: the nodes' keys, a config repo that registers them, a reports repo
    with the hook, and web-01's first report pushed to it over git://; its commit."""
    served = base / "served"
    served.mkdir()
    web1, web2 = _nodes(base)
    origin = config_origin(served, FILES, registered=[web1, web2])
    reports = bare(served / "reports.git")
    install_reports_hook(reports, origin.bare)
    with push_daemon(served) as port:
        web1.cfg = web1.cfg.model_copy(update={"remote": origin.url,
                                               "reports": f"git://127.0.0.1:{port}/reports.git"})
        web1.run()
        wait_published([web1])
    return {"real": refs(reports)[f"refs/reports/{WEB1}"], "remote": origin.url}


def _nodes(base: Path) -> tuple[FleetNode, FleetNode]:
    """web-01 and web-02 (their keys made on the first call, read after)."""
    return (FleetNode(base / "nodes", WEB1, "file:///later", None),
            FleetNode(base / "nodes", WEB2, "file:///later", None))


@contextmanager
def serving(base: Path, built: dict[str, str]) -> Iterator[Server]:
    """The server `_build_server` made under `base`, served by a `git daemon` of its own."""
    served = base / "served"
    with push_daemon(served) as port:
        url = f"git://127.0.0.1:{port}/reports.git"
        web1, web2 = _nodes(base)
        for node in (web1, web2):
            node.cfg = node.cfg.model_copy(update={"remote": built["remote"], "reports": url})
        yield Server(served, served / "reports.git", url, web1, web2, built["real"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that leave web-01's report as they found it (built once
    in the session): each refused push checks that it changed nothing, and the one test
    whose pushes get in moves web-02's ref alone."""
    base, built = built_once(tmp_path_factory, "fleet-hook", _build_server)
    with serving(base, built) as made:
        yield made


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for a test that moves web-01's report."""
    with serving(tmp_path, _build_server(tmp_path)) as made:
        yield made


def forge(repo: Path, report: bytes, key: Path | None, parent: str | None = None) -> str:
    """A report commit made by hand in `repo`, signed with `key` (None: unsigned)."""
    if not (repo / "HEAD").exists():
        bare(repo)
    blob = _run(repo, ["hash-object", "-w", "--stdin"], report)
    tree = _run(repo, ["mktree"], f"100644 blob {blob}\treport.json\n".encode())
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={key}"] if key else []
    args = [*sign, "commit-tree", *(["-S"] if key else []), tree,
            *(["-p", parent] if parent else [])]
    return _run(repo, args, b"forged\n")


def _run(repo: Path, args: list[str], stdin: bytes) -> str:
    done = subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", *args],
                          cwd=repo, input=stdin, capture_output=True, check=True)
    return done.stdout.decode().strip()


def newer(server: Server, node: str = WEB1, **changes: object) -> bytes:
    """web-01's real report, an hour later, with `changes`."""
    data = server.report_of(WEB1)
    moment = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
    data.update(node=node, time=(moment + timedelta(hours=1)).isoformat(), **changes)
    return json.dumps(data).encode()


def assert_refused(server: Server, done: tuple[int, str], message: str) -> None:
    code, err = done
    assert code != 0 and message in err, err
    assert refs(server.reports)[f"refs/reports/{WEB1}"] == server.real  # the real one stays


def test_a_node_may_push_only_its_own_ref(server: Server, tmp_path: Path) -> None:
    sha = forge(tmp_path / "w2", newer(server, node=WEB2), server.web2.key)
    assert_refused(server, server.push(tmp_path / "w2", sha, f"refs/reports/{WEB1}"),
                   f"refs/reports/{WEB1}: commit {sha[:12]} is not signed by a key "
                   f"registered for {WEB1} (at keys/nodes/{WEB1}/signing.pub on main)")


def test_a_report_about_another_node_is_refused_even_when_signed(
    server: Server, tmp_path: Path,
) -> None:
    sha = forge(tmp_path / "w1", newer(server, node=WEB2), server.web1.key)
    assert_refused(server, server.push(tmp_path / "w1", sha, f"refs/reports/{WEB1}"),
                   f"is a report of {WEB2}, not of {WEB1}")


def test_an_unsigned_report_is_refused(server: Server, tmp_path: Path) -> None:
    sha = forge(tmp_path / "x", newer(server), None, parent=None)
    assert_refused(server, server.push(tmp_path / "x", sha, f"refs/reports/{WEB1}"),
                   f"commit {sha[:12]} is not signed (a report must be signed by its node)")


def test_a_report_signed_by_an_unregistered_key_is_refused(
    server: Server, tmp_path: Path,
) -> None:
    stranger = ssh_key(tmp_path, "stranger")
    sha = forge(tmp_path / "x", newer(server), stranger)
    assert_refused(server, server.push(tmp_path / "x", sha, f"refs/reports/{WEB1}"),
                   f"is not signed by a key registered for {WEB1}")


def test_a_report_over_the_cap_is_refused_unread(server: Server, tmp_path: Path) -> None:
    """Refused by the size git records (three times the 1 MiB cap here: what is over it
    is never read, so 50 MB or 3 MB prove the same)."""
    huge = newer(server, problems=["x" * (3 * 1024 * 1024)])
    sha = forge(tmp_path / "x", huge, server.web1.key)
    assert_refused(server, server.push(tmp_path / "x", sha, f"refs/reports/{WEB1}"),
                   f"report.json is {len(huge)} bytes, over the 1048576-byte cap")


def test_a_commit_that_is_not_a_report_is_refused(server: Server, tmp_path: Path) -> None:
    sha = forge(tmp_path / "x", b'{"hello": "world"}', server.web1.key)
    assert_refused(server, server.push(tmp_path / "x", sha, f"refs/reports/{WEB1}"),
                   "report.json is not a report")


def test_other_refs_and_unknown_nodes_are_refused(server: Server, tmp_path: Path) -> None:
    sha = forge(tmp_path / "x", newer(server), server.web1.key)
    assert_refused(server, server.push(tmp_path / "x", sha, "refs/heads/main"),
                   "refs/heads/main: only refs/reports/<node> may be pushed to the reports "
                   "repository")
    assert_refused(server, server.push(tmp_path / "x", sha, "refs/reports/web-99.shop.c1.t"),
                   "web-99.shop.c1.t is not a node of the fleet at the config repository's "
                   "main")


def test_deleting_a_node_reports_is_refused(server: Server) -> None:
    code, err = git_status(server.reports, "push", server.url, f":refs/reports/{WEB1}")
    assert_refused(server, (code, err), f"refs/reports/{WEB1}: deleting a node's reports is "
                                        "refused")


def test_an_old_report_cannot_be_replayed_over_a_newer_one(own_server: Server) -> None:
    server = own_server
    server.web1.root.joinpath("etc/web.conf").write_text("edited by hand\n")
    server.web1.run()
    wait_published([server.web1])
    tip = refs(server.reports)[f"refs/reports/{WEB1}"]
    assert tip != server.real
    code, err = git_status(server.reports, "push", "--quiet", server.url,
                           f"+{server.real}:refs/reports/{WEB1}")
    assert code != 0 and "non-fast-forward to an older report" in err, err
    assert refs(server.reports)[f"refs/reports/{WEB1}"] == tip


def test_a_node_rotating_its_bounded_history_is_accepted(
    server: Server, tmp_path: Path,
) -> None:
    # web-02's ref: the only one of the shared server a test moves.
    # The third report rotates the chain: the ref moves to a new root, not a descendant;
    # the fourth is an ordinary append to that new root.
    chain = Chain(tmp_path / "rotating.git", WEB2, server.web2.key, max_reports=2, keep=2)
    for hours in range(1, 5):
        data = json.loads(newer(server, node=WEB2))
        moment = datetime.fromisoformat(str(data["time"]))
        data["time"] = (moment + timedelta(hours=hours)).isoformat()
        chain.append(json.dumps(data).encode(), f"report {hours}\n")
        code, err = git_status(chain.path, "push", "--quiet", server.url,
                               f"+{chain.ref}:{chain.ref}")
        assert code == 0, err
    assert refs(server.reports)[f"refs/reports/{WEB2}"] == chain.history()[0]


def test_reports_pushed_to_the_config_repo_itself_are_checked_by_its_hook(
    tmp_path: Path,
) -> None:
    node = FleetNode(tmp_path / "nodes", WEB1, "file:///later", None, detached=True)
    origin = config_origin(tmp_path, FILES, registered=[node])
    assert cli("hooks", "install", "--server", str(origin.bare)).returncode == 0
    node.cfg = node.cfg.model_copy(update={"remote": origin.url})  # reports: the config remote
    node.run()
    wait_published([node])
    assert f"refs/reports/{WEB1}" in refs(origin.bare)
    stranger = ssh_key(tmp_path, "stranger")
    report = git(origin.bare, "show", f"refs/reports/{WEB1}:report.json").encode()
    sha = forge(tmp_path / "x", report, stranger)
    code, err = git_status(tmp_path / "x", "push", origin.url, f"{sha}:refs/reports/{WEB2}")
    assert code != 0 and f"no signing key is registered for {WEB2}" in err, err
    origin.commit({"classes/web.xml": "<class"}, "broken", push=False)
    code, err = git_status(origin.work, "push", "origin", "main")
    assert code != 0 and "breaks the fleet configuration" in err, err  # still validated
