"""Templates and facts: a node renders with its own facts; away from it, with the facts it
published, or with placeholders that never guess and mark what depends on them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from configrepo import Workspace, class_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.errors import ConfigError
from reconciler.facts.gather import gather_at
from reconciler.facts.model import Cpu, Facts, Memory
from reconciler.render.renderer import RenderedFile, Renderer, render_node
from reconciler.run import desire
from reconciler.source.snapshot import open_snapshot

NODE = "web-01.shop.lab.t"
FLEET = """\
<fleet domain="t">
  <defaults><policy max-severity="restart"/><var name="factor" type="int">2</var></defaults>
  <nodes class="web" product="shop" cluster="lab" count="2"/>
</fleet>
"""
KNOWN = Facts(cpu=Cpu(count=8), memory=Memory(total_mb=16000))


def repo_with(ws: Workspace, template: str, name: str = "repo") -> Path:
    return ws.make_repo({
        "fleet.xml": FLEET,
        "classes/web.xml": class_xml("web", '  <file path="/etc/app.conf" template="app.j2"/>\n'),
        "templates/app.j2": template,
    }, name=name)


def rendered(ws: Workspace, template: str, facts: Facts | None = None) -> RenderedFile:
    fleet = load_fleet(open_snapshot(str(repo_with(ws, template)), None))
    renderer = Renderer(fleet, facts={NODE: facts} if facts else None)
    files, problems = render_node(renderer, compile_node(fleet, NODE))
    assert problems == []
    return files[0]


def test_known_facts_render_their_values(ws: Workspace) -> None:
    item = rendered(ws, "workers {{ facts.cpu.count * factor }}; {{ facts.memory.total_mb }}\n",
                    KNOWN)
    assert (item.content, item.unknown_facts) == (b"workers 16; 16000\n", ())


def test_unknown_facts_print_as_placeholders_and_mark_the_file(ws: Workspace) -> None:
    item = rendered(ws, "workers {{ facts.cpu.count }}; pool {{ (facts.memory.total_mb * 0.7) "
                        "| int }}M; listen {{ facts.interfaces.eth0.address }}:80\n")
    assert item.content == (b"workers (facts.cpu.count); pool (facts.memory.total_mb * 0.7 | "
                            b"int)M; listen (facts.interfaces.eth0.address):80\n")
    assert item.unknown_facts == ("facts.cpu.count", "facts.interfaces.eth0.address",
                                  "facts.memory.total_mb")
    assert not item.undecided


def test_arithmetic_with_variables_stays_symbolic(ws: Workspace) -> None:
    item = rendered(ws, "{{ factor * facts.cpu.count + 1 }} {{ -facts.cpu.count }}\n")
    assert item.content == b"(2 * facts.cpu.count + 1) (-facts.cpu.count)\n"


@pytest.mark.parametrize("template", [
    "{% if facts.memory.total_mb > 4096 %}big{% endif %}\n",
    "{% if facts.os.id == 'debian' %}apt{% endif %}\n",
    "{% for name in facts.interfaces %}{{ name }}{% endfor %}\n",
    "{% if facts.default_ipv4 is none %}no route{% endif %}\n",
    "{{ 'eth0' in facts.interfaces }}\n",
    "{{ facts.disks | length }}\n",
    "{{ facts.interfaces.values() | list }}\n",
], ids=["comparison", "equality", "loop", "test", "membership", "length", "call"])
def test_a_decision_on_an_unknown_fact_leaves_the_file_unrendered(ws: Workspace,
                                                                   template: str) -> None:
    item = rendered(ws, template)
    assert item.undecided and item.content is None
    assert item.unknown_facts


def test_an_unrendered_file_changes_only_with_what_else_it_depends_on(ws: Workspace) -> None:
    template = "{% if facts.cpu.count > factor %}many{% endif %}\n"
    fleet = load_fleet(open_snapshot(str(repo_with(ws, template)), None))
    renderer = Renderer(fleet)
    first = render_node(renderer, compile_node(fleet, NODE))[0][0]
    second = render_node(renderer, compile_node(fleet, "web-02.shop.lab.t"))[0][0]
    other = Renderer(load_fleet(open_snapshot(str(repo_with(
        ws, template.replace("many", "lots"), name="other")), None)))
    changed = render_node(other, compile_node(other.fleet, NODE))[0][0]
    assert first.inputs is not None and first.inputs != second.inputs  # node name differs
    assert changed.inputs != first.inputs


def test_a_misspelt_fact_is_a_template_error_even_without_facts(ws: Workspace) -> None:
    fleet = load_fleet(open_snapshot(str(repo_with(ws, "ok\n{{ facts.cpu.cuont }}\n")), None))
    _, problems = render_node(Renderer(fleet), compile_node(fleet, NODE))
    assert [str(p) for p in problems] == [
        "templates/app.j2:2: undefined variable: facts.cpu has no fact 'cuont' (it has: count, "
        f"model) (node {NODE})"]


def test_a_node_run_without_facts_refuses_a_file_that_needs_them(ws: Workspace) -> None:
    fleet = load_fleet(open_snapshot(str(repo_with(ws, "{{ facts.cpu.count }}\n")), None))
    with pytest.raises(ConfigError) as caught:
        desire(fleet, NODE)
    assert [str(p) for p in caught.value.problems] == [
        "classes/web.xml:2: /etc/app.conf depends on facts (facts.cpu.count), which this run "
        f"did not gather (node {NODE}, file:/etc/app.conf)"]


def test_a_node_run_with_facts_renders_them(ws: Workspace) -> None:
    fleet = load_fleet(open_snapshot(str(repo_with(ws, "{{ facts.cpu.count }}\n")), None))
    desired = desire(fleet, NODE, facts=KNOWN)
    assert desired.rendered["file:/etc/app.conf"][0].content == b"8\n"


def test_apply_renders_the_real_machines_facts(ws: Workspace, tmp_path: Path) -> None:
    repo = repo_with(ws, "workers {{ facts.cpu.count }} on {{ facts.hostname }}\n")
    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", tmp_path / "node")
    assert done.code == 2, done.err
    real = gather_at("/")
    assert (tmp_path / "node/etc/app.conf").read_text() == \
        f"workers {os.cpu_count()} on {real.hostname}\n"


def published_dir(tmp_path: Path, facts: Facts) -> Path:
    directory = tmp_path / "facts"
    directory.mkdir()
    (directory / f"{NODE}.json").write_text(facts.model_dump_json())
    return directory


def test_validate_counts_the_files_checked_with_placeholders(ws: Workspace,
                                                             tmp_path: Path) -> None:
    repo = repo_with(ws, "{{ facts.cpu.count }}\n")
    without = ws.cli("validate", "--repo", repo)
    with_one = ws.cli("validate", "--repo", repo, "--facts", published_dir(tmp_path, KNOWN))
    assert (without.code, with_one.code) == (0, 0)
    assert without.out.splitlines()[1] == ("2 of these files use facts their node has not "
                                           "published: checked with placeholders (--facts DIR)")
    assert with_one.out.splitlines()[1].startswith("1 of these files")


def test_render_uses_published_facts_and_says_when_there_are_none(ws: Workspace,
                                                                  tmp_path: Path) -> None:
    repo = repo_with(ws, "workers {{ facts.cpu.count }}\n")
    published = ws.cli("render", "--repo", repo, NODE, "--facts", published_dir(tmp_path, KNOWN))
    placeheld = ws.cli("render", "--repo", repo, "web-02.shop.lab.t", "--facts",
                       tmp_path / "facts")
    assert published.out.splitlines()[1] == "workers 8"
    assert placeheld.out.splitlines()[1] == "workers (facts.cpu.count)"
    assert placeheld.err == ("/etc/app.conf: facts.cpu.count not known for web-02.shop.lab.t "
                             "(no published facts): shown as placeholders\n")


def test_a_bad_facts_file_is_refused_by_name(ws: Workspace, tmp_path: Path) -> None:
    repo = repo_with(ws, "x\n")
    directory = published_dir(tmp_path, KNOWN)
    (directory / "web-02.shop.lab.t.json").write_text(json.dumps({"cpu": {"count": "many"}}))
    done = ws.cli("validate", "--repo", repo, "--facts", directory)
    assert done.code == 1
    assert done.err == (f"{directory}/web-02.shop.lab.t.json: not facts: cpu.count: Input "
                        "should be a valid integer, unable to parse string as an integer\n")


def plan_files(ws: Workspace, repo: Path, *extra: str | Path) -> list[dict[str, object]]:
    done = ws.cli("plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format",
                  "json", *extra)
    assert done.code == 2, done.err
    groups = json.loads(done.out)["groups"]
    return [f for group in groups for f in group["changes"]["files"]]


def test_plan_marks_facts_dependent_output_without_published_facts(ws: Workspace) -> None:
    repo = ws.make_repo({
        "fleet.xml": FLEET,
        "classes/web.xml": class_xml("web", '  <file path="/etc/app.conf" template="app.j2"/>\n'
                                            '  <file path="/etc/other.conf" template="o.j2"/>\n'),
        "templates/app.j2": "workers {{ facts.cpu.count }}\n",
        "templates/o.j2": "{% if facts.cpu.count > 4 %}many{% endif %}\n",
    })
    ws.write(repo, {"templates/app.j2": "workers {{ facts.cpu.count }} # tuned\n",
                    "templates/o.j2": "{% if facts.cpu.count > 4 %}lots{% endif %}\n"})
    ws.commit(repo)
    files = plan_files(ws, repo)
    assert [(f["path"], f["facts"], f["note"]) for f in files] == [
        ("/etc/app.conf", ["facts.cpu.count"],
         "facts.cpu.count shown as placeholders (no published facts)"),
        ("/etc/other.conf", ["facts.cpu.count"],
         "depends on facts.cpu.count, not known for this node (no published facts): not "
         "rendered"),
    ]
    assert "+workers (facts.cpu.count) # tuned" in str(files[0]["diff"])


def test_plan_leaves_out_an_unrendered_file_whose_inputs_did_not_change(
        ws: Workspace) -> None:
    repo = repo_with(ws, "{% if facts.cpu.count > 4 %}many{% endif %}\n")
    ws.write(repo, {"fleet.xml": FLEET.replace(
        "</fleet>", '  <node name="web-09.shop.lab.t"/>\n</fleet>')})
    ws.commit(repo)
    done = ws.cli("plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD")
    assert done.code == 2, done.err
    changes, _, added = done.out.partition("what the added nodes get")
    assert "/etc/app.conf" not in changes and "1 node added" in done.out
    assert "new file /etc/app.conf (none): depends on facts.cpu.count" in added


def test_plan_with_published_facts_shows_real_diffs(ws: Workspace, tmp_path: Path) -> None:
    repo = repo_with(ws, "{% if facts.cpu.count > 4 %}many{% endif %}\n")
    ws.write(repo, {"templates/app.j2": "{% if facts.cpu.count > 4 %}lots{% endif %}\n"})
    ws.commit(repo)
    files = plan_files(ws, repo, "--facts", published_dir(tmp_path, KNOWN))
    assert [(f["diff"], f["facts"]) for f in files] == [
        ("--- a/etc/app.conf\n+++ b/etc/app.conf\n@@ -1 +1 @@\n-many\n+lots\n", []),
        (None, ["facts.cpu.count"]),  # web-02 published nothing
    ]


def test_a_node_runs_report_carries_the_facts_it_gathered(ws: Workspace, tmp_path: Path) -> None:
    repo = repo_with(ws, "x\n")
    done = ws.cli("audit", "--repo", repo, "--node", NODE, "--root", tmp_path / "node",
                  "--format", "json")
    assert done.code == 2, done.err
    facts = Facts.model_validate(json.loads(done.out)["facts"])
    assert (facts.cpu.count, facts.hostname) == (os.cpu_count(), os.uname().nodename)
