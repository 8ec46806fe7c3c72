"""Secret variables: never shown by explain, and refused in files that are not secret."""

from __future__ import annotations

from configrepo import Workspace, class_xml, fleet_xml

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.source.snapshot import open_snapshot

NODE = "web-01.shop.c1.sa"
PASSWORD = "hunter2-do-not-print"


def fleet(file_attrs: str) -> dict[str, str]:
    return {
        "fleet.xml": fleet_xml(
            f'  <defaults><var name="db_password" secret="true">{PASSWORD}</var></defaults>\n'
            '  <nodes class="web" product="shop" cluster="c1" count="1"/>\n'
        ),
        "classes/web.xml": class_xml(
            "web", f'  <file path="/etc/app.ini" template="web/app.ini.j2"{file_attrs}/>\n'
        ),
        "templates/web/app.ini.j2": "password = {{ db_password }}\n",
    }


def test_a_variable_stays_secret_when_a_later_layer_overrides_it(ws: Workspace) -> None:
    files = fleet(' secret="true"')
    files["fleet.xml"] = fleet_xml(
        f'  <defaults><var name="db_password" secret="true">{PASSWORD}</var></defaults>\n'
        '  <vars cluster="c1"><var name="db_password">other</var></vars>\n'
        '  <nodes class="web" product="shop" cluster="c1" count="1"/>\n'
    )
    repo = ws.make_repo(files)
    node = compile_node(load_fleet(open_snapshot(str(repo), None)), NODE)
    assert node.variables["db_password"].secret
    assert node.secret_names() == frozenset({"db_password"})


def test_explain_never_prints_a_secret_value(ws: Workspace) -> None:
    repo = ws.make_repo(fleet(' secret="true"'))
    whole = ws.cli("explain", NODE, cwd=repo)
    one = ws.cli("explain", NODE, "db_password", cwd=repo)
    assert whole.code == 0 and one.code == 0
    assert PASSWORD not in whole.out + one.out
    assert "db_password = (secret)" in one.out


def test_a_secret_variable_in_a_file_that_is_not_secret_is_refused(ws: Workspace) -> None:
    repo = ws.make_repo(fleet(""))
    done = ws.cli("validate", cwd=repo)
    assert done.code == 1
    assert "classes/web.xml:2: secret variable db_password used in templates/web/app.ini.j2 " \
        "(or what it includes), which is not a secret file" in done.err
    assert PASSWORD not in done.out + done.err


def test_a_secret_file_may_use_secret_variables(ws: Workspace) -> None:
    repo = ws.make_repo(fleet(' secret="true"'))
    done = ws.cli("validate", cwd=repo)
    assert done.code == 0, done.err
