"""`reconciler plan` groups nodes by what their change is: each node's own name, number,
cluster and per-node values abstracted, context lines ignored, genuinely per-node values
marked `⟨per node⟩` in one group. Golden outputs in tests/cases/review/grouping_*.

Run with REVIEW_UPDATE_GOLDEN=1 to rewrite them after an intended change of format.
"""

from __future__ import annotations

import json
from pathlib import Path

from review_support import SMALL_FLEET, FleetRepo
from test_review import _plan_case

# The small fleet, plus a site file whose lines sit next to each node's name, its number,
# its cluster's resolver, and (for web-01 in c1) a value set on the node itself.
FLEET = {
    **SMALL_FLEET,
    "fleet.xml": SMALL_FLEET["fleet.xml"].replace(
        "</fleet>",
        '  <node name="web-01.shop.c1.t"><var name="canary_pool">blue-pool</var></node>\n'
        "</fleet>"),
    "classes/web.xml": SMALL_FLEET["classes/web.xml"].replace(
        "  <package", '  <var name="canary_pool">green-pool</var>\n  <package').replace(
        "</class>",
        '  <file path="/etc/nginx/site.conf" template="web/site.conf.j2" mode="0644"/>\n'
        "</class>"),
    "templates/web/site.conf.j2": """\
# site of {{ node.name }}
server {
    server_name {{ node.name }};
    listen 80;
    set $id {{ node.number * 10 + 1 }};
    resolver {{ dns }};
    upstream_pool {{ canary_pool }};
}
""",
}


def _groups(report: dict[str, object]) -> list[dict[str, object]]:
    groups: list[dict[str, object]] = report["groups"]  # type: ignore[assignment]
    return groups


def test_template_line_next_to_the_node_name_is_one_group(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("templates/web/site.conf.j2", "    listen 80;\n", "    listen 80;\n    http2 on;\n")
    repo.commit("HTTP/2 on every site")
    report = _plan_case(repo, tmp_path, "grouping_name_context")
    [group] = _groups(report)
    assert group["patterns"] == ["web-[01-04].shop.{c1,c2}.t"]
    assert group["varies"] == []
    diff = group["changes"]["files"][0]["diff"]  # type: ignore[index]
    assert "+    http2 on;" in diff and "server_name ⟨node.name⟩;" in diff


def test_per_cluster_value_is_one_group_per_cluster(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("fleet.xml", "10.1.0.2", "10.1.0.53")
    repo.edit("fleet.xml", "10.2.0.2", "10.2.0.53")
    repo.commit("New resolvers")
    report = _plan_case(repo, tmp_path, "grouping_per_cluster")
    assert [g["patterns"] for g in _groups(report)] == [
        ["web-[01-04].shop.c1.t"], ["web-[01-04].shop.c2.t"], ["db-[01-02].shop.c1.t"]]
    assert all(g["varies"] == [] for g in _groups(report))


def test_per_node_value_is_one_group_that_says_where_it_differs(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("templates/web/site.conf.j2", "* 10 + 1", "* 100 + 1")
    repo.commit("Wider id space")
    report = _plan_case(repo, tmp_path, "grouping_per_node")
    [group] = _groups(report)
    assert len(group["nodes"]) == 8  # type: ignore[arg-type]
    assert group["varies"] == ["/etc/nginx/site.conf"]
    diff = group["changes"]["files"][0]["diff"]  # type: ignore[index]
    assert "-    set $id ⟨per node: 11, 21, 31, …⟩;" in diff
    assert "+    set $id ⟨per node: 101, 201, 301, …⟩;" in diff


def test_mixed_change_groups_by_what_each_node_shares(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("templates/web/site.conf.j2", "    listen 80;\n", "    listen 80;\n    http2 on;\n")
    repo.edit("templates/web/site.conf.j2", "upstream_pool {{ canary_pool }};",
              "upstream_pool {{ canary_pool }}-v2;")
    repo.edit("fleet.xml", "10.2.0.2", "10.2.0.53")
    repo.commit("HTTP/2, new pool names, new resolver in c2")
    report = _plan_case(repo, tmp_path, "grouping_mix")
    c1, c2 = _groups(report)
    assert c1["patterns"] == ["web-[01-04].shop.c1.t"]
    assert c2["patterns"] == ["web-[01-04].shop.c2.t"]
    assert "+    resolver 10.2.0.53;" in c2["changes"]["files"][0]["diff"]  # type: ignore[index]
    # web-01 in c1 sets its own pool: in c1 the pool differs per node
    assert c1["varies"] == ["/etc/nginx/site.conf"]
    assert "+    upstream_pool ⟨per node: blue, green⟩-pool-v2;" in \
        c1["changes"]["files"][0]["diff"]  # type: ignore[index]


def test_node_option_shows_one_nodes_exact_diff(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("templates/web/site.conf.j2", "    listen 80;\n", "    listen 80;\n    http2 on;\n")
    repo.commit("HTTP/2 on every site")
    whole = repo.reconciler("plan", "--base", "HEAD~1", "--format", "json", "--jobs", "1")
    one = repo.reconciler("plan", "--base", "HEAD~1", "--format", "json", "--jobs", "1",
                          "--node", "web-03.shop.c2.t")
    assert one.returncode == 2, one.stderr
    [exact] = json.loads(one.stdout)["groups"]
    assert exact["nodes"] == ["web-03.shop.c2.t"]
    assert "server_name web-03.shop.c2.t;" in exact["changes"]["files"][0]["diff"]
    [grouped] = json.loads(whole.stdout)["groups"]
    assert grouped["digests"]["web-03.shop.c2.t"] == exact["digests"]["web-03.shop.c2.t"]


def test_node_option_refuses_a_node_at_neither_revision(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path, FLEET)
    repo.edit("templates/web/site.conf.j2", "listen 80", "listen 81")
    repo.commit("Port 81")
    done = repo.reconciler("plan", "--base", "HEAD~1", "--node", "web-09.shop.c1.t")
    assert done.returncode != 0 and done.returncode != 2
    assert "no node web-09.shop.c1.t at either revision" in done.stderr
