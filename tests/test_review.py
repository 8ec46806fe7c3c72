"""`reconciler plan`: every node compared at two revisions, identical changes grouped.

Golden outputs live in tests/cases/review/<case>.{txt,md,json}; run with
REVIEW_UPDATE_GOLDEN=1 to rewrite them after an intended change of format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clirun import RECONCILER, reconciler
from example_repo import example_fleet
from review_support import FleetRepo, isolated_env, run

from reconciler.review.fleetplan import plan_fleet
from reconciler.review.markdown import format_markdown
from reconciler.review.names import compress_names, describe_scope

CASES = Path(__file__).parent / "cases" / "review"


def _golden(name: str, actual: str) -> None:
    path = CASES / name
    if os.environ.get("REVIEW_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"missing golden file {path} (run with REVIEW_UPDATE_GOLDEN=1)"
    assert actual == path.read_text(), f"{name} differs from the golden output"


def _plan_case(repo: FleetRepo, tmp_path: Path, case: str) -> dict[str, object]:
    """Plan HEAD~1 → HEAD in all three formats, check them against the goldens: planned
    from HEAD~1's dependency records (incremental), and the same when every node is
    rendered (--full)."""
    repo.reconciler("plan", "--base", "HEAD~1", "--head", "HEAD~1", "--jobs", "1")  # records
    outputs = {}
    for mode in ("incremental", "full"):
        md, js = tmp_path / f"plan-{mode}.md", tmp_path / f"plan-{mode}.json"
        done = repo.reconciler("plan", "--base", "HEAD~1", "--head", "HEAD", "--markdown",
                               str(md), "--json", str(js), "--jobs", "2",
                               *(["--full"] if mode == "full" else []))
        assert done.returncode == 2, done.stderr
        assert "\x1b[" not in done.stdout, "no colour when stdout is not a terminal"
        report = json.loads(js.read_text())
        assert report.pop("incremental") is (mode == "incremental")
        report.pop("rendered_nodes")
        outputs[mode] = (done.stdout, md.read_text(), report)
    assert outputs["incremental"] == outputs["full"]
    text, markdown, report = outputs["full"]
    _golden(f"{case}.txt", text)
    _golden(f"{case}.md", markdown)
    _golden(f"{case}.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report  # type: ignore[no-any-return]


def test_one_template_line_changes_every_web_node_in_one_group(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("templates/web/nginx.conf.j2", "server_tokens off;", "server_tokens on;")
    repo.commit("Show the nginx version")
    report = _plan_case(repo, tmp_path, "template_line")
    assert report["headline"] == "8 of 10 nodes change (web, all clusters), severity reload"
    assert len(report["groups"]) == 1  # type: ignore[arg-type]


def test_class_variable_change_shows_the_rendered_difference(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    repo.commit("Longer keepalive")
    report = _plan_case(repo, tmp_path, "class_variable")
    assert report["changed_nodes"] == 8
    assert report["severity"] == "reload"


def test_new_node_range_lists_added_nodes_and_the_nodes_it_changes(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("fleet.xml", '  <nodes class="db"',
              '  <nodes class="web" product="shop" cluster="c2" count="2" start="5"/>\n'
              '  <nodes class="db"')
    repo.commit("Two more web nodes in c2")
    report = _plan_case(repo, tmp_path, "new_node_range")
    assert report["added_nodes"] == ["web-05.shop.c2.t", "web-06.shop.c2.t"]
    assert report["changed_nodes"] == 2  # the db nodes, whose allow list grows
    assert report["severity"] == "none"


def test_severity_change_is_shown_as_an_attribute_that_touches_nothing(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("classes/web.xml", 'notify="service:nginx:reload"', 'notify="service:nginx:restart"')
    repo.commit("nginx.conf changes restart nginx")
    report = _plan_case(repo, tmp_path, "severity_change")
    change = report["groups"][0]["changes"]["actions"][0]  # type: ignore[index]
    assert change["attributes"][1] == {"name": "severity", "old": "reload", "new": "restart"}
    assert change["severity"] == "none"  # nothing happens on the node now


def test_package_version_change_carries_restart(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("classes/web.xml", 'version="1.24"', 'version="1.26"')
    repo.commit("nginx 1.26")
    report = _plan_case(repo, tmp_path, "package_version")
    assert report["severity"] == "restart"
    assert report["by_severity"] == {"restart": 8}


def test_secret_change_never_prints_the_secret(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("classes/web.xml", "key-one-0f3a9c", "key-two-7b21e4")
    repo.commit("Rotate the site key")
    _plan_case(repo, tmp_path, "secret_change")
    for suffix in ("txt", "md", "json"):
        text = (CASES / f"secret_change.{suffix}").read_text()
        assert "key-one" not in text and "key-two" not in text
        assert "secret changed" in text


def test_no_change_exits_zero(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.write({"README": "notes that no node reads\n"})
    repo.commit("Notes")
    done = repo.reconciler("plan", "--base", "HEAD~1")
    assert done.returncode == 0, done.stderr
    assert "no node changes (10 nodes)" in done.stdout


def test_invalid_head_exits_one_with_validate_errors(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("templates/web/nginx.conf.j2", "{{ workers }}", "{{ workers }")
    repo.commit("Broken template")
    done = repo.reconciler("plan", "--base", "HEAD~1", "--format", "json")
    validate = repo.reconciler("validate", "--rev", "HEAD")
    assert done.returncode == 1
    assert validate.returncode == 1
    assert done.stderr == validate.stderr
    assert "templates/web/nginx.conf.j2:1: template syntax error" in done.stderr
    assert json.loads(done.stdout)["valid"] is False


def test_invalid_base_is_reported_and_does_not_stop_the_plan(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.write({"fleet.xml": "<fleet domain='t'>\n"})
    repo.commit("Broken fleet.xml")
    repo.git("checkout", "-q", "HEAD~1", "--", "fleet.xml")
    repo.commit("Fix fleet.xml")
    done = repo.reconciler("plan", "--base", "HEAD~1")
    assert done.returncode == 2, done.stderr
    assert "base HEAD~1 is invalid: 10 nodes could not be compared" in done.stdout
    assert "base: fleet.xml:" in done.stdout


def test_base_node_that_fails_to_render_is_compared_on_what_rendered(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("templates/db/allowed.conf.j2", "{{ name }}", "{{ name.nope() }}")
    repo.commit("Broken db template")
    repo.git("revert", "--no-edit", "HEAD")
    report = plan_fleet(str(repo.path), "HEAD~1", "HEAD", jobs=1)
    (group,) = report.groups
    assert group.patterns == ("db-[01-02].shop.c1.t",)
    assert group.changes.base_problems
    assert group.changes.files[0].status == "new"


def test_markdown_is_cut_politely_at_the_size_cap(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("templates/base/resolv.conf.j2", "search",
              "{% for i in range(80) %}# resolver {{ dns }}, entry {{ i }}\n{% endfor %}search")
    repo.commit("List each cluster's resolver 80 times")
    report = plan_fleet(str(repo.path), "HEAD~1", "HEAD", jobs=1)
    assert len(report.groups) == 2  # one per cluster: their resolvers differ
    text = format_markdown(report, max_bytes=1000)
    assert len(text.encode()) <= 1000
    assert "2 more groups of changes (10 nodes) not shown**: this comment is capped at 1000 " \
           "bytes" in text
    assert "plan.json" in text


def test_node_names_compress_into_ranges_and_braces() -> None:
    names = [f"proxy-{n:02d}.tickets.{c}.sa" for c in ("chi1", "lax1") for n in range(1, 41)]
    names += [f"proxy-{n:02d}.events.chi1.sa" for n in (1, 2, 3, 7)]
    assert compress_names(names) == [
        "proxy-[01-03,07].events.chi1.sa",
        "proxy-[01-40].tickets.{chi1,lax1}.sa",
    ]
    assert describe_scope(names, ["chi1", "lax1"]) == "proxy, all clusters"
    assert describe_scope(names[:3], ["chi1", "lax1"]) == "proxy, cluster chi1"


@pytest.fixture(scope="module")
def example_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """The plan, as text and as JSON, of one commit to the example fleet's proxy class: a
    longer keepalive (the same line on all 240 proxies) and a comment next to each
    node's name in its logrotate file. One plan of 800 nodes serves both tests."""
    tmp = tmp_path_factory.mktemp("example")
    home = tmp / "home"
    home.mkdir()
    example = example_fleet(tmp_path_factory, tmp / "example")
    proxy = example / "classes" / "proxy.xml"
    text = proxy.read_text()
    for old, new in [('<var name="nginx_keepalive_timeout" type="int">65</var>',
                      '<var name="nginx_keepalive_timeout" type="int">75</var>'),
                     ('<var name="why">nginx reopens its logs',
                      '<var name="why">Rotated daily. nginx reopens its logs')]:
        assert old in text
        text = text.replace(old, new)
    proxy.write_text(text)
    run(["git", "commit", "-qam", "Longer keepalive on the proxies, say how often their logs "
                                  "rotate"], example, home)
    plan_json = tmp / "plan.json"
    done = reconciler(["plan", "--base", "main~1", "--head", "main", "--json", plan_json],
                      env=isolated_env(home), cwd=example)
    assert done.returncode == 2, done.stderr
    return done.stdout, json.loads(plan_json.read_text())


