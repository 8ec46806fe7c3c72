"""`reconciler validate` catches the typos that would silently change the fleet: unknown
clusters and products (once the fleet declares them), unknown classes and attribute
values, with the nearest valid name and the allowed values."""

from __future__ import annotations

import subprocess
from pathlib import Path

from configrepo import BASIC, Workspace

from reconciler.record.report import EXIT_REFUSED

DECLARED = BASIC["fleet.xml"].replace(
    '<fleet domain="sa">', '<fleet domain="sa" products="tickets events" clusters="chi1 lax2">')


def validate(ws: Workspace, *extra: str, **files: str) -> tuple[int, str]:
    repo = ws.make_repo({**BASIC, "fleet.xml": DECLARED,
                         **{k.replace("__", "/").replace("_j2", ".j2"): v
                            for k, v in files.items()}})
    done = ws.cli("validate", "--repo", repo, *extra)
    return done.code, done.out + done.err


def _with(line: str) -> str:
    """The declared fleet with `line` added before </fleet> (it lands on line 8)."""
    return DECLARED.replace("</fleet>", f"  {line}\n</fleet>")


def test_the_declared_example_fleet_is_valid(ws: Workspace) -> None:
    code, out = validate(ws)

    assert code == 0, out


def test_a_node_in_a_misspelt_cluster_is_an_error_with_a_suggestion(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": _with(
        '<node name="web-01.tickets.chi.sa"><var name="greeting">hi</var></node>')})

    assert code == EXIT_REFUSED
    assert "fleet.xml:8: unknown cluster 'chi' in node name web-01.tickets.chi.sa " \
        "(the fleet declares chi1, lax2); did you mean 'chi1'?" in out


def test_vars_for_an_unknown_product_or_cluster_are_errors(ws: Workspace) -> None:
    fleet = DECLARED.replace("</fleet>", '  <vars product="tickest"/>\n'
                                         '  <vars cluster="lax3"/>\n</fleet>')
    code, out = validate(ws, **{"fleet.xml": fleet})

    assert code == EXIT_REFUSED
    assert "fleet.xml:8: unknown product 'tickest' (the fleet declares events, tickets); " \
        "did you mean 'tickets'?" in out
    assert "fleet.xml:9: unknown cluster 'lax3' (the fleet declares chi1, lax2); " \
        "did you mean 'lax2'?" in out


def test_a_range_of_an_undeclared_cluster_is_an_error(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": _with(
        '<nodes class="web" product="tickets" cluster="chi2" count="1"/>')})

    assert code == EXIT_REFUSED
    assert "fleet.xml:8: unknown cluster 'chi2' (the fleet declares chi1, lax2)" in out


def test_an_unknown_class_suggests_the_nearest(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": _with('<vars class="wbe"/>')})

    assert code == EXIT_REFUSED
    assert "fleet.xml:8: unknown class 'wbe' (no classes/wbe.xml); did you mean 'web'?" in out


def test_an_enumerated_attribute_lists_its_values_and_the_nearest(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": DECLARED.replace(
        '<policy max-severity="reload"/>', '<policy max-severity="relaod"/>')})

    assert code == EXIT_REFUSED
    assert "fleet.xml:3: <policy> max-severity=\"relaod\" is not one of none, reload, " \
        "restart, reboot; did you mean 'reload'?" in out


def test_the_example_fleet_declares_its_clusters_and_products(tmp_path: Path,
                                                              ws: Workspace) -> None:
    ws.cli("init", tmp_path / "fleet")

    assert 'products="tickets events"' in (tmp_path / "fleet/fleet.xml").read_text()
    assert 'clusters="chi1 chi2 lax1 lax2"' in (tmp_path / "fleet/fleet.xml").read_text()


def test_a_vars_block_matching_no_node_is_a_warning(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": _with('<vars class="base" cluster="lax2"/>')})

    assert code == 0, out
    assert 'fleet.xml:8: warning: <vars class="base" cluster="lax2"> matches no node' in out
    assert "1 warning(s)" in out


def test_a_variable_nothing_reads_is_a_warning_naming_the_nearest(ws: Workspace) -> None:
    code, out = validate(ws, **{"fleet.xml": _with(
        '<node name="web-01.tickets.chi1.sa"><var name="greting">hi</var></node>')})

    assert code == 0, out
    assert "fleet.xml:8: warning: variable 'greting' is set here but no template or " \
        "for-each reads it; did you mean 'greeting'?" in out


def test_a_lone_node_named_like_a_ranged_one_is_a_warning(ws: Workspace) -> None:
    undeclared = BASIC["fleet.xml"].replace(
        "</fleet>", '  <node name="web-01.tickets.ch1.sa"/>\n</fleet>')
    code, out = validate(ws, **{"fleet.xml": undeclared})

    assert code == 0, out
    assert "fleet.xml:8: warning: node web-01.tickets.ch1.sa belongs to no <nodes> range, " \
        "so this declares a new node; did you mean 'web-01.tickets.chi1.sa'?" in out


def test_strict_turns_warnings_into_errors(ws: Workspace) -> None:
    code, out = validate(ws, "--strict", **{"fleet.xml": _with('<vars product="events" '
                                                              'cluster="chi1"/>')})

    assert code == EXIT_REFUSED
    assert "invalid (--strict): 1 warning(s)" in out


def test_the_pre_commit_hook_refuses_warnings(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "fleet.xml": DECLARED})
    assert ws.cli("hooks", "install", cwd=repo).code == 0
    ws.write(repo, {"fleet.xml": _with('<vars product="events" cluster="chi1"/>')})

    done = subprocess.run(["git", "commit", "-qam", "events in chi1"], cwd=repo, env=ws.env,
                          capture_output=True, text=True, check=False)

    assert done.returncode != 0
    assert '<vars product="events" cluster="chi1"> matches no node' in done.stderr


def test_an_undefined_template_variable_suggests_the_nearest(ws: Workspace) -> None:
    code, out = validate(ws, templates__base__motd_j2="{{ greting }}\n")

    assert code == EXIT_REFUSED
    assert "templates/base/motd.j2:1: undefined variable: 'greting' is undefined; " \
        "did you mean 'greeting'?" in out


def test_a_misspelt_node_attribute_names_node_not_an_internal_class(ws: Workspace) -> None:
    code, out = validate(ws, templates__base__motd_j2="{{ greeting }} {{ node.nmae }}\n")

    assert code == EXIT_REFUSED
    assert "NodeView" not in out and "reconciler." not in out
    assert "templates/base/motd.j2:1: undefined variable: node has no attribute 'nmae'; " \
        "did you mean 'name'?" in out


def test_explain_of_a_misspelt_variable_suggests_the_nearest(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)

    done = ws.cli("explain", "web-01.tickets.chi1.sa", "greting", "--repo", repo)

    assert done.code == EXIT_REFUSED
    assert "variable 'greting' is not set for web-01.tickets.chi1.sa; " \
        "did you mean 'greeting'?" in done.err


def test_a_misspelt_agent_toml_key_suggests_the_nearest(ws: Workspace, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('remote = "file:///nowhere"\nmax-severty = "reload"\n')

    done = ws.cli("status", "--config", config)

    assert done.code == EXIT_REFUSED
    assert f"{config}:2: max-severty: unknown key; did you mean 'max-severity'?" in done.err