def test_example_fleet_one_proxy_change_is_240_of_800_nodes_with_one_diff(
        example_plan: tuple[str, dict[str, Any]]) -> None:
    text, _ = example_plan
    assert "240 of 800 nodes change (proxy, all clusters), severity reload" in text
    assert text.count("keepalive_timeout 75;") == 1  # the one diff they all share


def test_example_fleet_proxy_logrotate_line_next_to_the_name_is_one_group(
        example_plan: tuple[str, dict[str, Any]]) -> None:
    _, report = example_plan
    [group] = report["groups"]
    assert len(group["digests"]) == 240
    diffs = {file["path"]: file["diff"] for file in group["changes"]["files"]}
    diff = diffs["/etc/logrotate.d/nginx"]
    assert "Managed by reconciler for ⟨node.name⟩ (class proxy)." in diff
    assert "+# Rotated daily. nginx reopens its logs" in diff


def test_progress_bar_goes_to_a_terminal_not_into_the_report(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("templates/web/nginx.conf.j2", "server_tokens off;", "server_tokens on;")
    repo.commit("Show the nginx version")
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` is needed to give the plan a terminal")
    done = subprocess.run(
        ["script", "-qec", f"{RECONCILER} plan --base HEAD~1 --jobs 2", "/dev/null"],
        cwd=repo.path, env=isolated_env(repo.home, {"COLUMNS": "120", "TERM": "xterm"}),
        capture_output=True, text=True, check=False)
    assert "\x1b[" in done.stdout, "colour on a terminal"
    assert "8 of 10 nodes change" in done.stdout
